// Hostile input (issue 8 §1): every field of every resource gets spaces, ";", $(…), backticks,
// newlines, "..", quotes. Either `check` (what preview runs) refuses it naming the field and the
// value, or the value is carried safely: proven on a real lab host, where quoting is the only thing
// between a hostile directory name and a root shell. Canary files prove no command ran. Then the
// same through the real Pulumi CLI: `pulumi preview` of a Network fails naming the field.
import { execFile } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { promisify } from "util";
import { inventoryPath } from "../../lab/lab";
import { sshConnectionFor } from "../../lab/inventory";
import { nodeAgentProvider } from "../../provider/agent/nodeAgent";
import { etcdMemberProvider } from "../../provider/etcd/etcdMember";
import { hostProbeProvider } from "../../provider/host/hostProbe";
import { containerNetworkProvider } from "../../provider/network/containerNetwork";
import { hostAllocationProvider } from "../../provider/ipam/hostAllocation";
import { routerRouteProvider } from "../../provider/router/routerRoute";
import { withSsh } from "../../provider/host/ssh";
import { shellWords } from "../../provider/common/shell";
import { ServiceSpec, isRunningCommand, serviceFiles, startCommand, stopCommand, supervisorScript, systemdUnit } from "../../provider/host/supervisor";
import { startTestLab, TestLab } from "../support/lab";
import { REPO, pulumiEnv } from "../support/pulumi";
import { cleanupAll } from "../support/cleanup";

const LAB = "tsec1";
const OCTET = 150;
const CANARY_DIR = `/tmp/bpfnet-tsec1-canary-${process.pid}`;
const canary = (tag: string) => path.join(CANARY_DIR, tag);
const canaries = () => (fs.existsSync(CANARY_DIR) ? fs.readdirSync(CANARY_DIR) : []);

/** Hostile values; each would create a canary file if a shell ever ran it. */
const hostile = (tag: string) => [
  `/opt/bp fnet`,
  `/opt/x;touch ${canary(tag)}`,
  `/opt/$(touch ${canary(tag)})`,
  `/opt/\`touch ${canary(tag)}\``,
  `/opt/x\ntouch ${canary(tag)}`,
  `/opt/../etc`,
  `/opt/'x'`,
  `/opt/"x"`,
  `eth0;touch ${canary(tag)}`,
];

type Provider = { check(olds: unknown, news: unknown): Promise<{ failures?: { property: string; reason: string }[] }> };
const set = (obj: Record<string, unknown>, dotted: string, value: unknown): Record<string, unknown> => {
  const copy = JSON.parse(JSON.stringify(obj)) as Record<string, unknown>;
  const keys = dotted.split(".");
  let at = copy as Record<string, unknown>;
  for (const k of keys.slice(0, -1)) at = at[k] as Record<string, unknown>;
  at[keys[keys.length - 1]] = value;
  return copy;
};

const endpoint = { host: "10.150.0.11", port: 22, user: "root", hostKeyFingerprint: `SHA256:${"A".repeat(43)}` };
const etcd = { endpoints: ["https://10.150.0.11:2379"], caPem: "ca", certPem: "cert", keyPem: "key" };
const memberSpec = {
  name: "h1", address: "10.150.0.11", clientPort: 2379, peerPort: 2380, peers: [{ name: "h1", address: "10.150.0.11" }],
  clusterToken: "net-etcd", dir: "/var/lib/bpfnet/etcd", binary: "/usr/bin/etcd", flags: { "auto-compaction-retention": "1" },
};
const agentSpec = {
  hostName: "h1", networkPrefix: "/bpfnet/net", installDir: "/opt/bpfnet", stateDir: "/var/lib/bpfnet", bpffsDir: "/sys/fs/bpf/bpfnet",
  underlayInterface: "eth0", underlayIp: "10.150.1.11", nodePath: "/usr/bin/node",
};

/** Every string field a user sets, per resource: the base inputs pass check, the hostile ones must not. */
const resources: { name: string; provider: Provider; base: Record<string, unknown>; fields: string[] }[] = [
  { name: "HostProbe", provider: hostProbeProvider as unknown as Provider, base: { connection: endpoint, privateKeys: ["k"] }, fields: ["connection.host", "connection.user", "connection.hostKeyFingerprint"] },
  {
    name: "EtcdMember",
    provider: etcdMemberProvider as unknown as Provider,
    base: { connection: endpoint, privateKeys: ["k"], spec: memberSpec, caPem: "ca", certPem: "c", keyPem: "k" },
    fields: ["connection.host", "connection.user", "spec.name", "spec.address", "spec.clusterToken", "spec.dir", "spec.binary", "spec.flags.auto-compaction-retention", "spec.peers.0.name", "spec.peers.0.address"],
  },
  {
    name: "NodeAgent",
    provider: nodeAgentProvider as unknown as Provider,
    base: { connection: endpoint, privateKeys: ["k"], spec: agentSpec, etcd, bundlePath: __filename, bundleSha256: "a".repeat(64) },
    fields: ["connection.host", "connection.user", ...Object.keys(agentSpec).map((k) => `spec.${k}`), "bundleSha256"],
  },
  {
    name: "RouterRoute",
    provider: routerRouteProvider as unknown as Provider,
    base: { router: { connection: endpoint, driver: "linux" }, privateKeys: ["k"], prefix: "10.244.1.0/24", nextHop: "10.150.1.11" },
    fields: ["router.connection.host", "router.connection.user", "router.driver", "router.table", "router.protocol", "prefix", "nextHop"],
  },
  {
    name: "ContainerNetwork",
    provider: containerNetworkProvider as unknown as Provider,
    base: { connection: etcd, networkName: "net", mode: "vxlan", clusterCidr: "10.244.0.0/16" },
    fields: ["networkName", "prefix", "mode", "clusterCidr", "serviceCidr"],
  },
  {
    name: "HostAllocation",
    provider: hostAllocationProvider as unknown as Provider,
    base: { connection: etcd, prefix: "/bpfnet/net", host: "h1" },
    fields: ["prefix", "host", "networkName", "clusterCidr", "requestedCidr"],
  },
];

beforeAll(() => fs.mkdirSync(CANARY_DIR, { recursive: true }));
afterAll(() => fs.rmSync(CANARY_DIR, { recursive: true, force: true }));

describe.each(resources)("$name: check refuses every hostile value, naming the field and the value", ({ provider, base, fields }) => {
  test("the base inputs pass", async () => {
    expect((await provider.check(undefined, base)).failures ?? []).toEqual([]);
  });
  test.each(fields)("%s", async (field) => {
    const leaf = field.split(".").pop()!;
    for (const value of hostile(field)) {
      const failures = (await provider.check(undefined, set(base, field, value))).failures ?? [];
      const named = failures.filter((f) => f.reason.includes(JSON.stringify(value)) && (f.reason.includes(leaf) || f.property === leaf));
      if (named.length === 0) throw new Error(`${field} = ${JSON.stringify(value)} was not refused by name: ${JSON.stringify(failures)}`);
    }
    expect(canaries()).toEqual([]);
  });
});

describe("on a real lab host, quoting keeps hostile names inert (check bypassed on purpose)", () => {
  let lab: TestLab;
  let base: string;
  beforeAll(async () => {
    lab = await startTestLab(LAB, OCTET, "vxlan", 1);
    base = path.join(lab.stateDir, "hostile");
    fs.mkdirSync(base, { recursive: true });
    fs.writeFileSync(path.join(base, "sentinel"), "must survive\n");
  }, 180_000);
  afterAll(() => cleanupAll([() => lab?.down()]), 120_000);

  test("a supervised daemon in a directory named with every hostile character starts, stops and is removed alone", async () => {
    const dir = path.join(base, `x y;touch ${canary("dir1")} $(touch ${canary("dir2")}) \`touch ${canary("dir3")}\` 'q' "q" ..`);
    const service: ServiceSpec = {
      name: "bpfnet-tsec1",
      dir,
      // The last word becomes sh's $0: carried as a word, never run.
      argv: ["/bin/sh", "-c", "exec sleep 300", `$(touch ${canary("argv")});x`],
      description: `hostile\nExecStartPre=/bin/touch ${canary("unit")}`,
    };
    const f = serviceFiles(service);
    await withSsh(sshConnectionFor(lab.inventory.hosts[0].ssh), async (s) => {
      await s.run(shellWords(["mkdir", "-p", dir]));
      await s.writeFile(f.supervisor, supervisorScript(service), 0o755);
      await s.run(startCommand(service, "process"));
      const deadline = Date.now() + 30_000;
      while ((await s.run(isRunningCommand(service, "process"))).trim() !== "running") {
        if (Date.now() > deadline) throw new Error(`never running; log: ${fs.existsSync(f.log) ? fs.readFileSync(f.log, "utf8") : "none"}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      // The literal directory holds the pid files: the names reached the shell as one word each.
      const pid = fs.readFileSync(f.pid, "utf8").trim();
      expect(fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")).toEqual(["sleep", "300", ""]);
      await s.run(stopCommand(service, "process"));
      expect((await s.run(isRunningCommand(service, "process"))).trim()).toBe("stopped");
      expect(fs.existsSync(f.stop)).toBe(true);
      // What EtcdMember's delete runs: only the directory goes, never its parent (the old `rm -rf ${dir}` split it).
      await s.run(shellWords(["rm", "-rf", dir]));
    });
    expect(fs.existsSync(dir)).toBe(false);
    expect(fs.readFileSync(path.join(base, "sentinel"), "utf8")).toBe("must survive\n");
    expect(fs.existsSync(path.dirname(dir))).toBe(true); // the canary paths' "/" nest it: its parent stays
    expect(canaries()).toEqual([]);
    // The unit file for the same service keeps every word and the description on their lines.
    const unit = systemdUnit(service);
    expect(unit.split("\n").filter((l) => l.startsWith("ExecStartPre"))).toEqual([]);
    expect(unit).toContain(`ExecStart="/bin/sh" "-c" "exec sleep 300" "$$(touch ${canary("argv")});x"`);
  }, 120_000);

  test("a file written over SFTP gets its mode even when it already exists", async () => {
    const file = path.join(base, "key.pem");
    fs.writeFileSync(file, "old\n", { mode: 0o644 });
    fs.chmodSync(file, 0o644);
    await withSsh(sshConnectionFor(lab.inventory.hosts[0].ssh), (s) => s.writeFile(file, "secret\n", 0o600));
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(file, "utf8")).toBe("secret\n");
    fs.rmSync(file);
  }, 60_000);

  describe("through the real Pulumi CLI", () => {
    const PROJECT = path.join(REPO, "test", "projects", "hostile");
    const stack = `tsec1-${process.pid}`;
    const pulumi = (...args: string[]) =>
      promisify(execFile)("pulumi", [args[0], "--stack", stack, "--non-interactive", ...args.slice(1)], { cwd: PROJECT, env: { ...process.env, ...pulumiEnv() }, maxBuffer: 16 << 20 }).then(
        (r) => ({ code: 0, out: r.stdout + r.stderr }),
        (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? 1, out: `${e.stdout ?? ""}${e.stderr ?? ""}` }),
      );
    beforeAll(async () => {
      const init = await promisify(execFile)("pulumi", ["stack", "init", stack, "--non-interactive"], { cwd: PROJECT, env: { ...process.env, ...pulumiEnv() } });
      expect(init.stderr).not.toMatch(/error/i);
      expect((await pulumi("config", "set", "inventory", inventoryPath(lab.stateDir))).code).toBe(0);
    }, 120_000);
    afterAll(async () => {
      const rm = await promisify(execFile)("pulumi", ["stack", "rm", stack, "--yes", "--force", "--non-interactive"], { cwd: PROJECT, env: { ...process.env, ...pulumiEnv() } });
      expect(rm.stdout).toContain("has been removed");
      fs.rmSync(path.join(PROJECT, `Pulumi.${stack}.yaml`), { force: true });
    }, 120_000);

    test.each([
      ["agent.installDir", (c: string) => `/opt/bpfnet$(touch ${c})`, /spec\.installDir must be an absolute, normalized path/],
      ["agent.underlayInterface", (c: string) => `eth0;touch ${c}`, /spec\.underlayInterface must be a Linux interface name/],
      ["installDir", (c: string) => `/opt/bp fnet/\`touch ${c}\``, /installDir must be an absolute, normalized path/],
      ["etcdFlag", (c: string) => `1\ndata-dir: ${c}`, /flags\.auto-compaction-retention must be one word/],
      ["cluster.etcdBinary", (c: string) => `/usr/bin/etcd;touch ${c}`, /spec\.binary must be an absolute, normalized path/],
      [
        "all",
        (c: string) => `/x $(touch ${c})`,
        /(?=[\s\S]*installDir must)(?=[\s\S]*stateDir must)(?=[\s\S]*bpffsDir must)(?=[\s\S]*underlayInterface must)(?=[\s\S]*controlAddress must)(?=[\s\S]*nodePath must)/,
      ],
    ])("pulumi preview with a hostile %s fails naming it; nothing runs", async (field, value, named) => {
      const v = value(canary(`cli-${field}`));
      expect((await pulumi("config", "set", "field", field)).code).toBe(0);
      expect((await pulumi("config", "set", "value", "--", v)).code).toBe(0);
      const preview = await pulumi("preview", "--diff");
      expect(preview.code).not.toBe(0);
      expect(preview.out).toMatch(named);
      expect(preview.out).toContain(JSON.stringify(v).slice(1, 20));
      expect(canaries()).toEqual([]);
    }, 180_000);
  });
});
