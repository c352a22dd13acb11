// What a per-host dynamic resource registers as its provider. Pulumi stores every dynamic
// resource's provider serialized into the state (its code and all it reaches: 55-75 KB of
// JavaScript per resource, ~110-150 KB as JSON), and the file backend rewrites the whole state
// after every step: a Network of 200 hosts held a ~50 MB state written ~400 times in one `up`.
// The stub serializes to the path of the provider's compiled module and its export name (~2 KB); the provider process loads the module from there once (Node's module cache),
// instead of evaluating a copy per resource.
import * as fs from "fs";
import * as path from "path";
import type * as pulumi from "@pulumi/pulumi";

const METHODS = ["check", "diff", "create", "read", "update", "delete"] as const;

/**
 * The compiled JavaScript of `moduleFile`: itself when it is JavaScript (the installed package);
 * for a TypeScript source (a checkout run by ts-node), dist/<same path>.js of the package when
 * it is at least as new as the source; else undefined (stale or unbuilt: the caller keeps the
 * provider's own code, which is always current).
 */
export function compiledModule(moduleFile: string): string | undefined {
  if (moduleFile.endsWith(".js")) return moduleFile;
  if (!moduleFile.endsWith(".ts")) return undefined;
  for (let dir = path.dirname(moduleFile); path.dirname(dir) !== dir; dir = path.dirname(dir)) {
    if (!fs.existsSync(path.join(dir, "package.json"))) continue;
    const compiled = path.join(dir, "dist", path.relative(dir, moduleFile)).replace(/\.ts$/, ".js");
    try {
      return fs.statSync(compiled).mtimeMs >= fs.statSync(moduleFile).mtimeMs ? compiled : undefined;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/**
 * `provider` as a stub loading `exportName` of `moduleFile`'s compiled module at run time, or
 * `provider` itself when no current compiled module exists. The state then names the module by
 * absolute path: a provider process that cannot load it (the package moved or was removed)
 * fails saying so; reinstalling it, or one `pulumi up` from the moved project, records the new path.
 */
export function lightProvider<P extends pulumi.dynamic.ResourceProvider>(provider: P, moduleFile: string, exportName: string): P {
  // BPFNET_PROVIDER_STUB=0: the provider's own code in the state, as before (bench/networkScale.ts's baseline).
  const file = process.env.BPFNET_PROVIDER_STUB === "0" ? undefined : compiledModule(moduleFile);
  if (!file) return provider;
  const call = (method: string, args: unknown[]): unknown => {
    let mod: Record<string, Record<string, (...a: unknown[]) => unknown>>;
    try {
      mod = require(file);
    } catch (e) {
      throw new Error(`bpfnet's provider module ${file} cannot be loaded (${(e as Error).message}): is the bpfnet package still installed there?`);
    }
    return mod[exportName][method](...args);
  };
  const stub: Record<string, unknown> = {};
  for (const method of METHODS) if (typeof provider[method] === "function") stub[method] = (...args: unknown[]) => call(method, args);
  return stub as P;
}
