// Datapath benchmark: bpfnet beside a plain-kernel baseline in the same lab, in the same run,
// reported as absolute figures and bpfnet/baseline ratios (never as absolute claims).
//
//   npx tsc -p .                                          (the agents run from dist/)
//   npx ts-node bench/datapath.ts [--mode vxlan|l3|all] [--quick] [--write|--no-write]
//   npx ts-node bench/datapath.ts --only endpoint-add       (issue 13's endpoint-add goal alone, ~1 min)
//
// vxlan: a 2-host vxlan lab (bdpv). bpfnet: real agents, endpoints through the agent API,
//   bpf_lxc → tunnel → bpf_overlay. Baseline: a kernel VXLAN device per host (VNI 100, port
//   4789, static FDB/neighbour), containers on veths with plain routes, ip_forward, no BPF.
//   Also: endpoint add → first answered packet (100 endpoints), and a new host's allocation in
//   etcd → every agent's tunnel entry (20 joins).
// l3: a 2-host l3 lab (bdpl, hosts in their own subnets behind the router namespace). bpfnet
//   agents in l3 mode (pod CIDRs routed on the router by hand) vs plain kernel routing with
//   static routes on hosts and router.
// Measured per path, interleaved (ABBA) so drift hits both alike: iperf3 TCP throughput
// (median of N runs), a TCP request/response ping-pong of 64-byte messages (p50/p99/mean),
// ping RTT (idle and back to back), and an idle-ping comparison of several paths in the same
// rounds (an A/A baseline pair; in l3, bpfnet with bpf_lxc cut out, replaced by an empty program,
// moved to tcx, or with the fast path off).
// Results go to stdout and to docs/benchmarks.md (full runs; --quick only with --write); the
// method and findings are in docs/benchmarks.md.
//
// Lab names bdpv/bdpl, lab subnet 10.212.0.0/16 (one lab at a time), container namespaces bdpc….
// Everything is removed in `finally` and on SIGINT/SIGTERM/SIGHUP; every wait is bounded.
import { execFile } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { randomBytes } from "crypto";
import type { Etcd3 } from "etcd3";
import { BpfObject, DatapathMaps, openDatapathMaps, reasonName, TcHook, Verdict } from "../bpf";
import { killNetnsProcesses, netnsExists, run, tryRun } from "../lab/sh";
import { connect, EtcdConnection } from "../provider/etcd/etcdClient";
import { allocate } from "../provider/ipam/ipamStore";
import { cidrKey, hostKey, nodeKey } from "../provider/etcd/keys";
import { checkBuilt, LabAgent, seedNetwork } from "../test/agent/support/agents";
import type { EndpointView } from "../node-agent/api/types";
import { LabEtcd, startEtcdOn } from "../test/agent/support/etcd";
import { startTestLab, TestLab } from "../test/support/lab";
import { addNetns, addPlainContainer, addPlainUnderlay, addPlainVxlan, BASELINE_VXLAN_DEVICE, bpfAttachments } from "./lib/baseline";
import { Children, msSince, now, runBenchMain, sleep } from "./lib/proc";
import { controlMissed, controlTable, Goals, LatencySamples, missedGoals, ModeResult, PathResult, PingVariant, renderMode, RunInfo, failOnMissedGoals, writeDoc } from "./lib/report";
import { fmt, mean, median } from "./lib/stats";
import { iperf, pingRtts, requestResponse, startEchoServer, startIperfServer, startProber } from "./lib/traffic";

const REPO = path.resolve(__dirname, "..");
const DOC = path.join(REPO, "docs", "benchmarks.md");
const IPERF_PORT = 5201;
export const ECHO_PORT = 7100;
const BASELINE_VNI = 100;
const BASELINE_VXLAN_PORT = 4789;
/** The l3 baseline's host ↔ router link (bench/lib/baseline.ts addPlainUnderlay). */
const BASELINE_UNDERLAY_DEVICE = "bdpu0";

const linkMtu = (netns: string, dev: string): number => (JSON.parse(run("ip", ["-n", netns, "-j", "link", "show", "dev", dev])) as { mtu: number }[])[0].mtu;

export type Mode = "vxlan" | "l3";

/** Issue 13's goals: ratios of the baseline in the same run; endpoint add in ms. */
const GOALS: Record<Mode, Goals> = {
  vxlan: { throughput: 0.97, latency: 1.03, endpointAdd: { p50: 30, p99: 60 } },
  l3: { throughput: 0.98, latency: 1.03, idlePing: 1.05 },
};

export interface Params {
  iperfRuns: number;
  iperfSeconds: number;
  rrChunks: number;
  rrPerChunk: number;
  pingChunks: number;
  pingPerChunk: number;
  pingInterval: number;
  pingFastPerChunk: number;
  variantRounds: number;
  variantPings: number;
  endpoints: number;
  joins: number;
  deadlineMin: number;
}

const FULL: Params = { iperfRuns: 5, iperfSeconds: 5, rrChunks: 5, rrPerChunk: 1000, pingChunks: 5, pingPerChunk: 100, pingInterval: 0.01, pingFastPerChunk: 1000, variantRounds: 6, variantPings: 120, endpoints: 100, joins: 20, deadlineMin: 40 };
const QUICK: Params = { iperfRuns: 3, iperfSeconds: 2, rrChunks: 2, rrPerChunk: 500, pingChunks: 2, pingPerChunk: 20, pingInterval: 0.01, pingFastPerChunk: 200, variantRounds: 2, variantPings: 50, endpoints: 20, joins: 5, deadlineMin: 15 };

interface Args {
  modes: Mode[];
  quick: boolean;
  write: boolean;
  octet: number;
  /** `--only endpoint-add`: the vxlan lab and the endpoint-add figures alone (a few minutes). */
  endpointAddOnly: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { modes: ["vxlan", "l3"], quick: false, write: true, octet: 212, endpointAddOnly: false };
  let write: boolean | undefined;
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === "--quick") a.quick = true;
    else if (k === "--write") write = true;
    else if (k === "--no-write") write = false;
    else if (k === "--mode" || k.startsWith("--mode=")) {
      const v = k.includes("=") ? k.split("=")[1] : argv[++i];
      if (v === "all") a.modes = ["vxlan", "l3"];
      else if (v === "vxlan" || v === "l3") a.modes = [v];
      else throw new Error(`--mode must be vxlan, l3 or all, got ${v}`);
    } else if (k === "--only" || k.startsWith("--only=")) {
      const v = k.includes("=") ? k.split("=")[1] : argv[++i];
      if (v !== "endpoint-add") throw new Error(`--only takes endpoint-add, got ${v}`);
      a.endpointAddOnly = true;
    } else if (k === "--help" || k === "-h") {
      console.log("usage: npx ts-node bench/datapath.ts [--mode vxlan|l3|all] [--quick] [--write|--no-write] [--only endpoint-add]");
      process.exit(0);
    } else throw new Error(`unknown argument ${k}`);
  }
  // A quick run is a smoke test: it does not replace the recorded figures unless asked to.
  a.write = write ?? !a.quick;
  if (a.endpointAddOnly) {
    if (write) throw new Error("--only endpoint-add prints its table; it does not write docs/benchmarks.md");
    a.write = false;
  }
  return a;
}

// ---------------------------------------------------------------------------------------------
// Everything a mode creates, torn down in a fixed order by cleanup() (idempotent).

export interface Ctx {
  children: Children;
  agents: LabAgent[];
  maps: DatapathMaps[];
  netns: Set<string>;
  etcdClient?: Etcd3;
  etcd?: LabEtcd;
  lab?: TestLab;
  /** Temporary directories (built objects), removed by cleanup. */
  tmpDirs: string[];
}

export const newCtx = (): Ctx => ({ children: new Children(), agents: [], maps: [], netns: new Set(), tmpDirs: [] });
let active: Ctx | undefined;
let cleaning: Promise<void> | undefined;

async function step(what: string, fn: () => unknown, timeoutMs = 30_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs)));
    await Promise.race([Promise.resolve().then(fn), timeout]);
  } catch (e) {
    console.error(`cleanup: ${what}: ${(e as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
}

export async function cleanup(ctx: Ctx): Promise<void> {
  await step("children", () => ctx.children.killAll());
  await step("etcd client", () => ctx.etcdClient?.close());
  ctx.etcdClient = undefined;
  for (const a of ctx.agents.splice(0)) await step(`agent ${a.host.name}`, () => a.stop());
  for (const m of ctx.maps.splice(0)) await step("maps", () => m.close());
  for (const ns of [...ctx.netns]) {
    await step(`netns ${ns}`, () => {
      if (netnsExists(ns)) {
        killNetnsProcesses(ns, 1000);
        run("ip", ["netns", "del", ns]);
      }
      ctx.netns.delete(ns);
    });
  }
  const etcd = ctx.etcd;
  ctx.etcd = undefined;
  if (etcd) await step("etcd", () => etcd.stop());
  const lab = ctx.lab;
  ctx.lab = undefined;
  if (lab) await step("lab", () => lab.down(), 120_000);
  for (const d of ctx.tmpDirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
}

function cleanupActive(): Promise<void> {
  if (!active) return Promise.resolve();
  const ctx = active;
  cleaning ??= cleanup(ctx).finally(() => {
    cleaning = undefined;
    if (active === ctx) active = undefined;
  });
  return cleaning;
}

// ---------------------------------------------------------------------------------------------

export function ensureSubnetFree(octet: number, ownBridges: string[]): void {
  const used = tryRun("ip", ["-4", "-o", "addr", "show"])
    .stdout.split("\n")
    .filter((l) => l.includes(` 10.${octet}.`) && !ownBridges.some((b) => l.includes(` ${b} `)));
  if (used.length) throw new Error(`10.${octet}.0.0/16 is in use in the root namespace (another lab?): ${used.join("; ")}`);
}

export function addNs(ctx: Ctx, name: string): string {
  ctx.netns.add(name);
  addNetns(name);
  return `/run/netns/${name}`;
}

export function delNs(ctx: Ctx, name: string): void {
  killNetnsProcesses(name, 500);
  tryRun("ip", ["netns", "del", name]);
  ctx.netns.delete(name);
}

/** Packets counted by every bpfnet program on every host, by "host-index ifindex direction reason". */
function bpfCounters(ctx: Ctx): Map<string, bigint> {
  const out = new Map<string, bigint>();
  ctx.maps.forEach((m, i) => m.metrics.entries().forEach((e) => out.set(`${i} ${e.id} ${e.direction} ${e.reason}`, e.packets)));
  return out;
}

/** after − before, per key, only what grew. */
function counterDelta(before: Map<string, bigint>, after: Map<string, bigint>): Map<string, bigint> {
  const d = new Map<string, bigint>();
  for (const [k, v] of after) if (v > (before.get(k) ?? 0n)) d.set(k, v - (before.get(k) ?? 0n));
  return d;
}

/** "h1 bn0123… ingress passed: 2" for counter keys (ifindexes named from the hosts' links). */
function describeCounters(d: Map<string, bigint>, hostNetns: string[]): string {
  const names = hostNetns.map((ns) => new Map((JSON.parse(run("ip", ["-n", ns, "-j", "link", "show"])) as { ifindex: number; ifname: string }[]).map((l) => [l.ifindex, l.ifname])));
  return [...d]
    .map(([k, v]) => {
      const [host, id, dir, reason] = k.split(" ");
      return `h${Number(host) + 1} ${names[Number(host)]?.get(Number(id)) ?? `if${id}`} ${dir} ${reasonName(Number(reason))}: ${v}`;
    })
    .join(", ");
}

function linkTxBytes(netns: string, dev: string): number {
  const j = JSON.parse(run("ip", ["-n", netns, "-s", "-j", "link", "show", "dev", dev])) as { stats64?: { tx?: { bytes?: number } } }[];
  return j[0]?.stats64?.tx?.bytes ?? 0;
}

export interface Path {
  name: "bpfnet" | "baseline";
  client: string;
  server: string;
  serverIp: string;
}

const emptyPath = (): PathResult => ({ throughput: [], rr: [], ping: [], pingFast: [], pingLost: 0, bpfPackets: 0n });

export interface Measured {
  res: [PathResult, PathResult];
  /** bpfnet counters that moved while the baseline carried the traffic, by key. */
  duringBaseline: Map<string, bigint>;
}

/** Throughput, request/response and ping on both paths, alternating A B / B A between rounds. */
export async function measurePaths(ctx: Ctx, paths: [Path, Path], P: Params, log: (s: string) => void): Promise<Measured> {
  const res: [PathResult, PathResult] = [emptyPath(), emptyPath()];
  const duringBaseline = new Map<string, bigint>();
  for (const p of paths) {
    await startIperfServer(ctx.children, p.server, IPERF_PORT);
    await startEchoServer(ctx.children, p.server, ECHO_PORT);
    // Warm up: neighbour/route caches, TCP metrics, the JIT of the echo server.
    await pingRtts(ctx.children, p.client, p.serverIp, 3, 0.05);
    await requestResponse(ctx.children, p.client, p.serverIp, ECHO_PORT, 100);
  }
  const counted = async <T>(i: number, fn: () => Promise<T>): Promise<T> => {
    const before = bpfCounters(ctx);
    const v = await fn();
    for (const [k, n] of counterDelta(before, bpfCounters(ctx))) {
      res[i].bpfPackets += n;
      if (paths[i].name === "baseline") duringBaseline.set(k, (duringBaseline.get(k) ?? 0n) + n);
    }
    return v;
  };
  const order = (round: number) => (round % 2 === 0 ? [0, 1] : [1, 0]);
  for (let r = 0; r < P.iperfRuns; r++) {
    for (const i of order(r)) {
      const t = await counted(i, () => iperf(ctx.children, paths[i].client, paths[i].serverIp, IPERF_PORT, P.iperfSeconds));
      res[i].throughput.push(t);
      log(`  iperf3 ${r + 1}/${P.iperfRuns} ${paths[i].name.padEnd(8)} ${fmt(t.gbps, 2)} Gbit/s, ${t.retransmits} retransmits`);
    }
  }
  for (let r = 0; r < P.rrChunks; r++) {
    for (const i of order(r)) {
      res[i].rr.push(...(await counted(i, () => requestResponse(ctx.children, paths[i].client, paths[i].serverIp, ECHO_PORT, P.rrPerChunk))));
    }
  }
  log(`  request/response p50: bpfnet ${fmt(median(res[0].rr))} µs, baseline ${fmt(median(res[1].rr))} µs (${res[0].rr.length} each)`);
  for (let r = 0; r < P.pingChunks; r++) {
    for (const i of order(r)) {
      const p = await counted(i, () => pingRtts(ctx.children, paths[i].client, paths[i].serverIp, P.pingPerChunk, P.pingInterval));
      res[i].ping.push(...p.rtts);
      res[i].pingLost += p.lost;
      const f = await counted(i, () => pingRtts(ctx.children, paths[i].client, paths[i].serverIp, P.pingFastPerChunk, 0.0002));
      res[i].pingFast.push(...f.rtts);
      res[i].pingLost += f.lost;
    }
  }
  log(`  ping p50 every 10 ms: bpfnet ${fmt(median(res[0].ping) * 1000, 0)} µs, baseline ${fmt(median(res[1].ping) * 1000, 0)} µs; back to back: ${fmt(median(res[0].pingFast) * 1000)} µs, ${fmt(median(res[1].pingFast) * 1000)} µs`);
  return { res, duringBaseline };
}

async function startAgents(ctx: Ctx, lab: TestLab, conn: EtcdConnection, prefix: string): Promise<LabAgent[]> {
  // Resync an hour: changes come by watch; the l3 attribution removes route rows for a while.
  const agents = lab.inventory.hosts.map((h) => new LabAgent(h, { prefix, etcd: conn, leaseTtlSeconds: 10, resyncSeconds: 3600 }));
  ctx.agents.push(...agents);
  await Promise.all(agents.map((a) => a.start(60_000)));
  for (const h of lab.inventory.hosts) ctx.maps.push(openDatapathMaps(h.bpffsDir));
  return agents;
}

export async function waitUntil(what: string, fn: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Checks that no BPF program sits on the baseline's devices and lists what bpfnet attached. */
function baselineBpfCheck(hostNetns: string[], baselineDevs: string[], containerNetns: string[], extraNetns: string[] = []): string {
  const onBaseline: string[] = [];
  const bpfnet = new Map<string, number>();
  for (const ns of [...hostNetns, ...extraNetns]) {
    for (const a of bpfAttachments(ns)) {
      // In the hosts only the baseline's devices count; anything at all on the router would.
      if (baselineDevs.includes(a.dev) || extraNetns.includes(ns)) onBaseline.push(`${ns}: ${a.dev} ${a.kind} ${a.program}`);
      else bpfnet.set(`${a.program} (${a.kind})`, (bpfnet.get(`${a.program} (${a.kind})`) ?? 0) + 1);
    }
  }
  for (const ns of containerNetns) for (const a of bpfAttachments(ns)) onBaseline.push(`${ns}: ${a.dev} ${a.kind} ${a.program}`);
  if (onBaseline.length) throw new Error(`BPF programs on the baseline path: ${onBaseline.join("; ")}`);
  const own = [...bpfnet].map(([p, n]) => `${n}× ${p}`).join(", ");
  return `no BPF program on the baseline path (\`bpftool net show\` in both hosts${extraNetns.length ? ", the router" : ""} and the baseline containers: nothing on ${baselineDevs.join(", ")}); bpfnet's own attachments: ${own}`;
}

function pathChecks(m: Measured, hostNetns: string[]): string[] {
  const [b, k] = m.res;
  if (b.bpfPackets === 0n) throw new Error("bpfnet's counters did not move while the bpfnet path carried traffic");
  return [
    `bpfnet's counters (all programs, both hosts): +${b.bpfPackets.toLocaleString("en")} packets during the bpfnet runs, +${k.bpfPackets} during the baseline runs` +
      (k.bpfPackets > 0n ? ` (${describeCounters(m.duringBaseline, hostNetns)})` : ""),
    `ping loss: bpfnet ${b.pingLost}, baseline ${k.pingLost}`,
  ];
}

// ---------------------------------------------------------------------------------------------
// Control-plane latencies (vxlan mode).

/**
 * endpoint add (API call start) → the new container's first answered UDP datagram from a container
 * on the other host. Alternating with each add, in the same run and under the same load, the
 * reference: the previous agent's plumbing alone (one nsenter + `ip -batch` making the same pair
 * in a container namespace, no datapath), so the figures can be read against a spawn's cost now.
 */
async function endpointAddBench(ctx: Ctx, agent: LabAgent, targetIp: string, n: number, log: (s: string) => void): Promise<LatencySamples> {
  const first: number[] = [];
  const api: number[] = [];
  const reference: number[] = [];
  let failures = 0;
  const refNs = "bdpceref";
  addNs(ctx, refNs);
  const hostNs = agent.host.netns!;
  for (let i = 0; i < n; i++) {
    const ns = `bdpce${i}`;
    const id = `bdp-e${i}`;
    addNs(ctx, ns);
    if (i % 2 === 0) reference.push(await spawnedPlumbing(refNs, hostNs));
    const prober = await startProber(ctx.children, ns, targetIp, ECHO_PORT, 15_000);
    const t0 = now();
    await agent.client.addEndpoint({ id, netns: `/run/netns/${ns}` });
    const tApi = now();
    const r = await prober.result;
    api.push(msSince(t0, tApi));
    if (r.t !== undefined) first.push(msSince(t0, r.t));
    else failures++;
    if (i % 2 === 1) reference.push(await spawnedPlumbing(refNs, hostNs));
    await agent.client.deleteEndpoint(id);
    delNs(ctx, ns);
    if ((i + 1) % 20 === 0) log(`  endpoints ${i + 1}/${n}: first answer p50 so far ${fmt(median(first))} ms`);
  }
  return {
    what: `endpoint add → first answered packet (container on the other host)`,
    samples: first,
    failures,
    extra: [
      { what: "of which the API call (POST /v1/endpoints)", samples: api },
      ...agentAddSteps(agent, "bdp-e"),
      { what: "reference, same run: the previous agent's plumbing alone (one nsenter + ip -batch, no datapath)", samples: reference },
    ],
  };
}

/** The ip -batch lines the agent ran before netlink (same pair, address, routes, neighbour). */
const SPAWNED_PLUMBING = (hostNs: string) =>
  [
    `link add bdpref0 address 02:00:00:00:0e:01 mtu 1450 netns /run/netns/${hostNs} up type veth peer name eth0 address 02:00:00:00:0e:02 mtu 1450`,
    "link set lo up",
    "addr add 10.99.0.2/32 dev eth0",
    "link set eth0 up",
    "route replace 10.99.0.1 dev eth0 scope link",
    "route replace default via 10.99.0.1 dev eth0 mtu 1450",
    "neigh replace 10.99.0.1 lladdr 02:00:00:00:0e:01 dev eth0 nud permanent",
    "link show dev eth0",
  ].join("\n") + "\n";

/** ms of one nsenter + ip -batch plumbing as the agent used to run it; the pair is removed after (not timed). */
async function spawnedPlumbing(ns: string, hostNs: string): Promise<number> {
  const t0 = now();
  await new Promise<void>((resolve, reject) => {
    const child = execFile("nsenter", [`--net=/run/netns/${ns}`, "ip", "-j", "-batch", "-"], { timeout: 30_000 }, (err, _out, stderr) => (err ? reject(new Error(`reference plumbing: ${stderr || err.message}`)) : resolve()));
    child.stdin?.end(SPAWNED_PLUMBING(hostNs));
  });
  const ms = msSince(t0, now());
  run("ip", ["-n", hostNs, "link", "del", "bdpref0"]);
  return ms;
}

/** The agent's own account of its adds (its log's cumulative ms per step), for the ids starting with `prefix`. */
function agentAddSteps(agent: LabAgent, prefix: string): { what: string; samples: number[] }[] {
  const steps: Record<string, string> = {
    queued: "agent: request taken up",
    recorded: "agent: address recorded (state file written)",
    plumbed: "agent: veth pair plumbed (netlink from the addon)",
    attached: "agent: bpf_lxc attached, endpoint map written",
    ready: "agent: ready recorded: the answer",
  };
  const seen: Record<string, number[]> = {};
  for (const line of fs.readFileSync(agent.logPath, "utf8").split("\n")) {
    if (!line.includes('"endpoint added"')) continue;
    const rec = JSON.parse(line) as { id?: string; ms?: Record<string, number> };
    if (!rec.id?.startsWith(prefix) || !rec.ms) continue;
    for (const [k, v] of Object.entries(rec.ms)) (seen[k] ??= []).push(v);
  }
  return Object.entries(steps).filter(([k]) => seen[k]).map(([k, what]) => ({ what: `${what}, since the request`, samples: seen[k] }));
}

/** A new host's allocation written to etcd → its pod CIDR in every agent's pinned tunnel map. */
async function joinBench(ctx: Ctx, conn: EtcdConnection, prefix: string, octet: number, n: number, log: (s: string) => void): Promise<LatencySamples> {
  const client = connect(conn);
  ctx.etcdClient = client;
  const fromStart: number[] = [];
  const fromCommit: number[] = [];
  const leave: number[] = [];
  let failures = 0;
  const everyAgent = (cidr: string, remote: string | undefined) => ctx.maps.every((m) => m.tunnel.get(cidr)?.remote === remote);
  const pollUntil = async (pred: () => boolean, timeoutMs: number): Promise<bigint | undefined> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (pred()) return now();
      if (Date.now() > deadline) return undefined;
      await sleep(1);
    }
  };
  for (let i = 0; i < n; i++) {
    const host = `bdpj${i}`;
    const underlayIp = `10.${octet}.1.${100 + i}`;
    // The fake host's registration goes first (as its agent would write it, minus the lease),
    // so the allocation is the last fact the agents need: that write starts the clock.
    await client.put(nodeKey(prefix, host)).value(
      JSON.stringify({ schema: 1, host, underlayIp, podCidr: "", agentVersion: "bench", incarnation: randomBytes(4).toString("hex"), startedAt: new Date().toISOString() }),
    );
    await sleep(100);
    const t0 = now();
    const a = await allocate(client, { prefix, host, allocationId: `bench-${host}` });
    const t1 = now();
    const seen = await pollUntil(() => everyAgent(a.podCidr, underlayIp), 15_000);
    if (seen === undefined) failures++;
    else {
      fromStart.push(msSince(t0, seen));
      fromCommit.push(msSince(t1, seen));
    }
    // The host leaves: its allocation is released (both IPAM keys, as HostAllocation delete does).
    const t2 = now();
    await client.delete().key(hostKey(prefix, host)).exec();
    await client.delete().key(cidrKey(prefix, a.podCidr)).exec();
    const gone = await pollUntil(() => everyAgent(a.podCidr, undefined), 15_000);
    if (gone !== undefined) leave.push(msSince(t2, gone));
    await client.delete().key(nodeKey(prefix, host)).exec();
    await sleep(50);
  }
  log(`  joins: p50 ${fmt(median(fromStart))} ms from allocate() start (${fromStart.length}/${n})`);
  ctx.etcdClient = undefined;
  client.close();
  return {
    what: "host allocation in etcd → tunnel entry in every agent's map, from allocate() start",
    samples: fromStart,
    failures,
    extra: [
      { what: "from allocate() returned (transaction committed)", samples: fromCommit },
      { what: "release (both IPAM keys deleted) → entry gone everywhere", samples: leave },
    ],
  };
}

// ---------------------------------------------------------------------------------------------

/** Both paths of one mode, set up side by side in one lab, ready to measure. */
export interface ModeSetup {
  lab: TestLab;
  agents: LabAgent[];
  prefix: string;
  conn: EtcdConnection;
  hostNetns: [string, string];
  routerNetns?: string;
  /** bpfnet first, baseline second. */
  paths: [Path, Path];
  bpfnetEndpoints: [EndpointView, EndpointView];
  checks: string[];
  describe: { bpfnet: string; baseline: string };
}

/** Lab, etcd, agents, one bpfnet endpoint per host; cleanup(ctx) removes it all. */
async function setupBpfnet(ctx: Ctx, mode: Mode, octet: number, log: (s: string) => void) {
  const o = octet;
  const labName = mode === "vxlan" ? "bdpv" : "bdpl";
  log(`${mode}: lab ${labName} (10.${o}.0.0/16, 2 hosts${mode === "l3" ? " behind a router" : ""}), etcd, agents`);
  ensureSubnetFree(o, [`${labName}-mgmt`]);
  const lab = (ctx.lab = await startTestLab(labName, o, mode, 2));
  const etcd = (ctx.etcd = await startEtcdOn(`10.${o}.0.254`));
  const prefix = `/bpfnet/${labName}`;
  const cidrs = await seedNetwork(etcd.connection, { prefix, mode, clusterCidr: `10.${o}.128.0/17` }, ["h1", "h2"]);
  const agents = await startAgents(ctx, lab, etcd.connection, prefix);
  const [h1, h2] = lab.inventory.hosts;
  const routerNetns = lab.inventory.router?.netns;
  if (mode === "vxlan") {
    await waitUntil("both agents' tunnel entries", () => ctx.maps[0].tunnel.get(cidrs.h2) !== undefined && ctx.maps[1].tunnel.get(cidrs.h1) !== undefined, 20_000);
  } else {
    // What an operator (or RouterRoute) does in l3 mode: each pod CIDR routed to its host.
    for (const h of [h1, h2]) run("ip", ["-n", routerNetns!, "route", "add", cidrs[h.name], "via", h.underlayIp]);
  }
  const c = mode === "vxlan" ? "v" : "l";
  const e1 = (await agents[0].client.addEndpoint({ id: `bdp-${c}1a`, netns: addNs(ctx, `bdpc${c}1a`) })).endpoint;
  const e2 = (await agents[1].client.addEndpoint({ id: `bdp-${c}2a`, netns: addNs(ctx, `bdpc${c}2a`) })).endpoint;
  return { lab, agents, prefix, conn: etcd.connection, h1, h2, routerNetns, e1, e2, c };
}

export async function setupMode(ctx: Ctx, mode: Mode, octet: number, log: (s: string) => void): Promise<ModeSetup> {
  const { lab, agents, prefix, conn, h1, h2, routerNetns, e1, e2, c } = await setupBpfnet(ctx, mode, octet, log);
  const o = octet;
  const base = [`10.${o}.64`, `10.${o}.65`];
  const [n1, n2] = [`bdpc${c}1b`, `bdpc${c}2b`];
  ctx.netns.add(n1).add(n2);
  log(mode === "vxlan" ? `vxlan: baseline (kernel VXLAN id ${BASELINE_VNI} port ${BASELINE_VXLAN_PORT}, static FDB, veths, plain routes)` : "l3: baseline (veths, static routes on hosts and router)");
  addPlainContainer({ netns: n1, hostNetns: h1.netns!, hostIfname: "bdpb0", ip: `${base[0]}.2`, gateway: `${base[0]}.1`, mtu: e1.mtu });
  const b2 = addPlainContainer({ netns: n2, hostNetns: h2.netns!, hostIfname: "bdpb0", ip: `${base[1]}.2`, gateway: `${base[1]}.1`, mtu: e2.mtu });
  let checks: string[];
  let describe: ModeSetup["describe"];
  if (mode === "vxlan") {
    addPlainVxlan(
      [
        { hostNetns: h1.netns!, underlayIp: h1.underlayIp, linkIp: `10.${o}.70.1`, podCidr: `${base[0]}.0/24` },
        { hostNetns: h2.netns!, underlayIp: h2.underlayIp, linkIp: `10.${o}.70.2`, podCidr: `${base[1]}.0/24` },
      ],
      { vni: BASELINE_VNI, port: BASELINE_VXLAN_PORT, mtu: e1.mtu },
    );
    checks = [baselineBpfCheck([h1.netns!, h2.netns!], ["bdpb0", BASELINE_VXLAN_DEVICE, "eth0"], [n1, n2])];
    const s = (await agents[0].status()).agent;
    describe = {
      bpfnet: `agents, endpoints through the API; bpf_lxc (tunnel key, redirect) → bpfnet_vxlan (external, VNI ${s.vni}, port 8472) → bpf_overlay → veth; MTU ${e1.mtu}`,
      baseline: `kernel VXLAN device (VNI ${BASELINE_VNI}, port ${BASELINE_VXLAN_PORT}, static FDB and neighbour entries), veth + /32 routes, ip_forward; MTU ${e1.mtu}`,
    };
  } else {
    // The baseline's own host ↔ router links (eth0 carries bpf_netdev): same kind, same MTU.
    for (const [i, h] of [h1, h2].entries()) {
      addPlainUnderlay({
        hostNetns: h.netns!,
        routerNetns: routerNetns!,
        hostIfname: BASELINE_UNDERLAY_DEVICE,
        routerIfname: `bdpr${i + 1}`,
        hostIp: `10.${o}.7${i + 1}.1`,
        routerIp: `10.${o}.7${i + 1}.2`,
        mtu: linkMtu(h.netns!, h.underlayInterface),
        localPodCidr: `${base[i]}.0/24`,
        remotePodCidr: `${base[1 - i]}.0/24`,
      });
    }
    checks = [baselineBpfCheck([h1.netns!, h2.netns!], ["bdpb0", BASELINE_UNDERLAY_DEVICE], [n1, n2], [routerNetns!])];
    describe = {
      bpfnet: `agents in l3 mode, endpoints through the API; bpf_lxc → bpf_fib_lookup, bpf_redirect out of eth0 with the next hop's MAC (the fast path) → router (pod CIDR routes added by hand) → host 2's eth0, bpf_netdev → bpf_redirect_peer into the container; MTU ${e1.mtu}`,
      baseline: `veth + /32 routes on the hosts, its own host ↔ router veth links (${BASELINE_UNDERLAY_DEVICE}, eth0's MTU) with static routes on hosts and router, ip_forward; MTU ${e1.mtu}`,
    };
  }
  return {
    lab,
    agents,
    prefix,
    conn,
    hostNetns: [h1.netns!, h2.netns!],
    ...(routerNetns ? { routerNetns } : {}),
    paths: [
      { name: "bpfnet", client: `bdpc${c}1a`, server: `bdpc${c}2a`, serverIp: e2.ip },
      { name: "baseline", client: n1, server: n2, serverIp: b2.ip },
    ],
    bpfnetEndpoints: [e1, e2],
    checks,
    describe,
  };
}

/**
 * Idle-ping attribution: one ping every 10 ms on several paths in the same rounds (rotating
 * order): bpfnet, the baseline, a second baseline pair (an A/A comparison: how far two identical
 * paths differ here), and in l3 mode bpfnet endpoints with bpf_lxc detached by hand (their
 * packets go out through the host stack; bpf_netdev still delivers them on the other side): what
 * the sending side's fast path costs or saves. These extra endpoints are only for this comparison.
 */
async function pingVariants(ctx: Ctx, s: ModeSetup, mode: Mode, octet: number, P: Params, log: (s: string) => void): Promise<PingVariant[]> {
  const c = mode === "vxlan" ? "v" : "l";
  const [h1, h2] = s.hostNetns;
  const mtu = s.bpfnetEndpoints[0].mtu;
  ctx.netns.add(`bdpc${c}1c`).add(`bdpc${c}2c`);
  addPlainContainer({ netns: `bdpc${c}1c`, hostNetns: h1, hostIfname: "bdpb1", ip: `10.${octet}.64.3`, gateway: `10.${octet}.64.1`, mtu });
  addPlainContainer({ netns: `bdpc${c}2c`, hostNetns: h2, hostIfname: "bdpb1", ip: `10.${octet}.65.3`, gateway: `10.${octet}.65.1`, mtu });
  const variants: { what: string; path: Path; around?: <T>(fn: () => Promise<T>) => Promise<T> }[] = [
    { what: "bpfnet", path: s.paths[0] },
    { what: "baseline", path: s.paths[1] },
    { what: "baseline, second pair (A/A)", path: { name: "baseline", client: `bdpc${c}1c`, server: `bdpc${c}2c`, serverIp: `10.${octet}.65.3` } },
  ];
  const detached: { ns: string; dev: string }[] = [];
  let tcxCheck = () => {};
  const previousIds: number[] = [];
  if (mode === "l3") {
    const cuts = [
      { tag: "x", what: "bpfnet without bpf_lxc (detached by hand: out through the host stack)", noLxc: true, empty: false },
      { tag: "e", what: "bpfnet with an empty program in bpf_lxc's place (TC_ACT_OK: out through the host stack)", noLxc: true, empty: true },
      { tag: "t", what: "bpfnet with bpf_lxc on tcx instead of the clsact qdisc (the same program: the fast path)", noLxc: true, empty: false, tcx: true },
      { tag: "n", what: `bpfnet with bpf_lxc of ${PREVIOUS_FAST_PATH} (before the per-packet cuts: two counter updates per packet)`, noLxc: false, empty: false, previous: true },
    ];
    const emptyObj = buildPassProgram();
    ctx.tmpDirs.push(path.dirname(emptyObj));
    const tcxAttach = buildTcxAttach();
    ctx.tmpDirs.push(path.dirname(tcxAttach));
    const tcxVeths: number[] = [];
    const previousLxc = buildPreviousLxc(ctx);
    const previousVeths: number[] = [];
    for (const cut of cuts) {
      const eps: EndpointView[] = [];
      for (const [i, h] of [h1, h2].entries()) {
        const ns = `bdpc${c}${i + 1}${cut.tag}`;
        const e = (await s.agents[i].client.addEndpoint({ id: `bdp-${c}${i + 1}${cut.tag}`, netns: addNs(ctx, ns) })).endpoint;
        eps.push(e);
        // The agent's own bpf_lxc, moved from cls_bpf on the clsact qdisc to the device's tcx hook.
        const lxcId = "tcx" in cut ? lxcProgramId(h, e.hostIfname) : 0;
        if (cut.noLxc) {
          run("ip", ["netns", "exec", h, "tc", "qdisc", "del", "dev", e.hostIfname, "clsact"]);
          detached.push({ ns: h, dev: e.hostIfname });
        }
        if (cut.empty) {
          run("ip", ["netns", "exec", h, "tc", "qdisc", "add", "dev", e.hostIfname, "clsact"]);
          run("ip", ["netns", "exec", h, "tc", "filter", "add", "dev", e.hostIfname, "ingress", "bpf", "direct-action", "object-file", emptyObj, "section", "tc"]);
        }
        if (lxcId) {
          run("ip", ["netns", "exec", h, tcxAttach, String(lxcId), String(e.hostIfindex!)]);
          tcxVeths[i] = e.hostIfindex!;
        }
        if ("previous" in cut) {
          // Loaded on this host's pinned maps and put in the agent's slot (the agent attaches only on start and add).
          const obj = BpfObject.load(previousLxc, { pinRoot: s.lab.inventory.hosts[i].bpffsDir! });
          try {
            const prog = obj.program("from_container");
            TcHook.open(e.hostIfindex!, "ingress", { netns: h }).attach(prog);
            previousIds[i] = prog.info().id;
          } finally {
            obj.close(); // the tc filter holds the program
          }
          previousVeths[i] = e.hostIfindex!;
        }
      }
      variants.push({ what: cut.what, path: { name: "bpfnet", client: `bdpc${c}1${cut.tag}`, server: `bdpc${c}2${cut.tag}`, serverIp: eps[1].ip } });
    }
    // The same endpoints as "bpfnet" with the fast path switched off for this variant's pings
    // only: without route rows bpf_lxc hands the packets to the host stack (the agents'
    // resync is an hour here, so nothing puts the rows back meanwhile; counted below).
    const veths = s.bpfnetEndpoints.map((e) => e.hostIfindex!);
    variants.push({ what: "bpfnet with the fast path off (no route rows: bpf_lxc passes to the host stack)", path: s.paths[0], around: withoutRoutes(ctx, veths) });
    tcxCheck = () => {
      // bpftool here predates tcx, so the counters prove bpf_lxc ran there: fast path packets on both veths.
      const fast = tcxVeths.map((id, i) => ctx.maps[i].metrics.get({ id, direction: "ingress", reason: Verdict.ROUTE_FAST }).packets);
      if (fast.some((n) => n === 0n)) throw new Error(`bpf_lxc on tcx sent no packet fast (per host: ${fast.join(", ")})`);
      // The previous bpf_lxc stayed in its slot and sent its packets by its fast path.
      previousVeths.forEach((ifindex, i) => {
        const now = TcHook.open(ifindex, "ingress", { netns: s.hostNetns[i] }).query()?.progId;
        if (now !== previousIds[i]) throw new Error(`host ${i + 1}: the previous bpf_lxc (id ${previousIds[i]}) was replaced by ${now}`);
        if (ctx.maps[i].metrics.get({ id: ifindex, direction: "ingress", reason: Verdict.ROUTE_FAST }).packets === 0n) throw new Error(`host ${i + 1}: the previous bpf_lxc sent nothing fast`);
      });
    };
  }
  log(`${mode}: idle ping, ${variants.length} paths in the same rounds (${P.variantRounds} × ${P.variantPings} each)`);
  for (const v of variants) await pingRtts(ctx.children, v.path.client, v.path.serverIp, 10, 0.01);
  const samples: number[][] = variants.map(() => []);
  const roundRatios: number[][] = variants.map(() => []);
  for (let r = 0; r < P.variantRounds; r++) {
    const p50: number[] = [];
    for (let k = 0; k < variants.length; k++) {
      const i = (k + r) % variants.length;
      const v = variants[i];
      const ping = () => pingRtts(ctx.children, v.path.client, v.path.serverIp, P.variantPings, 0.01);
      const got = await (v.around ? v.around(ping) : ping());
      samples[i].push(...got.rtts);
      p50[i] = median(got.rtts);
    }
    variants.forEach((_, i) => roundRatios[i].push(p50[i] / p50[1]));
  }
  tcxCheck();
  // The agent attaches bpf_lxc only on start and add: the detached ones must have stayed so.
  const back = detached.filter((d) => bpfAttachments(d.ns).some((a) => a.dev === d.dev && !a.program.startsWith("pass")));
  if (back.length) throw new Error(`bpf_lxc came back on ${back.map((d) => d.dev).join(", ")} during the ping rounds`);
  const base = median(samples[1]);
  return variants.map((v, i) => ({
    what: v.what,
    p50: median(samples[i]) * 1000,
    mean: mean(samples[i]) * 1000,
    n: samples[i].length,
    ratio: median(samples[i]) / base,
    roundRatios: roundRatios[i],
  }));
}

/**
 * Throughput A/A (l3): the baseline against its second pair (pingVariants' containers: the same
 * kernel path twice), alternating as measurePaths does, so the run says how far two identical
 * paths' iperf3 medians differ here: a bpfnet/baseline throughput ratio inside that spread is noise.
 */
async function throughputAA(ctx: Ctx, s: ModeSetup, octet: number, P: Params, log: (s: string) => void): Promise<string> {
  const pair: Path[] = [s.paths[1], { name: "baseline", client: "bdpcl1c", server: "bdpcl2c", serverIp: `10.${octet}.65.3` }];
  await startIperfServer(ctx.children, pair[1].server, IPERF_PORT);
  const gbps: number[][] = [[], []];
  for (let r = 0; r < P.iperfRuns; r++) {
    for (const i of r % 2 === 0 ? [0, 1] : [1, 0]) gbps[i].push((await iperf(ctx.children, pair[i].client, pair[i].serverIp, IPERF_PORT, P.iperfSeconds)).gbps);
  }
  const perRun = gbps[1].map((g, r) => fmt(g / gbps[0][r], 2)).join(" ");
  const line = `throughput A/A (the baseline's second pair / the baseline, ${P.iperfRuns} alternating iperf3 runs): median ${fmt(median(gbps[1]) / median(gbps[0]), 3)}×, per run ${perRun}`;
  log(`  ${line}`);
  return line;
}

/** bench/lib/pass_tc.c built into a temporary object (an empty tc program for the attribution). */
function buildPassProgram(): string {
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "bdp-pass-")), "pass_tc.o");
  const multiarch = tryRun("gcc", ["-print-multiarch"]).stdout.trim() || "x86_64-linux-gnu";
  run("clang", ["-O2", "-g", "-target", "bpf", `-I/usr/include/${multiarch}`, "-c", path.join(__dirname, "lib", "pass_tc.c"), "-o", out]);
  return out;
}

/**
 * bpf_lxc before the per-packet cuts (docs/benchmarks.md "bpf_lxc per-packet cost"), in the same
 * rounds as the agent's. (Its fast path counts ROUTE_FAST and FORWARDED, so its veths read double
 * forwarded counts through MetricsMap; only ROUTE_FAST is looked at here.)
 */
const PREVIOUS_FAST_PATH = "95c9277";

/** bpf_lxc.o as of PREVIOUS_FAST_PATH (its bpf/ tree from git, built into a temporary directory). */
function buildPreviousLxc(ctx: Ctx): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bdp-prev-"));
  ctx.tmpDirs.push(dir);
  run("sh", ["-c", `git -C "$0" archive "$1" bpf | tar -x -C "$2"`, REPO, PREVIOUS_FAST_PATH, dir]);
  const out = path.join(dir, "out");
  run("make", ["-s", "-C", path.join(dir, "bpf"), `OUT=${out}`, path.join(out, "bpf_lxc.o")]);
  return path.join(out, "bpf_lxc.o");
}

/** bench/lib/tcx_attach.c built into a temporary executable: attaches a program by id to a device's tcx ingress. */
function buildTcxAttach(): string {
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "bdp-tcx-")), "tcx_attach");
  run("gcc", ["-O2", "-Wall", "-o", out, path.join(__dirname, "lib", "tcx_attach.c")]);
  return out;
}

/** The id of the program on a device's clsact ingress (bpftool names it with its id: "from_container:[42]"). */
function lxcProgramId(netns: string, dev: string): number {
  const shown = JSON.parse(run("ip", ["netns", "exec", netns, "bpftool", "-j", "net", "show", "dev", dev])) as { tc?: { kind?: string; id?: number }[] }[];
  const id = shown.flatMap((b) => b.tc ?? []).find((a) => a.kind === "clsact/ingress")?.id;
  if (!id) throw new Error(`no program on ${dev}'s clsact ingress in ${netns}`);
  return id;
}

/**
 * Runs `fn` with every host's route rows (the l3 fast path) removed, then puts them back; fails
 * when a packet of the measured endpoints (their host veths: `veths[i]` on host i) still went
 * fast meanwhile (the rows came back under it).
 */
function withoutRoutes(ctx: Ctx, veths: number[]): <T>(fn: () => Promise<T>) => Promise<T> {
  return async (fn) => {
    const saved = ctx.maps.map((m) => m.routes.entries());
    const fast = () => ctx.maps.reduce((n, m, i) => n + m.metrics.get({ id: veths[i], direction: "ingress", reason: Verdict.ROUTE_FAST }).packets, 0n);
    saved.forEach((rows, i) => rows.forEach(([cidr]) => ctx.maps[i].routes.delete(cidr)));
    const before = fast();
    try {
      return await fn();
    } finally {
      const went = fast() - before;
      saved.forEach((rows, i) => rows.forEach(([cidr, r]) => ctx.maps[i].routes.set(cidr, r)));
      if (went > 0n) throw new Error(`${went} packets took the fast path while its route rows were removed`);
    }
  };
}

/** What the namespaces look like, for the error report of a failed run. */
function diagnostics(ctx: Ctx): string {
  const nss = [...(ctx.lab ? planNamespacesOf(ctx.lab) : []), ...ctx.netns];
  const present = new Set(tryRun("ip", ["netns", "list"]).stdout.split("\n").map((l) => l.split(" ")[0]));
  return nss
    .map((ns) => {
      if (!present.has(ns)) return `${ns}: MISSING`;
      const links = tryRun("ip", ["-n", ns, "-br", "link"]).stdout.trim().replace(/\n/g, "; ");
      const routes = tryRun("ip", ["-n", ns, "route"]).stdout.trim().replace(/\n/g, "; ");
      return `${ns}: links ${links}\n  routes ${routes}`;
    })
    .join("\n");
}

function planNamespacesOf(lab: TestLab): string[] {
  return [...lab.inventory.hosts.map((h) => h.netns!), ...(lab.inventory.router?.netns ? [lab.inventory.router.netns] : [])];
}

async function runMode(ctx: Ctx, mode: Mode, P: Params, octet: number, log: (s: string) => void): Promise<ModeResult> {
  try {
    return await measureMode(ctx, mode, P, octet, log);
  } catch (e) {
    const diag = diagnostics(ctx);
    const vanished = ctx.lab && planNamespacesOf(ctx.lab).some((ns) => !netnsExists(ns));
    console.error(
      `${mode} failed: ${(e as Error).message}` +
        (vanished ? "\n(the lab's host namespaces are gone: something outside this benchmark removed them while it ran)" : "") +
        `\nnamespaces at the time:\n${diag}`,
    );
    throw e;
  }
}

/** Jiffies from the first line of /proc/stat: all CPUs, all processes. */
export function cpuTimes(): { busy: number; idle: number; steal: number } {
  const f = fs.readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = f;
  return { busy: user + nice + system + irq + softirq, idle: idle + iowait, steal: steal ?? 0 };
}

export function cpuSince(a: ReturnType<typeof cpuTimes>): string {
  const b = cpuTimes();
  const total = b.busy - a.busy + (b.idle - a.idle) + (b.steal - a.steal);
  const pct = (x: number) => `${total > 0 ? ((100 * x) / total).toFixed(0) : "?"}%`;
  return `CPUs busy ${pct(b.busy - a.busy)} of the time (every process on the machine, this benchmark's included), steal ${pct(b.steal - a.steal)}`;
}

async function measureMode(ctx: Ctx, mode: Mode, P: Params, octet: number, log: (s: string) => void): Promise<ModeResult> {
  const t0 = Date.now();
  const cpu0 = cpuTimes();
  const s = await setupMode(ctx, mode, octet, log);
  const { checks } = s;
  log(`${mode}: measuring (bpfnet and baseline interleaved)`);
  const vxBefore = mode === "vxlan" ? linkTxBytes(s.hostNetns[0], BASELINE_VXLAN_DEVICE) : 0;
  const measured = await measurePaths(ctx, s.paths, P, log);
  checks.push(...pathChecks(measured, s.hostNetns));
  const control: LatencySamples[] = [];
  if (mode === "vxlan") {
    checks.push(`the baseline's traffic crossed its own VXLAN device: ${BASELINE_VXLAN_DEVICE} on h1 sent ${(linkTxBytes(s.hostNetns[0], BASELINE_VXLAN_DEVICE) - vxBefore).toLocaleString("en")} bytes`);
    log(`vxlan: endpoint add → first packet (${P.endpoints} endpoints on h1)`);
    control.push(await endpointAddBench(ctx, s.agents[0], s.bpfnetEndpoints[1].ip, P.endpoints, log));
    log(`vxlan: host joins (${P.joins})`);
    control.push(await joinBench(ctx, s.conn, s.prefix, octet, P.joins, log));
  } else {
    const routes = run("ip", ["-n", s.routerNetns!, "route", "show"]).split("\n").filter((l) => l.includes(" via "));
    checks.push(`router routes: ${routes.map((r) => r.trim()).join("; ")}`);
  }
  const variants = P.variantRounds > 0 ? await pingVariants(ctx, s, mode, octet, P, log) : [];
  if (mode === "l3" && P.variantRounds > 0) checks.push(await throughputAA(ctx, s, octet, P, log));
  checks.push(await agentProblems(s.agents));
  return {
    mode,
    title: mode === "vxlan" ? "VXLAN mode: container ↔ container across two hosts" : "L3 mode: container ↔ container across two hosts and the router",
    bpfnet: measured.res[0],
    baseline: measured.res[1],
    paths: s.describe,
    params: runParams(P),
    control,
    variants,
    checks,
    cpu: cpuSince(cpu0),
    seconds: (Date.now() - t0) / 1000,
    goals: GOALS[mode],
  };
}

/**
 * `--only endpoint-add`: the vxlan lab, agents and echo target as a full run makes them, then only
 * the endpoint-add figures and their goal; a missed goal sets a non-zero exit as in a full run.
 */
async function endpointAddOnly(ctx: Ctx, P: Params, octet: number, info: RunInfo, log: (s: string) => void): Promise<void> {
  const cpu0 = cpuTimes();
  const s = await setupMode(ctx, "vxlan", octet, log);
  // The echo server a full run starts for request/response: the new endpoints' probes ask it.
  await startEchoServer(ctx.children, s.paths[0].server, ECHO_PORT);
  await pingRtts(ctx.children, s.paths[0].client, s.paths[0].serverIp, 3, 0.05);
  log(`vxlan: endpoint add → first packet (${P.endpoints} endpoints on h1)`);
  const m = { mode: "vxlan" as const, goals: GOALS.vxlan, control: [await endpointAddBench(ctx, s.agents[0], s.bpfnetEndpoints[1].ip, P.endpoints, log)] };
  const problems = await agentProblems(s.agents);
  info.loadAfter = loadavg();
  console.log(
    [
      "",
      `Run ${info.date}: kernel ${info.kernel}, ${info.cpus} CPUs (${info.cpuModel}), load average before ${info.loadBefore}, after ${info.loadAfter}; ${cpuSince(cpu0)}.`,
      "",
      "```",
      info.command,
      "```",
      "",
      controlTable(m),
      "",
      `- ${problems}`,
    ].join("\n"),
  );
  const missed = controlMissed(m);
  if (missed.length) {
    console.log(`goals missed:\n${missed.map((x) => `  ${x}`).join("\n")}`);
    process.exitCode = 1;
  } else console.log("endpoint-add goal met");
}

async function agentProblems(agents: LabAgent[]): Promise<string> {
  const problems: string[] = [];
  for (const a of agents) for (const p of (await a.status()).problems) problems.push(`${a.host.name}: ${p}`);
  return problems.length ? `agents reported problems: ${problems.join("; ")}` : `both agents ready, no problems in their status`;
}

function runParams(P: Params): string {
  return (
    `iperf3: ${P.iperfRuns} runs × ${P.iperfSeconds} s per path (1 s omitted warm-up, one TCP stream, container on h1 → container on h2), ` +
    `request/response: ${P.rrChunks} × ${P.rrPerChunk} round trips of 64 B per path (node client/server, TCP_NODELAY, 200 unrecorded warm-up round trips each), ` +
    `ping: ${P.pingChunks} × (${P.pingPerChunk} at ${P.pingInterval * 1000} ms + ${P.pingFastPerChunk} back to back at 0.2 ms); the two paths alternate run by run (A B, B A, …)`
  );
}

export function loadavg(): string {
  return os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(" ");
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const P = args.quick ? QUICK : FULL;
  if (process.getuid?.() !== 0) throw new Error("the datapath benchmark needs root (network namespaces, BPF)");
  checkBuilt();
  for (const tool of ["iperf3", "bpftool", "ping"]) if (!tryRun("sh", ["-c", `command -v ${tool}`]).ok) throw new Error(`${tool} is not installed`);

  const log = (s: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${s}`);
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    console.error(`\n${sig}: cleaning up (agents, etcd, namespaces, lab)…`);
    void cleanupActive().finally(() => process.exit(130));
  };
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(sig, onSignal);
  const watchdog = setTimeout(() => {
    console.error(`the benchmark exceeded ${P.deadlineMin} minutes: cleaning up`);
    void cleanupActive().finally(() => process.exit(3));
  }, P.deadlineMin * 60_000);
  watchdog.unref();

  const info: RunInfo = {
    date: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    kernel: os.release(),
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model.trim() ?? "?",
    loadBefore: loadavg(),
    command: `npx ts-node bench/datapath.ts${process.argv.length > 2 ? " " + process.argv.slice(2).join(" ") : ""}`,
    quick: args.quick,
  };
  const started = Date.now();
  if (args.endpointAddOnly) {
    const ctx = (active = newCtx());
    try {
      await endpointAddOnly(ctx, P, args.octet, info, log);
    } finally {
      log("vxlan: cleaning up");
      await cleanupActive();
    }
    return;
  }
  const results: ModeResult[] = [];
  for (const mode of args.modes) {
    const ctx = (active = newCtx());
    try {
      results.push(await runMode(ctx, mode, P, args.octet, log));
    } finally {
      log(`${mode}: cleaning up`);
      await cleanupActive();
    }
    if (interrupted) return;
  }
  info.loadAfter = loadavg();
  const blocks = results.map((m) => ({ mode: m.mode, text: renderMode(m, info) }));
  console.log("");
  for (const b of blocks) console.log(b.text);
  console.log(`total ${fmt((Date.now() - started) / 1000, 0)} s`);
  if (args.write) {
    writeDoc(DOC, blocks);
    console.log(`written to ${path.relative(process.cwd(), DOC)}`);
  } else console.log(args.quick ? "(not written to docs/benchmarks.md: --quick runs need --write)" : "(not written to docs/benchmarks.md: --no-write)");
  // A check as well as a measurement: any missed goal fails the run.
  failOnMissedGoals(results.flatMap(missedGoals));
}

if (require.main === module) runBenchMain(main, cleanupActive);
