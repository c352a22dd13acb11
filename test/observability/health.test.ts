/**
 * Host-to-host health on a 3-host vxlan lab with real agents (probing every 2 s): each agent's
 * health endpoint (its own namespace, a pod address, ICMP + HTTP), the node record carrying it,
 * the results in etcd and on the API, `bpfnet status`, and `bpfnet health --inventory` over SSH:
 * all paths up (and in h1's Prometheus metrics); h3's underlay link cut → h3's paths shown down within 3 probe intervals; link
 * back → all up again. Stopping an agent leaves no responder behind.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import { readInventory } from "../../lab/inventory";
import { healthRows } from "../../node-agent/cli/health";
import { HEALTH_ENDPOINT_ID } from "../../node-agent/health/endpoint";
import { healthMatrix, parseHealthRecord } from "../../node-agent/health/view";
import { healthDir, nodeKey } from "../../provider/etcd/keys";
import { withEtcd } from "../../provider/etcd/etcdClient";
import { listPrefix } from "../../provider/etcd/etcdOps";
import { CLI, waitFor } from "../agent/support/agents";
import { AgentLab, startAgentLab } from "./support/agentLab";

const INTERVAL_S = 2;
const METRICS_PORT = 9962;
/** h1's Prometheus metrics (served on its control address). */
const h1Metrics = async () => (await fetch(`http://${L!.agents[0].host.ssh.host}:${METRICS_PORT}/metrics`)).text();
/** waitFor, typed for functions that return undefined until ready. */
const until = async <T>(what: string, fn: () => Promise<T | undefined>, timeoutMs?: number, everyMs?: number): Promise<T> => (await waitFor(what, fn, timeoutMs, everyMs)) as T;
let L: AgentLab | undefined;
const names = ["h1", "h2", "h3"];

/** `bpfnet health --inventory` as an operator runs it: status and JSON. */
function healthCli(...extra: string[]): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, [CLI, "health", "--inventory", L!.inventoryFile, ...extra], { encoding: "utf8", timeout: 120_000 });
  return { status: r.status, out: r.stdout + r.stderr };
}

async function matrixNow() {
  const inv = readInventory(L!.inventoryFile);
  return healthMatrix(names, (await healthRows(inv.hosts)).rows);
}

beforeAll(async () => {
  L = await startAgentLab({ name: "thl1", octet: 115, topology: "vxlan", hosts: 3, clusterCidr: "10.82.0.0/16", healthIntervalSeconds: INTERVAL_S, metricsPort: METRICS_PORT });
}, 180_000);

afterAll(async () => {
  await L?.down();
}, 90_000);

test("every agent runs a health endpoint from its pod CIDR, published in its node record", async () => {
  for (const a of L!.agents) {
    const h = await until(`${a.host.name}'s health endpoint`, async () => (await a.client.health()).endpoint, 30_000);
    const ep = (await a.client.getEndpoint(HEALTH_ENDPOINT_ID))!;
    expect(ep.ip).toBe(h.ip);
    expect(ep.status).toBe("ready");
    expect(ep.labels).toEqual({ "bpfnet.io/entity": "health" });
    expect(ep.podCidr).toBe(L!.cidrs[a.host.name]);
    // The responder's namespace is the endpoint's; it answers HTTP there.
    expect(ep.netns).toBe(`/proc/${h.responderPid}/ns/net`);
    const web = spawnSync("nsenter", [`--net=${ep.netns}`, "curl", "-s", "-m", "5", `http://${h.ip}:4240/hello`], { encoding: "utf8" });
    expect(web.stdout).toBe("ok\n");
    await waitFor(`${a.host.name}'s node record with its health address`, () =>
      withEtcd(L!.etcd.connection, async (c) => JSON.parse((await c.get(nodeKey(L!.prefix, a.host.name)).string()) ?? "{}").healthIp === h.ip),
    );
  }
}, 60_000);

test("each agent probes every peer through the datapath; results on the API, in etcd and in `bpfnet status`", async () => {
  for (const a of L!.agents) {
    const h = await until(`${a.host.name} sees both peers reachable`, async () => {
      const s = await a.client.health();
      return s.peers.length === 2 && s.peers.every((p) => p.reachable && p.healthIp && p.endpoint.ok) ? s : undefined;
    }, 60_000);
    for (const p of h.peers) {
      const peer = L!.agents.find((x) => x.host.name === p.peer)!;
      expect(p.underlayIp).toBe(peer.host.underlayIp);
      expect(p.healthIp).toBe((await peer.client.health()).endpoint!.ip);
      expect(p.host.latencyMs).toBeGreaterThan(0);
      expect(p.endpoint.latencyMs).toBeGreaterThan(0);
    }
    const records = await withEtcd(L!.etcd.connection, (c) => listPrefix(c, healthDir(L!.prefix, a.host.name)));
    const parsed = records.map((r) => parseHealthRecord(r.value)!);
    expect(parsed.map((r) => `${r.from}→${r.peer} ${r.reachable}`).sort()).toEqual(h.peers.map((p) => `${a.host.name}→${p.peer} true`));
    const text = a.cli("status");
    expect(text).toMatch(/^health {4}endpoint 10\.82\.\d+\.\d+, probing every 2s$/m);
    for (const p of h.peers) expect(text).toMatch(new RegExp(`^  ${p.peer} +reachable since .*host ${p.underlayIp.replace(/\./g, "\\.")} [\\d.]+ ms, endpoint ${p.healthIp!.replace(/\./g, "\\.")} [\\d.]+ ms$`, "m"));
  }
  // The probes arrive in h1's health namespace: its ICMP echo count grows round after round.
  const netns = (await L!.agents[0].client.getEndpoint(HEALTH_ENDPOINT_ID))!.netns;
  const echoes = () => {
    const [names, values] = spawnSync("nsenter", [`--net=${netns}`, "cat", "/proc/net/snmp"], { encoding: "utf8" }).stdout.split("\n").filter((l) => l.startsWith("Icmp:")).map((l) => l.trim().split(/\s+/));
    return Number(values[names.indexOf("InEchos")]);
  };
  const before = echoes();
  await waitFor("more echo requests from the peers", () => echoes() >= before + 2, 30_000);
}, 90_000);

test("`bpfnet health --inventory`: the whole matrix ok, exit 0", async () => {
  const r = healthCli("--no-connectivity");
  expect(r.out).toMatch(/3\/3 agents ready/);
  expect(r.out).toMatch(/^ {2}from\\to +h1 +h2 +h3$/m);
  expect(r.out).toMatch(/^ {2}h1 +- +ok +ok$/m);
  expect(r.out).toMatch(/^ {2}h3 +ok +ok +-$/m);
  expect(r.out).toMatch(/all 6 paths ok/);
  expect(r.status).toBe(0);
  const m = await h1Metrics();
  for (const peer of ["h2", "h3"]) for (const path of ["host", "endpoint"]) {
    expect(m).toContain(`bpfnet_health_peer_reachable{peer="${peer}",path="${path}"} 1`);
    expect(m).toMatch(new RegExp(`bpfnet_health_peer_latency_seconds\\{peer="${peer}",path="${path}"\\} \\d`));
  }
  expect(m).toContain("bpfnet_health_unreachable_peers 0");
}, 120_000);

test("h3's link cut: the matrix shows h3's paths down within 3 probe intervals; restored: all ok again", async () => {
  const cutAt = Date.now();
  spawnSync("ip", ["-n", "thl1-h3", "link", "set", "eth0", "down"]);
  try {
    const down = await until("h3's four paths down", async () => {
      const m = await matrixNow();
      const broken = m.cells.filter((c) => c.state === "down").map((c) => `${c.from}→${c.to}`).sort();
      return broken.length === 4 ? { m, broken } : undefined;
    }, 60_000, 200);
    expect(down.broken).toEqual(["h1→h3", "h2→h3", "h3→h1", "h3→h2"]);
    expect(down.m.cells.filter((c) => c.state === "ok").map((c) => `${c.from}→${c.to}`).sort()).toEqual(["h1→h2", "h2→h1"]);
    // When the agents saw it (their own clocks, per probe round): within 3 intervals of the cut.
    for (const a of L!.agents.slice(0, 2)) {
      const p = (await a.client.health()).peers.find((x) => x.peer === "h3")!;
      expect(p.reachable).toBe(false);
      expect(p.lastError).toMatch(/endpoint 10\.82\.\d+\.\d+: no ICMP echo reply/);
      const detectedMs = Date.parse(p.since) - cutAt;
      console.log(`health: ${a.host.name} saw h3 down ${detectedMs} ms after the cut (interval ${INTERVAL_S * 1000} ms)`);
      expect(detectedMs).toBeLessThanOrEqual(3 * INTERVAL_S * 1000);
    }
    const cli = healthCli("--no-connectivity", "--wait", "0");
    expect(cli.out).toMatch(/^ {2}h1 +- +ok +DOWN$/m);
    expect(cli.out).toMatch(/^ {2}h1 → h3: down: since .*endpoint no ICMP echo reply/m);
    expect(cli.out).toMatch(/4 of 6 paths not ok/);
    expect(cli.status).toBe(1);
    const m = await h1Metrics();
    expect(m).toContain('bpfnet_health_peer_reachable{peer="h3",path="endpoint"} 0');
    expect(m).toContain('bpfnet_health_peer_reachable{peer="h3",path="host"} 0');
    expect(m).toContain('bpfnet_health_peer_reachable{peer="h2",path="endpoint"} 1');
    expect(m).toContain("bpfnet_health_unreachable_peers 1");
  } finally {
    spawnSync("ip", ["-n", "thl1-h3", "link", "set", "eth0", "up"]);
  }
  const upAt = Date.now();
  await waitFor("all paths ok again", async () => (await matrixNow()).allOk, 60_000, 200);
  for (const a of L!.agents.slice(0, 2)) {
    const p = (await a.client.health()).peers.find((x) => x.peer === "h3")!;
    const backMs = Date.parse(p.since) - upAt;
    console.log(`health: ${a.host.name} saw h3 back ${backMs} ms after the link came up`);
    expect(backMs).toBeLessThanOrEqual(3 * INTERVAL_S * 1000);
    expect(p.lastError).toBeDefined(); // kept after recovery
  }
  expect(healthCli("--no-connectivity", "--wait", "0").status).toBe(0);
}, 180_000);

test("a stopped agent's responder and health namespace go with it", async () => {
  const a = L!.agents[2];
  const pid = (await a.client.health()).endpoint!.responderPid!;
  expect(fs.existsSync(`/proc/${pid}`)).toBe(true);
  await a.stop("SIGKILL"); // even a killed agent: the responder sees its stdin close
  await waitFor("the responder to exit", () => !fs.existsSync(`/proc/${pid}`), 20_000);
  // Restarted: a new endpoint, the old one replaced (not "lost").
  await a.start(60_000);
  const h = await until("a new health endpoint", async () => (await a.client.health()).endpoint, 30_000);
  expect(h.responderPid).not.toBe(pid);
  const eps = await a.client.listEndpoints();
  expect(eps.filter((e) => e.id === HEALTH_ENDPOINT_ID).map((e) => e.status)).toEqual(["ready"]);
}, 120_000);

