// Runs a dynamic provider the way Pulumi's provider host does: serialized by
// pulumi.runtime.serializeFunction, loaded from its text in a fresh Node process (cwd = the
// project), one method called with JSON arguments.
import { execFile } from "child_process";
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";

const ROOT = path.resolve(__dirname, "../..");

/** Serializes `provider` into `dir/<name>.js`; returns the file and its text. */
export async function serialize(dir: string, name: string, provider: object): Promise<{ file: string; text: string }> {
  const sf = await pulumi.runtime.serializeFunction(() => provider, { allowSecrets: true });
  const file = path.join(dir, `${name}.js`);
  fs.writeFileSync(file, sf.text);
  return { file, text: sf.text };
}

/** Loads the serialized provider in a fresh node and calls one method; rejects with its error message. */
export function callFresh(file: string, method: string, ...args: unknown[]): Promise<any> {
  return callFreshIn(ROOT, file, method, ...args);
}

/** callFresh with the provider process started in `cwd` (the program's directory). */
export function callFreshIn(cwd: string, file: string, method: string, ...args: unknown[]): Promise<any> {
  const driver = `
    const text = require("fs").readFileSync(${JSON.stringify(file)}, "utf8");
    const provider = require(${JSON.stringify(require.resolve("require-from-string"))})(text).handler();
    const args = JSON.parse(process.argv[1]);
    provider[${JSON.stringify(method)}](...args).then(
      (r) => { process.stdout.write(JSON.stringify(r === undefined ? null : r)); process.exit(0); },
      (e) => { process.stderr.write(String(e && e.message)); process.exit(2); });`;
  return new Promise((resolve, reject) =>
    execFile(process.execPath, ["-e", driver, JSON.stringify(args)], { cwd, env: { ...process.env, NODE_OPTIONS: "" } }, (err, out, errText) =>
      err ? reject(new Error(`fresh ${method} failed: ${errText || err.message}`)) : resolve(JSON.parse(out)),
    ),
  );
}
