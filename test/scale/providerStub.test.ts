// Every bpfnet dynamic resource registers a stub provider (provider/common/providerStub.ts):
// serialized into every resource's state it is ~3 KB instead of the provider's
// code, and run the way Pulumi's provider host runs it (a fresh process, require-from-string) it
// loads the compiled module and does the real work; stale or missing compiled code is never used.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { containerNetworkProvider } from "../../provider/network/containerNetwork";
import { hostAllocationProvider } from "../../provider/ipam/hostAllocation";
import { routerRouteProvider } from "../../provider/router/routerRoute";
import { nodeAgentProvider } from "../../provider/agent/nodeAgent";
import { etcdHostAccessProvider } from "../../provider/etcd/etcdHostAccess";
import { etcdPkiProvider } from "../../provider/etcd/etcdPki";
import { etcdMemberProvider } from "../../provider/etcd/etcdMember";
import { etcdHealthProvider } from "../../provider/etcd/etcdHealth";
import { etcdAuthProvider } from "../../provider/etcd/etcdAuth";
import { serviceProvider } from "../../provider/services/service";
import { networkPolicyProvider } from "../../provider/policy/networkPolicy";
import { hostProbeProvider } from "../../provider/host/hostProbe";
import type * as pulumi from "@pulumi/pulumi";
import { compiledModule, lightProvider } from "../../provider/common/providerStub";
import { hostKey } from "../../provider/etcd/keys";
import { startEtcd, TestEtcd } from "../support/etcd";
import { callFresh, callFreshIn, serialize } from "../support/serialized";
import { getValue, keysUnder } from "../etcd/helpers";

const ROOT = path.resolve(__dirname, "../..");
let dir: string;
let etcd: TestEtcd | undefined;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "bpfnet-stub-"));
});
afterAll(async () => {
  await etcd?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A package with one TypeScript source and its compiled module, the source `sourceAge` ms newer (negative: older). */
function fakePackage(name: string, sourceNewerByMs: number): { source: string; compiled: string } {
  const pkg = path.join(dir, name);
  fs.mkdirSync(path.join(pkg, "src"), { recursive: true });
  fs.mkdirSync(path.join(pkg, "dist", "src"), { recursive: true });
  fs.writeFileSync(path.join(pkg, "package.json"), `{"name":"${name}"}`);
  fs.writeFileSync(path.join(pkg, "tsconfig.build.json"), `// what the build compiles\n{"include": ["src/**/*.ts"]}`);
  const source = path.join(pkg, "src", "prov.ts");
  const compiled = path.join(pkg, "dist", "src", "prov.js");
  fs.writeFileSync(source, "export const prov = {};\n");
  fs.writeFileSync(compiled, `exports.prov = { check: async (olds, news) => ({ inputs: { ...news, from: "compiled" }, failures: [] }) };\n`);
  const t = Date.now() / 1000;
  fs.utimesSync(compiled, t, t);
  fs.utimesSync(source, t + sourceNewerByMs / 1000, t + sourceNewerByMs / 1000);
  return { source, compiled };
}

test("a TypeScript source maps to its package's dist/ module only while that is current; JavaScript is itself", () => {
  const fresh = fakePackage("fresh", -5_000);
  expect(compiledModule(fresh.source)).toBe(fresh.compiled);
  const stale = fakePackage("stale", 5_000);
  expect(compiledModule(stale.source)).toBeUndefined();
  expect(compiledModule(fresh.compiled)).toBe(fresh.compiled);
  fs.rmSync(fresh.compiled);
  expect(compiledModule(fresh.source)).toBeUndefined();
});

test("stale compiled code is never used: the provider's own code is registered instead", () => {
  const stale = fakePackage("stale2", 5_000);
  const own = { check: async () => ({ inputs: {}, failures: [] }), create: async () => ({ id: "x" }) };
  expect(lightProvider(own, stale.source, "prov")).toBe(own);
});

test("the stub runs the compiled module in a fresh process and says clearly when that module is gone", async () => {
  const pkg = fakePackage("runs", -5_000);
  const stub = lightProvider({ check: async () => ({ inputs: {}, failures: [] }), create: async () => ({ id: "x" }) }, pkg.source, "prov");
  const { file } = await serialize(dir, "fake", stub);
  expect(await callFresh(file, "check", {}, { a: 1 })).toEqual({ inputs: { a: 1, from: "compiled" }, failures: [] });
  fs.rmSync(pkg.compiled);
  await expect(callFresh(file, "check", {}, {})).rejects.toThrow(`bpfnet's provider module ${pkg.compiled} cannot be loaded`);
});

test("a source newer than dist/ anywhere in the package makes its compiled modules stale, not only the module's own", () => {
  const pkg = fakePackage("sibling", -5_000);
  const sibling = path.join(path.dirname(pkg.source), "imported.ts");
  fs.writeFileSync(sibling, "export const x = 1;\n");
  const later = fs.statSync(pkg.compiled).mtimeMs / 1000 + 5;
  fs.utimesSync(sibling, later, later);
  expect(compiledModule(pkg.source)).toBeUndefined();
});

test("a moved package is found again by its name from the program's directory; neither place says both", async () => {
  const pkg = fakePackage("movable", -5_000);
  const stub = lightProvider({ check: async () => ({ inputs: {}, failures: [] }), create: async () => ({ id: "x" }) }, pkg.source, "prov");
  const { file } = await serialize(dir, "movable", stub);
  const project = path.join(dir, "project");
  fs.mkdirSync(path.join(project, "node_modules"), { recursive: true });
  fs.renameSync(path.dirname(path.dirname(pkg.source)), path.join(project, "node_modules", "movable"));
  expect(await callFreshIn(project, file, "check", {}, { b: 2 })).toEqual({ inputs: { b: 2, from: "compiled" }, failures: [] });
  await expect(callFreshIn(dir, file, "check", {}, {})).rejects.toThrow(`nor movable/dist/src/prov.js from ${dir}`);
});

test("every bpfnet provider serializes to a ~3 KB stub instead of its code (measured side by side)", async () => {
  const sizes: Record<string, [number, number]> = {};
  for (const [name, p, file] of [
    ["hostAllocationProvider", hostAllocationProvider, "provider/ipam/hostAllocation.ts"],
    ["routerRouteProvider", routerRouteProvider, "provider/router/routerRoute.ts"],
    ["nodeAgentProvider", nodeAgentProvider, "provider/agent/nodeAgent.ts"],
    ["etcdHostAccessProvider", etcdHostAccessProvider, "provider/etcd/etcdHostAccess.ts"],
    ["containerNetworkProvider", containerNetworkProvider, "provider/network/containerNetwork.ts"],
    ["etcdPkiProvider", etcdPkiProvider, "provider/etcd/etcdPki.ts"],
    ["etcdMemberProvider", etcdMemberProvider, "provider/etcd/etcdMember.ts"],
    ["etcdHealthProvider", etcdHealthProvider, "provider/etcd/etcdHealth.ts"],
    ["etcdAuthProvider", etcdAuthProvider, "provider/etcd/etcdAuth.ts"],
    ["serviceProvider", serviceProvider, "provider/services/service.ts"],
    ["networkPolicyProvider", networkPolicyProvider, "provider/policy/networkPolicy.ts"],
    ["hostProbeProvider", hostProbeProvider, "provider/host/hostProbe.ts"],
  ] as [string, pulumi.dynamic.ResourceProvider, string][]) {
    const stub = lightProvider(p, path.join(ROOT, file), name);
    expect(stub).not.toBe(p); // the lab tests' build check keeps dist/ current
    const full = (await serialize(dir, `${name}-full`, p)).text.length;
    const light = (await serialize(dir, `${name}-light`, stub)).text.length;
    sizes[name] = [full, light];
  }
  process.stderr.write(`serialized provider bytes [own code, stub]: ${JSON.stringify(sizes)}\n`);
  for (const [full, light] of Object.values(sizes)) {
    expect(light).toBeLessThan(3_500);
    expect(full).toBeGreaterThan(3 * light);
  }
}, 120_000);

test("HostAllocation's stub allocates, reads and releases for real against etcd from a fresh process", async () => {
  etcd = await startEtcd();
  const conn = etcd.connection;
  const net = await containerNetworkProvider.create(
    (await containerNetworkProvider.check!({} as never, { connection: conn, networkName: "stub", mode: "l3", clusterCidr: "10.93.0.0/24", hostPrefixLength: 28 } as never)).inputs!,
  );
  const { file } = await serialize(dir, "hostAllocation", lightProvider(hostAllocationProvider, path.join(ROOT, "provider/ipam/hostAllocation.ts"), "hostAllocationProvider"));
  const checked = await callFresh(file, "check", {}, { connection: conn, prefix: "/bpfnet/stub", host: "n1; $(reboot)" });
  expect(checked.failures).toContainEqual(expect.objectContaining({ property: "host" }));
  const made = await callFresh(file, "create", { connection: conn, prefix: "/bpfnet/stub", host: "n1" });
  expect(made.outs.podCidr).toMatch(/^10\.93\.0\.\d+\/28$/);
  expect(await getValue(conn, hostKey("/bpfnet/stub", "n1"))).not.toBeNull();
  expect(await callFresh(file, "read", made.id, made.outs)).toEqual({ id: made.id, props: made.outs });
  await callFresh(file, "delete", made.id, made.outs);
  expect(await getValue(conn, hostKey("/bpfnet/stub", "n1"))).toBeNull();
  await containerNetworkProvider.delete!(net.id, net.outs!);
  expect(await keysUnder(conn, "/bpfnet/stub/")).toEqual([]);
}, 120_000);
