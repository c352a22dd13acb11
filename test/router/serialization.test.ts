// RouterRoute's provider survives Pulumi's closure serialization and runs in a fresh Node process
// the way the dynamic provider host loads it (require-from-string of the text, then `.handler()`),
// and that process exits by itself once the pooled connection goes idle.
import { execFile } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { routerRouteProvider } from "../../provider/router/routerRoute";
import { startTestLab, TestLab } from "../support/lab";
import { REPO } from "../support/pulumi";
import { eventually, frrStatics, kernelRoutes, routeInputs } from "./helpers";

let lab: TestLab;
let dir: string;
let file: string;
const router = () => lab.inventory.router!;
const hostIp = (i: number) => lab.inventory.hosts[i].underlayIp;

beforeAll(async () => {
  lab = await startTestLab("trt3", 242, "l3", 2);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "bpfnet-router-ser-"));
  const sf = await pulumi.runtime.serializeFunction(() => routerRouteProvider, { allowSecrets: true });
  file = path.join(dir, "provider.js");
  fs.writeFileSync(file, sf.text);
});
afterAll(() => {
  lab?.down();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** Loads the serialized provider in a fresh node (cwd = the project) and calls one method; no process.exit. */
function callFresh(method: string, ...args: unknown[]): Promise<{ result: any; ms: number }> {
  const driver = `
    const text = require("fs").readFileSync(${JSON.stringify(file)}, "utf8");
    const provider = require("require-from-string")(text).handler();
    provider[${JSON.stringify(method)}](...JSON.parse(process.argv[1])).then(
      (r) => process.stdout.write(JSON.stringify(r === undefined ? null : r)),
      (e) => { process.stderr.write(String(e && e.message)); process.exitCode = 2; });`;
  const t0 = Date.now();
  return new Promise((resolve, reject) =>
    execFile(process.execPath, ["-e", driver, JSON.stringify(args)], { cwd: REPO, timeout: 30_000, env: { ...process.env, NODE_OPTIONS: "" } }, (err, out, errText) =>
      err ? reject(new Error(`fresh ${method} failed: ${errText || err.message}`)) : resolve({ result: JSON.parse(out), ms: Date.now() - t0 }),
    ),
  );
}

test("the serialized text requires ssh2 at run time and captures no module internals, paths or keys", async () => {
  const text = fs.readFileSync(file, "utf8");
  expect(text).toContain('require("ssh2")');
  expect(text).not.toContain("__dirname");
  expect(text).not.toContain("@pulumi/pulumi");
  expect(text).not.toMatch(/PRIVATE KEY/);
  expect(text.length).toBeLessThan(200_000);
  const strict = await pulumi.runtime.serializeFunction(() => routerRouteProvider, { allowSecrets: false });
  expect(strict.containsSecrets).toBe(false);
});

describe.each(["linux", "frr"] as const)("%s: check, create, read, update, delete from the serialized text", (driver) => {
  const prefix = driver === "linux" ? "10.242.100.0/24" : "10.242.101.0/24";

  test("each call runs in its own process, which exits once the connection idles", async () => {
    const inputs = routeInputs(router(), driver, prefix, hostIp(0));
    const checked = (await callFresh("check", {}, inputs)).result;
    expect(checked.failures).toEqual([]);
    const bad = (await callFresh("check", {}, { ...inputs, prefix: "10.242.100.1/24" })).result;
    expect(bad.failures).toEqual([{ property: "prefix", reason: 'prefix "10.242.100.1/24" has host bits set; the network is "10.242.100.0/24"' }]);

    const created = await callFresh("create", checked.inputs);
    // The process ended by itself: the pooled connection closed after its idle timeout.
    expect(created.ms).toBeLessThan(10_000);
    await eventually(() => kernelRoutes(router(), prefix), (s) => s.includes(`via ${hostIp(0)} `));
    if (driver === "frr") expect(frrStatics(router(), prefix)).toEqual([`ip route ${prefix} ${hostIp(0)} tag 178`]);

    const { id, outs } = created.result;
    expect((await callFresh("read", id, outs)).result).toEqual({ id, props: outs });
    const updated = (await callFresh("update", id, outs, { ...checked.inputs, nextHop: hostIp(1) })).result;
    await eventually(() => kernelRoutes(router(), prefix), (s) => s.includes(`via ${hostIp(1)} `));
    await callFresh("delete", id, updated.outs);
    expect(await eventually(() => kernelRoutes(router(), prefix), (s) => s === "")).toBe("");
    expect(frrStatics(router(), prefix)).toEqual([]);
  });
});
