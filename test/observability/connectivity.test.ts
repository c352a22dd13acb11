/**
 * `bpfnet connectivity test` against real agents, as an operator runs it (over SSH from the
 * inventory): it passes on a 3-host vxlan lab and a 2-host l3 lab, fails naming the broken
 * paths when a host's programs are detached, and leaves nothing behind — also when SIGTERM
 * interrupts it.
 */
import { execFileSync, spawn, spawnSync } from "child_process";
import { randomUUID } from "crypto";
import * as fs from "fs";
import { TcHook } from "../../bpf";
import * as os from "os";
import * as path from "path";
import { withEtcd } from "../../provider/etcd/etcdClient";
import { policiesDir } from "../../provider/etcd/keys";
import { checkServiceSpec } from "../../provider/services/serviceSpec";
import { writeService } from "../../provider/services/serviceStore";
import { CLI, waitFor } from "../agent/support/agents";
import { AgentLab, startAgentLab } from "./support/agentLab";

function connectivity(L: AgentLab, extra: string[] = []): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, [CLI, "connectivity", "test", "--inventory", L.inventoryFile, ...extra], { encoding: "utf8", timeout: 300_000 });
  return { status: r.status, out: r.stdout + r.stderr };
}

/** The lab's etcd connection as an admin would pass it: a JSON file, here under a hostile directory name. */
function adminConnectionFile(L: AgentLab): string {
  const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "bpfnet-ct-admin-")), "a b;$(id)`x`'q'");
  fs.mkdirSync(dir);
  const file = path.join(dir, "etcd.json");
  fs.writeFileSync(file, JSON.stringify({ etcdConnection: L.etcd.connection }), { mode: 0o600 });
  return file;
}

/** The connectivity test's policies left in etcd (none once it ended). */
async function policiesLeft(L: AgentLab): Promise<string[]> {
  const keys = await withEtcd(L.etcd.connection, (c) => c.getAll().prefix(policiesDir(L.prefix)).keys());
  return keys.filter((k) => k.includes("bpfnet-ct-"));
}

/** Nothing the test made is left: no namespace, no endpoint on any agent. */
async function nothingLeft(L: AgentLab): Promise<void> {
  expect(fs.readdirSync("/run/netns").filter((n) => n.startsWith("bpfnet-ct-"))).toEqual([]);
  for (const a of L.agents) expect((await a.client.listEndpoints()).map((e) => e.id).filter((id) => id.startsWith("bpfnet-ct-"))).toEqual([]);
}

describe("vxlan, 3 hosts", () => {
  let L: AgentLab | undefined;
  beforeAll(async () => {
    L = await startAgentLab({ name: "thl2", octet: 116, topology: "vxlan", hosts: 3, clusterCidr: "10.83.0.0/16", serviceCidr: "10.116.96.0/24" });
  }, 180_000);
  afterAll(async () => {
    await L?.down();
  }, 90_000);

  test("every check passes, one line each and a summary; nothing is left", async () => {
    const r = connectivity(L!);
    const checks = [
      ...["h1", "h2", "h3"].map((h) => `container→container same host (${h})`),
      ...["h1→h2", "h1→h3", "h2→h1", "h2→h3", "h3→h1", "h3→h2"].map((p) => `container→container ${p}`),
      ...["h1", "h2", "h3"].flatMap((h) => [`container→host (${h})`, `host→container (${h})`]),
      ...["h1→h2", "h2→h3", "h3→h1"].flatMap((p) => [`container→another host ${p}`, `host→another host's container ${p}`, `MTU 1450 with DF ${p}`]),
      "health matrix (the agents' probes)",
    ];
    for (const c of checks) expect(r.out).toContain(`✔ pass  ${c}  (`);
    expect(r.out).toMatch(/✔ pass {2}container→container h1→h2 {2}\(2\/2, rtt [\d.]+ ms\)/);
    expect(r.out).toContain(`connectivity test: ${checks.length}/${checks.length} checks passed, 2 skipped`);
    expect(r.out).toContain("- skip  service VIPs: no TCP service with backends in this network");
    expect(r.out).toContain("- skip  policy denials: not run: writing the temporary policy needs admin etcd credentials (--etcd-connection FILE");
    expect(r.out).not.toContain("FAIL");
    expect(r.status).toBe(0);
    await nothingLeft(L!);
  }, 300_000);

  test("with admin credentials: a temporary policy on the test's own endpoints denies b→b and host→b, a→b still passes; removed after", async () => {
    const file = adminConnectionFile(L!);
    try {
      const r = connectivity(L!, ["--etcd-connection", file]);
      expect(r.out).toMatch(/✔ pass {2}temporary policy enforced on every host {2}\(policy bpfnet-ct-\d+-[0-9a-f]{8}\)/);
      expect(r.out).toMatch(/✔ pass {2}policy allows h1 a→h2 b {2}\(2\/2/);
      expect(r.out).toContain("✔ pass  policy denies host→container b (h1)  (refused)");
      expect(r.out).toContain("✔ pass  policy denies h1 b→h2 b  (refused)");
      expect(r.out).toMatch(/connectivity test: (\d+)\/\1 checks passed, 1 skipped/);
      expect(r.out).not.toContain("policy denials: not run");
      expect(r.status).toBe(0);
      expect(await policiesLeft(L!)).toEqual([]);
      await nothingLeft(L!);
    } finally {
      fs.rmSync(path.dirname(path.dirname(file)), { recursive: true, force: true });
    }
  }, 300_000);

  test("with h2's programs detached it fails, naming the paths through h2", async () => {
    const h2 = L!.agents[1];
    for (const p of (await h2.status()).programs) TcHook.open(p.ifindex, p.direction, { netns: h2.netns }).detach();
    try {
      const r = connectivity(L!);
      expect(r.out).toMatch(/✘ FAIL {2}container→container h1→h2 {2}\(0\/2/);
      expect(r.out).toMatch(/✘ FAIL {2}host→another host's container h1→h2/);
      expect(r.out).toContain("✔ pass  container→container h1→h3");
      expect(r.out).toMatch(/connectivity test: \d+\/\d+ checks passed, \d+ FAILED/);
      expect(r.status).toBe(1);
      await nothingLeft(L!);
    } finally {
      await h2.stop();
      await h2.start(60_000); // attaches them again
    }
  }, 300_000);

  test("a service with a backend: its VIP answers from every host's container", async () => {
    const checked = checkServiceSpec({ serviceName: "echo", frontend: { ports: [{ port: 80, targetPort: 8080 }] }, selector: { app: "ctecho" } });
    const { service } = await withEtcd(L!.etcd.connection, (c) => writeService(c, L!.prefix, checked.spec!, randomUUID()));
    spawnSync("ip", ["netns", "del", "thlce"]);
    execFileSync("ip", ["netns", "add", "thlce"]);
    try {
      await L!.agents[0].client.addEndpoint({ id: "echo", netns: "/run/netns/thlce", labels: { app: "ctecho" } });
      for (const a of L!.agents) {
        await waitFor(`${a.host.name} programming echo's backend`, async () => (await a.client.services()).services.some((sv) => sv.name === "echo" && sv.ports[0].backends.some((b) => b.state === "active")), 60_000);
      }
      const r = connectivity(L!);
      // Nothing listens on the backend: a refused connection shows the VIP reached it.
      for (const h of ["h1", "h2", "h3"]) expect(r.out).toMatch(new RegExp(`✔ pass {2}service echo ${service.frontend.ip.replace(/\./g, "\\.")}:80/TCP from ${h} {2}\\(.*(refused|connected)`));
      expect(r.out).toMatch(/connectivity test: (\d+)\/\1 checks passed, 1 skipped/);
      expect(r.status).toBe(0);
      await nothingLeft(L!);
    } finally {
      await L!.agents[0].client.deleteEndpoint("echo");
      spawnSync("ip", ["netns", "del", "thlce"]);
    }
  }, 300_000);

  test("SIGTERM while the temporary policy is in place: the policy and the endpoints are removed, exit 143", async () => {
    const file = adminConnectionFile(L!);
    const child = spawn(process.execPath, [CLI, "connectivity", "test", "--inventory", L!.inventoryFile, "--etcd-connection", file], { stdio: ["ignore", "pipe", "pipe"] });
    try {
      let out = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      child.stderr.on("data", (d: Buffer) => (out += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
      // Interrupted as soon as its policy is in etcd (it then waits for the agents, and probes).
      await waitFor("the temporary policy in etcd", async () => (await policiesLeft(L!)).length === 1, 240_000, 50);
      child.kill("SIGTERM");
      expect(await exited).toBe(143);
      expect(out).toContain("SIGTERM: removing the temporary endpoints");
      expect(out).not.toMatch(/connectivity test: \d+\/\d+ checks passed/); // it did not get to the end
      expect(await policiesLeft(L!)).toEqual([]);
      await nothingLeft(L!);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      fs.rmSync(path.dirname(path.dirname(file)), { recursive: true, force: true });
    }
  }, 300_000);
});

describe("l3, 2 hosts behind a router", () => {
  let L: AgentLab | undefined;
  beforeAll(async () => {
    L = await startAgentLab({ name: "thl3", octet: 117, topology: "l3", hosts: 2, clusterCidr: "10.84.0.0/16" });
  }, 180_000);
  afterAll(async () => {
    await L?.down();
  }, 90_000);

  test("every check passes", async () => {
    const r = connectivity(L!);
    expect(r.out).toContain("✔ pass  container→container h1→h2");
    expect(r.out).toContain("✔ pass  MTU 1500 with DF h1→h2");
    expect(r.out).toMatch(/connectivity test: (\d+)\/\1 checks passed, 2 skipped/);
    expect(r.status).toBe(0);
    await nothingLeft(L!);
  }, 300_000);
});
