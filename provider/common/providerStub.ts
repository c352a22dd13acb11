// What every bpfnet dynamic resource registers as its provider. Pulumi stores every dynamic
// resource's provider serialized into the state (its code and all it reaches: 55-75 KB of
// JavaScript per resource, ~110-150 KB as JSON), and the file backend rewrites the whole state
// after every step: a Network of 200 hosts held a ~50 MB state written ~400 times in one `up`.
// The stub serializes to the path of the provider's compiled module and its export name (~3 KB); the provider process loads the module from there once (Node's module cache),
// instead of evaluating a copy per resource.
import * as fs from "fs";
import * as path from "path";
import type * as pulumi from "@pulumi/pulumi";

// configure: an explicit provider's config (provider/etcd/sharedConnection.ts), before any other method.
const METHODS = ["configure", "check", "diff", "create", "read", "update", "delete"] as const;

/** The package root above `file` (the nearest directory with a package.json), or undefined. */
function packageRoot(file: string): string | undefined {
  for (let dir = path.dirname(file); path.dirname(dir) !== dir; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, "package.json"))) return dir;
  }
  return undefined;
}

/** The newest mtime of the files under `dir` whose names end with `ext` (not .d.ts), node_modules skipped. */
function newestUnder(dir: string, ext: string): number {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== "node_modules") newest = Math.max(newest, newestUnder(full, ext));
    } else if (entry.name.endsWith(ext) && !entry.name.endsWith(".d.ts")) {
      newest = Math.max(newest, fs.statSync(full).mtimeMs);
    }
  }
  return newest;
}

const currentByRoot = new Map<string, boolean>();

/**
 * What the package build compiles, as top-level names: the first path segment of each pattern
 * in tsconfig.build.json's "include" (a checkout); none when there is no such file.
 */
function builtRoots(root: string): string[] {
  const config = path.join(root, "tsconfig.build.json");
  if (!fs.existsSync(config)) return [];
  const text = fs.readFileSync(config, "utf8").replace(/^\s*\/\/.*$/gm, "");
  const include: unknown = JSON.parse(text).include;
  return Array.isArray(include) ? [...new Set(include.filter((p): p is string => typeof p === "string").map((p) => p.split("/")[0]))] : [];
}

/**
 * Is the package's dist/ built from its current sources? The build is incremental (an unchanged
 * source keeps its old .js), so the question is asked of the whole build, not of one module (a
 * provider module imports others): the newest source the build compiles must not be newer than
 * the newest file it compiled. Asked once per process.
 */
function distIsCurrent(root: string): boolean {
  const known = currentByRoot.get(root);
  if (known !== undefined) return known;
  let current = false;
  try {
    let newestSource = 0;
    let newestCompiled = 0;
    for (const name of builtRoots(root)) {
      const source = path.join(root, name);
      const compiled = path.join(root, "dist", name.replace(/\.ts$/, ".js"));
      if (!fs.existsSync(source)) continue;
      const isDir = fs.statSync(source).isDirectory();
      newestSource = Math.max(newestSource, isDir ? newestUnder(source, ".ts") : fs.statSync(source).mtimeMs);
      if (fs.existsSync(compiled)) newestCompiled = Math.max(newestCompiled, isDir ? newestUnder(compiled, ".js") : fs.statSync(compiled).mtimeMs);
    }
    current = newestSource > 0 && newestCompiled >= newestSource;
  } catch {
    current = false;
  }
  currentByRoot.set(root, current);
  return current;
}

/**
 * The compiled JavaScript of `moduleFile`: itself when it is JavaScript (the installed package);
 * for a TypeScript source (a checkout run by ts-node), dist/<same path>.js of the package when
 * dist/ is built from the current sources (or `evenIfStale`); else undefined (stale or unbuilt:
 * the caller keeps the provider's own code, which is always current).
 */
export function compiledModule(moduleFile: string, evenIfStale = false): string | undefined {
  if (moduleFile.endsWith(".js")) return moduleFile;
  if (!moduleFile.endsWith(".ts")) return undefined;
  const root = packageRoot(moduleFile);
  if (!root) return undefined;
  const compiled = path.join(root, "dist", path.relative(root, moduleFile)).replace(/\.ts$/, ".js");
  return fs.existsSync(compiled) && (evenIfStale || distIsCurrent(root)) ? compiled : undefined;
}

/** How the stub finds the module again: its absolute path, and the package's name + subpath for a moved package. */
function moduleAddress(file: string): { file: string; packageSpecifier?: string } {
  const root = packageRoot(file);
  if (!root) return { file };
  try {
    const name = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")).name;
    if (typeof name !== "string" || !name) return { file };
    return { file, packageSpecifier: `${name}/${path.relative(root, file).split(path.sep).join("/")}` };
  } catch {
    return { file };
  }
}

/**
 * `provider` as a stub loading `exportName` of `moduleFile`'s compiled module at run time, or
 * `provider` itself when no current compiled module exists. The state names the module by
 * absolute path and by package name + subpath: when the path is gone (the project or package
 * moved), the stub resolves the package from the program's directory; when neither loads, it
 * fails saying so (reinstall the package, or run one `pulumi up` from the moved project).
 */
export function lightProvider<P extends pulumi.dynamic.ResourceProvider>(provider: P, moduleFile: string, exportName: string): P {
  // BPFNET_PROVIDER_STUB=0: the provider's own code in the state, as before (bench/networkScale.ts's baseline);
  // "force": dist/ even when a source is newer (a checkout others edit while a bench or test runs on a fresh build).
  const mode = process.env.BPFNET_PROVIDER_STUB;
  const compiled = mode === "0" ? undefined : compiledModule(moduleFile, mode === "force");
  if (!compiled) return provider;
  const { file, packageSpecifier } = moduleAddress(compiled);
  const call = (method: string, args: unknown[]): unknown => {
    let mod: Record<string, Record<string, (...a: unknown[]) => unknown>>;
    try {
      mod = require(file);
    } catch (e) {
      let moved: string | undefined;
      try {
        moved = packageSpecifier ? require.resolve(packageSpecifier, { paths: [process.cwd()] }) : undefined;
      } catch {
        moved = undefined;
      }
      if (!moved) throw new Error(`bpfnet's provider module ${file} cannot be loaded (${(e as Error).message}), nor ${packageSpecifier ?? "its package"} from ${process.cwd()}: is the bpfnet package still installed?`);
      mod = require(moved);
    }
    return mod[exportName][method](...args);
  };
  const stub: Record<string, unknown> = {};
  for (const method of METHODS) if (typeof provider[method] === "function") stub[method] = (...args: unknown[]) => call(method, args);
  return stub as P;
}
