// Control-plane scale: simulated hosts (real allocator, registrations on leases, endpoint
// records) and simulated agents (the agent's real watch → view → reconcile code into memory
// maps) against a 3-member etcd with TLS, ramped step by step, then churned.
//
//   node --expose-gc -r ts-node/register/transpile-only bench/scale.ts
//
// Environment (defaults in brackets):
//   SCALE_SIZES=500,1000,2000,5000   host counts of the ramp's steps
//   SCALE_AGENTS=10                  simulated agents watching (each as one host's agent)
//   SCALE_PROBES=20                  hosts joined one at a time per step, timed on every agent
//   SCALE_ENDPOINTS=10               endpoints per host
//   SCALE_LANES=32                   concurrent joiners during the ramp
//   SCALE_COALESCE=50                agents' reconcile coalescing window, ms (0: a pass per event)
//   SCALE_TTL=15                     registration lease TTL, s
//   SCALE_CHURN_SECONDS=60           churn at the last size: one join + one leave + one endpoint
//   SCALE_CHURN_RATE=2               removed and added on a random host, this many times a second
//   SCALE_TMPFS=1                    etcd data on /dev/shm (default: disk, as in production)
//   SCALE_CALL_TIMEOUT_MS=5000       the harness's etcd call deadline (raise it on a starved machine)
//   SCALE_JSON=path                  also write the results as JSON (after every step)
//   SCALE_RESUME=1                   keep the steps SCALE_JSON already holds (same agents, endpoints,
//                                    probes, map sizes, disk or tmpfs): ramp past them without measuring again
//   SCALE_MAP_SIZES=spec             agents' map sizes: "spec" (from the network's spec, as NodeAgent
//                                    passes them: 16,384 hosts for its /10 of /24s) or "compiled" (abi.h)
//   SCALE_PROXIES=0                  agents watch through this many etcd gRPC proxies (0: the members)
//   SCALE_AGENT_THREADS=0            1: each agent on a worker thread of its own (its own event loop and
//                                    etcd client, as on its own host), so its latency is not the harness's
//                                    queue of hosts' writes; the extra agent's heap is its worker's
//   SCALE_BASELINE_AGENTS=0          this many of the agents diff their whole ipcache every pass (the agent
//                                    before incremental passes): a baseline in the same run; the tables then
//                                    show the endpoint convergence of both kinds and their ratio
//   SCALE_DOCS=1                     write the tables into docs/benchmarks.md (between the
//                                    bench/scale.ts markers) and the curves to docs/scale-curves.svg
//
// The full ramp, resumable, in one command (an idle machine, ~30-60 min): bash bench/scaleRamp.sh
import * as fs from "fs";
import * as os from "os";
import type { Etcd3 } from "etcd3";
import { containerNetworkProvider } from "../provider/network/containerNetwork";
import { connect } from "../provider/etcd/etcdClient";
import { networkRange } from "../provider/etcd/keys";
import { rangeEnd } from "../provider/etcd/etcdOps";
import { silentLogger } from "../node-agent/daemon/log";
import { reconcileObservers } from "../node-agent/daemon/reconcile";
import { Convergence, Simulation, waitFor } from "../node-agent/sim/simulation";
import { AgentThread } from "../node-agent/sim/agentThread";
import { simMapCapacity } from "../node-agent/sim/simulatedAgent";
import { mapSizesFor } from "../provider/network/mapSizes";
import { renderScaleSvg } from "./scalePlot";
import { startGrpcProxies, startThreeMemberEtcd, ThreeMemberEtcd } from "../test/support/threeMemberEtcd";
import { fmt, markdownTable, percentile } from "./lib/stats";

const env = (k: string, d: string) => process.env[k] ?? d;
const SIZES = env("SCALE_SIZES", "500,1000,2000,5000").split(",").map(Number);
const AGENTS = Number(env("SCALE_AGENTS", "10"));
const PROBES = Number(env("SCALE_PROBES", "20"));
const ENDPOINTS = Number(env("SCALE_ENDPOINTS", "10"));
const LANES = Number(env("SCALE_LANES", "32"));
const COALESCE = Number(env("SCALE_COALESCE", "50"));
const TTL = Number(env("SCALE_TTL", "15"));
const CHURN_SECONDS = Number(env("SCALE_CHURN_SECONDS", "60"));
const CHURN_RATE = Number(env("SCALE_CHURN_RATE", "2"));
const CALL_TIMEOUT_MS = Number(env("SCALE_CALL_TIMEOUT_MS", "5000"));
const MAP_SIZES = env("SCALE_MAP_SIZES", "spec");
const PROXIES = Number(env("SCALE_PROXIES", "0"));
const AGENT_THREADS = env("SCALE_AGENT_THREADS", "0") === "1";
const BASELINE_AGENTS = Number(env("SCALE_BASELINE_AGENTS", "0"));
const CLUSTER_CIDR = "10.0.0.0/10";
const HOST_PREFIX = 24;
/** What must match for a step of an earlier run to be kept. */
const CONFIG = { agents: AGENTS, endpoints: ENDPOINTS, probes: PROBES, coalesceMs: COALESCE, mapSizes: MAP_SIZES, proxies: PROXIES, tmpfs: process.env.SCALE_TMPFS === "1", ...(AGENT_THREADS ? { agentThreads: true } : {}), ...(BASELINE_AGENTS ? { baselineAgents: BASELINE_AGENTS } : {}) };
const DOCS = "docs/benchmarks.md";
const MARK_BEGIN = "<!-- bench/scale.ts: begin (generated by SCALE_DOCS=1) -->";
const MARK_END = "<!-- bench/scale.ts: end -->";

interface EtcdSample {
  at: number;
  revision: number;
  keys: number;
  dbBytes: number[];
  cpuSeconds: number[];
  rssBytes: number[];
  /** Watchers the members serve (etcd_debugging_mvcc_watcher_total, summed): the watch fan-out etcd carries. */
  watchers: number;
  /** Requests the members answered (summed over members; from their metrics): transactions, ranges, lease keepalives. */
  txns?: number;
  ranges?: number;
  keepalives?: number;
}

interface Step {
  hosts: number;
  rampSeconds: number;
  rampHostsPerSecond: number;
  join: number[];
  endpoint: number[];
  /** With SCALE_BASELINE_AGENTS: the full-pass agents' samples (join and endpoint hold the others'). */
  baselineJoin?: number[];
  baselineEndpoint?: number[];
  missing: number;
  etcd: EtcdSample;
  writesPerSecond: number;
  etcdCpuPercent: number;
  /** One more agent started at this size: its list (a restart, or a relist after compaction). */
  relistMs: number;
  relistBytes: number;
  agentHeapBytes: number;
  /** Per agent, during the ramp: watch events and bytes per second. */
  watchEventsPerSecond: number;
  watchBytesPerSecond: number;
  harnessCpuPercent: number;
  /** The harness's main thread alone (the hosts' writers; with SCALE_AGENT_THREADS=1 not the agents). */
  mainThreadCpuPercent?: number;
  /** Writes the agents' maps refused as full (BPF max_entries), summed over agents. */
  mapFull: number;
  /** etcd requests per host joined during the ramp and lease keepalives per second (the members' metrics). */
  txnsPerJoin?: number;
  rangesPerJoin?: number;
  keepalivesPerSecond?: number;
  /** The simulated agents' ipcache reconcile passes during the step: ms p50 and max (a pass recomputes every row). */
  ipcachePassMs?: [number, number];
}

/** A convergence's samples of the product's agents and of the full-pass baseline's (the simulation's baselineHosts). */
function byKind(c: Convergence, baselineHosts: ReadonlySet<string>): { product: number[]; baseline: number[] } {
  const out = { product: [] as number[], baseline: [] as number[] };
  c.latenciesMs.forEach((ms, i) => (baselineHosts.has(c.agents[i]) ? out.baseline : out.product).push(ms));
  return out;
}

/** The baseline's columns: its samples and the product's p99 over the baseline's. */
function baselineCells(product: number[], baseline: number[] | undefined): string[] {
  return baseline?.length ? [dist(baseline), fmt(percentile(product, 99) / percentile(baseline, 99), 2)] : ["-", "-"];
}

/** Every simulated agent's ipcache pass duration, ms (the daemon's reconcile observers). */
const ipcachePasses: number[] = [];
reconcileObservers.add((target, seconds) => {
  if (target === "ipcache") ipcachePasses.push(seconds * 1000);
});

/** CPU seconds (user + system) from a /proc stat file: a process's, or one thread's (task/<tid>/stat). */
function statCpuSeconds(file: string): number {
  const stat = fs.readFileSync(file, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
}

function procStat(pid: number): { cpuSeconds: number; rssBytes: number } {
  const rss = Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) * 1024;
  return { cpuSeconds: statCpuSeconds(`/proc/${pid}/stat`), rssBytes: rss };
}

/** The harness's main thread's CPU seconds (its thread id is the process id). */
const mainThreadCpuSeconds = () => statCpuSeconds(`/proc/${process.pid}/task/${process.pid}/stat`);

async function sampleEtcd(etcd: ThreeMemberEtcd, perMember: Etcd3[], admin: Etcd3, prefix: string): Promise<EtcdSample> {
  const count = await admin.kv.range({ key: Buffer.from(networkRange(prefix)), range_end: rangeEnd(networkRange(prefix)), count_only: true });
  const status = await Promise.all(perMember.map((c) => c.maintenance.status()));
  const procs = etcd.members.map((m) => procStat(m.pid));
  let watchers = 0;
  let txns = 0;
  let ranges = 0;
  let keepalives = 0;
  const grpcMessages = (text: string, method: string) => Number(new RegExp(`^grpc_server_msg_received_total\\{grpc_method="${method}",[^}]*\\} ([0-9.e+]+)$`, "m").exec(text)?.[1] ?? 0);
  for (const m of etcd.members) {
    const text = await (await fetch(m.metricsUrl)).text();
    watchers += Number(/^etcd_debugging_mvcc_watcher_total ([0-9.e+]+)$/m.exec(text)?.[1] ?? NaN);
    txns += grpcMessages(text, "Txn");
    ranges += grpcMessages(text, "Range");
    keepalives += grpcMessages(text, "LeaseKeepAlive");
  }
  return {
    watchers,
    txns,
    ranges,
    keepalives,
    at: Date.now(),
    revision: Number(count.header.revision),
    keys: Number(count.count),
    dbBytes: status.map((s) => Number(s.dbSize)),
    cpuSeconds: procs.map((p) => p.cpuSeconds),
    rssBytes: procs.map((p) => p.rssBytes),
  };
}

/** Pure: the names shuffled (Fisher-Yates) and cut into two halves that share none. */
function disjointRandomHalves(names: string[], random: () => number = Math.random): [string[], string[]] {
  const a = [...names];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return [a.slice(0, Math.floor(a.length / 2)), a.slice(Math.floor(a.length / 2))];
}

function gc(): void {
  (global as { gc?: () => void }).gc?.();
}

const mib = (b: number) => fmt(b / 2 ** 20, 1);
const dist = (xs: number[]) => `${fmt(percentile(xs, 50), 0)} / ${fmt(percentile(xs, 99), 0)} / ${fmt(Math.max(...xs), 0)}`;

/** Transport errors no caller awaited (an etcd member too slow on a loaded machine): counted, reported, not fatal. */
let unhandled = 0;
/** The same inside the agents' threads (SCALE_AGENT_THREADS=1), as the simulation counted them. */
let threadUnhandled = 0;
process.on("unhandledRejection", (e) => {
  unhandled++;
  if (unhandled <= 3) console.error(`unhandled rejection: ${(e as Error)?.message ?? e}`);
});

/** Steps of an earlier run (SCALE_RESUME=1, SCALE_JSON) made with the same configuration. */
function earlierSteps(): Step[] {
  const file = process.env.SCALE_JSON;
  if (process.env.SCALE_RESUME !== "1" || !file || !fs.existsSync(file)) return [];
  const earlier = JSON.parse(fs.readFileSync(file, "utf8")) as { config?: unknown; steps?: Step[] };
  if (JSON.stringify(earlier.config) !== JSON.stringify(CONFIG)) {
    console.error(`${file} was made with ${JSON.stringify(earlier.config)}, not ${JSON.stringify(CONFIG)}: measuring every step again`);
    return [];
  }
  return earlier.steps ?? [];
}

/** The run's tables, as markdown. */
function report(steps: Step[], churn: Record<string, unknown> | undefined, stoppedAt: string | undefined, dataRoot: string, capacity: Record<string, number>, loads: number[]): string {
  const out: string[] = [];
  out.push(`Run of ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC, load average (1 min) ${loads.map((l) => l.toFixed(1)).join(" → ")} (start, after each step, end); agents' maps: tunnel ${capacity.tunnel}, ipcache ${capacity.ipcache} (${MAP_SIZES === "compiled" ? "compiled sizes" : "from the network's spec"}).`);
  out.push(`\n#### Scale ramp (${AGENTS} simulated agents${BASELINE_AGENTS ? `, ${BASELINE_AGENTS} of them with full ipcache passes as a baseline,` : ""}${AGENT_THREADS ? " on threads of their own" : " in the harness's thread"}${PROXIES ? ` watching through ${PROXIES} etcd gRPC proxies` : ""}, ${ENDPOINTS} endpoints/host, 3-member etcd with TLS on ${dataRoot}, coalesce ${COALESCE} ms, ${os.cpus().length} CPUs)\n`);
  out.push(
    markdownTable(
      ["hosts", "ramp hosts/s", "harness CPU % in ramp (main thread)", "etcd txns / ranges per join", "lease keepalives/s", "agent ipcache pass ms p50/max", "join→tunnel ms p50/p99/max", "endpoint→ipcache ms p50/p99/max", ...(BASELINE_AGENTS ? ["endpoint→ipcache, full-pass baseline agents", "endpoint p99 ÷ baseline's"] : []), "missing", "map full", "etcd watchers", "etcd keys", "etcd DB MiB", "etcd RSS MiB (max member)", "etcd CPU % (3 members)", "revisions/s", "agent heap MiB", "agent watch ev/s", "agent watch KiB/s", "relist ms", "relist MiB"],
      steps.map((s) => [
        String(s.hosts),
        fmt(s.rampHostsPerSecond, 1),
        `${fmt(s.harnessCpuPercent, 0)}${s.mainThreadCpuPercent === undefined ? "" : ` (${fmt(s.mainThreadCpuPercent, 0)})`}`,
        s.txnsPerJoin === undefined ? "-" : `${fmt(s.txnsPerJoin, 1)} / ${fmt(s.rangesPerJoin!, 1)}`,
        s.keepalivesPerSecond === undefined ? "-" : fmt(s.keepalivesPerSecond, 0),
        s.ipcachePassMs === undefined ? "-" : `${fmt(s.ipcachePassMs[0], 1)} / ${fmt(s.ipcachePassMs[1], 0)}`,
        dist(s.join),
        dist(s.endpoint),
        ...(BASELINE_AGENTS ? baselineCells(s.endpoint, s.baselineEndpoint) : []),
        String(s.missing),
        String(s.mapFull),
        String(s.etcd.watchers ?? "-"),
        String(s.etcd.keys),
        mib(Math.max(...s.etcd.dbBytes)),
        mib(Math.max(...s.etcd.rssBytes)),
        fmt(s.etcdCpuPercent, 0),
        fmt(s.writesPerSecond, 0),
        mib(s.agentHeapBytes),
        fmt(s.watchEventsPerSecond, 0),
        fmt(s.watchBytesPerSecond / 1024, 0),
        String(s.relistMs),
        mib(s.relistBytes),
      ]),
    ),
  );
  if (churn) {
    const c = churn as { hosts: number; seconds: number; joins: number; leaves: number; endpointChanges: number; reusedCidrs?: number; join: number[]; leave: number[]; endpoint: number[]; baselineEndpoint?: number[]; missing: number; relists: number; writesPerSecond: number; etcdCpuPercent: number };
    out.push(`\n#### Churn at ${c.hosts} hosts for ${fmt(c.seconds, 0)} s (${c.joins} joins, ${c.leaves} leaves${c.reusedCidrs ? ` (${c.reusedCidrs} of their pod CIDRs handed to a joiner: no removal expected)` : ""}, ${c.endpointChanges} endpoint re-adds)\n`);
    out.push(
      markdownTable(
        ["join→tunnel ms p50/p99/max", "leave→tunnel removed ms p50/p99/max", "endpoint→ipcache ms p50/p99/max", ...(BASELINE_AGENTS ? ["endpoint→ipcache, full-pass baseline agents", "endpoint p99 ÷ baseline's"] : []), "missing", "agent relists", "revisions/s", "etcd CPU %"],
        [[dist(c.join), dist(c.leave), dist(c.endpoint), ...(BASELINE_AGENTS ? baselineCells(c.endpoint, c.baselineEndpoint) : []), String(c.missing), String(c.relists), fmt(c.writesPerSecond, 0), fmt(c.etcdCpuPercent, 0)]],
      ),
    );
  }
  if (stoppedAt) out.push(`\n${stoppedAt}`);
  out.push(`\nUnhandled etcd call failures in the harness: ${unhandled}${AGENT_THREADS ? `, in the agents' threads: ${threadUnhandled}` : ""}.`);
  return out.join("\n");
}

/** Replaces the generated block of docs/benchmarks.md (inserted before the curves the first time) and renders the curves. */
function writeDocs(text: string, steps: Step[]): void {
  const doc = fs.readFileSync(DOCS, "utf8");
  const block = `${MARK_BEGIN}\n${text.trim()}\n${MARK_END}`;
  const i = doc.indexOf(MARK_BEGIN);
  const j = doc.indexOf(MARK_END);
  const curves = "![scale curves](scale-curves.svg)";
  let next: string;
  if (i >= 0 && j > i) next = doc.slice(0, i) + block + doc.slice(j + MARK_END.length);
  else if (doc.includes(curves)) next = doc.replace(curves, `${block}\n\n${curves}`);
  else throw new Error(`${DOCS} has neither the bench/scale.ts markers nor the curves' image to put the tables before`);
  fs.writeFileSync(DOCS, next);
  fs.writeFileSync("docs/scale-curves.svg", renderScaleSvg(steps as never));
  console.error(`wrote ${DOCS} (generated block) and docs/scale-curves.svg`);
}

async function main(): Promise<void> {
  if (!(global as { gc?: unknown }).gc) console.error("note: run with node --expose-gc for per-agent heap figures");
  const dataRoot = CONFIG.tmpfs ? "/dev/shm" : os.tmpdir();
  const etcd = await startThreeMemberEtcd({ dataRoot });
  const admin = connect(etcd.connection, { callTimeoutMs: 30_000 });
  const perMember = etcd.members.map((m) => connect({ ...etcd.connection, endpoints: [m.clientUrl] }, { callTimeoutMs: 30_000 }));
  const c = await containerNetworkProvider.check!({} as never, { connection: etcd.connection, networkName: "scale", mode: "vxlan", clusterCidr: CLUSTER_CIDR, hostPrefixLength: HOST_PREFIX } as never);
  if (c.failures?.length) throw new Error(JSON.stringify(c.failures));
  const prefix = (await containerNetworkProvider.create(c.inputs!)).id;
  // The sizes NodeAgent gives a real agent of this network (provider/network/mapSizes.ts), or the compiled ones.
  const mapSizes = MAP_SIZES === "compiled" ? {} : mapSizesFor({ clusterCidr: CLUSTER_CIDR, hostPrefixLength: HOST_PREFIX });
  const capacity = simMapCapacity(mapSizes);
  const proxies = PROXIES > 0 ? await startGrpcProxies(etcd, PROXIES) : undefined;
  const sim = new Simulation({
    connection: etcd.connection,
    prefix,
    mode: "vxlan",
    hostsPerClient: 100,
    endpointsPerHost: ENDPOINTS,
    leaseTtlSeconds: TTL,
    ipcache: true,
    log: silentLogger,
    coalesceMs: COALESCE,
    callTimeoutMs: CALL_TIMEOUT_MS,
    mapSizes,
    ...(proxies ? { agentEndpoints: proxies.endpoints } : {}),
    agentThreads: AGENT_THREADS,
    baselineAgents: BASELINE_AGENTS,
  });
  const steps: Step[] = [];
  const kept = earlierSteps();
  const loads: number[] = [os.loadavg()[0]];
  let churn: Record<string, unknown> | undefined;
  let stoppedAt: string | undefined;
  console.error(`etcd: 3 members, TLS, data on ${dataRoot}; ${AGENTS} agents, ${ENDPOINTS} endpoints/host, coalesce ${COALESCE} ms, lease TTL ${TTL} s, agents ${AGENT_THREADS ? "on threads of their own" : "in the harness's thread"}`);
  try {
    await sim.startAgents(AGENTS);
    for (const size of SIZES) {
      const earlier = kept.find((k) => k.hosts === size);
      if (earlier) {
        // Measured by an earlier run: ramp past it (the network must hold these hosts) without measuring.
        const t0 = Date.now();
        await sim.addHosts(size - sim.hosts.size, LANES);
        await waitFor(() => sim.agents.every((a) => a.tunnel.size === Math.min(sim.hosts.size, capacity.tunnel)), 300_000, `every agent's tunnel map at ${sim.hosts.size} hosts`);
        steps.push(earlier);
        console.error(`${size} hosts: kept from ${process.env.SCALE_JSON} (ramped past in ${fmt((Date.now() - t0) / 1000)} s)`);
        continue;
      }
      const before = await sampleEtcd(etcd, perMember, admin, prefix);
      ipcachePasses.length = 0;
      await sim.refreshStats();
      const agentBefore = sim.agents.map((a) => a.stats);
      const cpu0 = process.cpuUsage();
      const main0 = mainThreadCpuSeconds();
      const hostsBefore = sim.hosts.size;
      const t0 = Date.now();
      try {
        await sim.addHosts(size - PROBES - sim.hosts.size, LANES);
      } catch (e) {
        stoppedAt = `ramp to ${size} failed: ${(e as Error).message}`;
        break;
      }
      const total = () => sim.hosts.size;
      // A tunnel map holds at most its BPF max_entries: past that the agents refuse (counted as map full).
      await waitFor(() => sim.agents.every((a) => a.tunnel.size === Math.min(total(), capacity.tunnel)), 300_000, `every agent's tunnel map at ${total()} hosts`);
      const rampSeconds = (Date.now() - t0) / 1000;
      const rampEnd = await sampleEtcd(etcd, perMember, admin, prefix);
      const cpu = process.cpuUsage(cpu0);
      const mainCpuSeconds = mainThreadCpuSeconds() - main0;
      const ramped = sim.hosts.size - hostsBefore;
      await sim.refreshStats();
      const agentAfter = sim.agents.map((a) => a.stats);
      const perAgent = (f: (s: (typeof agentAfter)[0]) => number) => agentAfter.reduce((n, s, i) => n + f(s) - f(agentBefore[i]), 0) / AGENTS / rampSeconds;

      // Probes: one host at a time, each timed from its allocation (tunnel) and each endpoint's record (ipcache).
      sim.track(true);
      const joinAt = new Map<string, number>();
      const epAt = new Map<string, number>();
      for (let i = 0; i < PROBES; i++) {
        const j = await sim.join();
        joinAt.set(j.host.podCidr!, j.allocatedAt);
        for (const [k, t] of j.endpointsAt) epAt.set(k, t);
        await new Promise((r) => setTimeout(r, 100));
      }
      const join = await sim.converge("tunnel", [...joinAt.keys()], (k) => joinAt.get(k)!, 120_000);
      const ep = await sim.converge("ipcache", [...epAt.keys()], (k) => epAt.get(k)!, 120_000);
      const joinByKind = byKind(join, sim.baselineHosts);
      const epByKind = byKind(ep, sim.baselineHosts);
      sim.track(false);
      const passes = [...ipcachePasses]; // the ramp's and the probes' (not the extra agent's first)
      const after = await sampleEtcd(etcd, perMember, admin, prefix);
      const seconds = (after.at - before.at) / 1000;

      // One more agent: its heap (its worker's, on a thread; else the harness's growth) and its list.
      gc();
      const heap0 = process.memoryUsage().heapUsed;
      const l0 = Date.now();
      const [extra] = await sim.startAgents(1, 300_000);
      await waitFor(() => extra.tunnel.size === sim.hosts.size, 300_000, "the extra agent's tunnel map");
      await extra.settled();
      // On a thread, from its agent's start (the worker's own start-up, ~1 s of module loading, is not the list's).
      const relistMs = Date.now() - (extra instanceof AgentThread ? (extra.startedAt ?? l0) : l0);
      gc();
      let agentHeapBytes = process.memoryUsage().heapUsed - heap0;
      if (extra instanceof AgentThread) {
        const h = await extra.heap();
        agentHeapBytes = h.usedBytes - h.baselineBytes;
        await extra.refresh();
      }
      const relistBytes = extra.stats.listedBytes;
      await sim.stopAgent(extra);
      await sim.refreshStats();

      const step: Step = {
        hosts: sim.hosts.size,
        rampSeconds,
        rampHostsPerSecond: ramped / rampSeconds,
        join: joinByKind.product,
        endpoint: epByKind.product,
        ...(BASELINE_AGENTS ? { baselineJoin: joinByKind.baseline, baselineEndpoint: epByKind.baseline } : {}),
        missing: join.missing + ep.missing,
        etcd: after,
        writesPerSecond: (after.revision - before.revision) / seconds,
        etcdCpuPercent: (100 * after.cpuSeconds.reduce((a, b, i) => a + b - before.cpuSeconds[i], 0)) / seconds,
        relistMs,
        relistBytes,
        agentHeapBytes,
        watchEventsPerSecond: perAgent((s) => s.events),
        watchBytesPerSecond: perAgent((s) => s.bytes),
        harnessCpuPercent: (100 * (cpu.user + cpu.system)) / 1e6 / rampSeconds,
        mainThreadCpuPercent: (100 * mainCpuSeconds) / rampSeconds,
        mapFull: sim.agents.reduce((n, a) => n + a.stats.mapFull, 0),
        txnsPerJoin: (rampEnd.txns! - before.txns!) / ramped,
        rangesPerJoin: (rampEnd.ranges! - before.ranges!) / ramped,
        keepalivesPerSecond: (rampEnd.keepalives! - before.keepalives!) / ((rampEnd.at - before.at) / 1000),
        ipcachePassMs: [percentile(passes, 50), Math.max(...passes)],
      };
      steps.push(step);
      loads.push(os.loadavg()[0]);
      if (process.env.SCALE_JSON) fs.writeFileSync(process.env.SCALE_JSON, JSON.stringify({ config: CONFIG, steps, partial: true }, null, 1));
      console.error(`${step.hosts} hosts: ramp ${fmt(rampSeconds)} s (${fmt(step.rampHostsPerSecond, 1)} hosts/s, harness CPU ${fmt(step.harnessCpuPercent, 0)} % (main thread ${fmt(step.mainThreadCpuPercent!, 0)} %), ${fmt(step.txnsPerJoin!, 1)} txns + ${fmt(step.rangesPerJoin!, 1)} ranges per join, ${fmt(step.keepalivesPerSecond!, 0)} keepalives/s, ipcache pass p50/max ${fmt(step.ipcachePassMs![0], 1)}/${fmt(step.ipcachePassMs![1], 0)} ms), join p50/p99/max ${dist(step.join)} ms, endpoint ${dist(step.endpoint)} ms${step.baselineEndpoint ? ` (full-pass baseline agents ${dist(step.baselineEndpoint)} ms)` : ""}, relist ${relistMs} ms, agent heap ${mib(agentHeapBytes)} MiB`);
    }

    if (CHURN_SECONDS > 0 && steps.length) {
      await sim.refreshStats();
      const listsBefore = sim.agents.map((a) => a.stats.lists);
      const before = await sampleEtcd(etcd, perMember, admin, prefix);
      sim.track(true);
      const joinAt = new Map<string, number>();
      const goneAt = new Map<string, number>();
      const epAt = new Map<string, number>();
      const end = Date.now() + CHURN_SECONDS * 1000;
      const ticks: Promise<void>[] = [];
      // Leavers and endpoint re-adds come from the hosts of before the churn, each host once and
      // never both: a host joined (or re-added) and timed in the churn must not leave in it, or its
      // key is never held by every agent (counted missing, each waiting out the deadline).
      const [leavers, readders] = disjointRandomHalves([...sim.hosts.keys()]);
      while (Date.now() < end) {
        ticks.push(
          (async () => {
            const victim = leavers.pop();
            const victimCidr = victim === undefined ? undefined : sim.hosts.get(victim)?.podCidr;
            const other = sim.hosts.get(readders.pop() ?? "");
            const [j] = await Promise.all([
              sim.join(),
              victim === undefined ? Promise.resolve() : sim.leave(victim).then(() => victimCidr && goneAt.set(victimCidr, Date.now())),
              other
                ? other.removeEndpoint(0).then(async () => {
                    const { ip } = await other.addEndpoint(0, 300);
                    epAt.set(`${ip}/32`, Date.now());
                  })
                : Promise.resolve(),
            ]);
            joinAt.set(j.host.podCidr!, j.allocatedAt);
          })(),
        );
        await new Promise((r) => setTimeout(r, 1000 / CHURN_RATE));
      }
      await Promise.all(ticks);
      // A leaver's pod CIDR handed to a joiner in the same churn is held again, rightly: its removal
      // is not expected (the agents may never even see it, coalesced into the new host's update).
      const reused = [...goneAt.keys()].filter((cidr) => joinAt.has(cidr));
      for (const cidr of reused) goneAt.delete(cidr);
      const join = await sim.converge("tunnel", [...joinAt.keys()], (k) => joinAt.get(k)!, 120_000);
      const leave = await sim.converge("tunnel", [...goneAt.keys()], (k) => goneAt.get(k)!, 120_000, true);
      const ep = await sim.converge("ipcache", [...epAt.keys()], (k) => epAt.get(k)!, 120_000);
      const epByKind = byKind(ep, sim.baselineHosts);
      sim.track(false);
      await sim.refreshStats();
      const after = await sampleEtcd(etcd, perMember, admin, prefix);
      const seconds = (after.at - before.at) / 1000;
      churn = {
        hosts: sim.hosts.size,
        seconds,
        joins: joinAt.size,
        leaves: goneAt.size + reused.length,
        reusedCidrs: reused.length,
        endpointChanges: epAt.size,
        join: join.latenciesMs,
        leave: leave.latenciesMs,
        endpoint: epByKind.product,
        ...(BASELINE_AGENTS ? { baselineEndpoint: epByKind.baseline } : {}),
        missing: join.missing + leave.missing + ep.missing,
        relists: sim.agents.reduce((n, a, i) => n + a.stats.lists - listsBefore[i], 0),
        writesPerSecond: (after.revision - before.revision) / seconds,
        etcdCpuPercent: (100 * after.cpuSeconds.reduce((a, b, i) => a + b - before.cpuSeconds[i], 0)) / seconds,
      };
    }
  } catch (e) {
    stoppedAt = `stopped: ${(e as Error).message}`;
  } finally {
    await sim.stop();
    threadUnhandled = sim.threadUnhandled;
    await proxies?.stop();
    admin.close();
    perMember.forEach((c) => c.close());
    await etcd.stop();
  }

  loads.push(os.loadavg()[0]);
  const text = report(steps, churn, stoppedAt, dataRoot, capacity, loads);
  console.log(text);
  if (process.env.SCALE_DOCS === "1") writeDocs(text, steps);
  if (process.env.SCALE_JSON) fs.writeFileSync(process.env.SCALE_JSON, JSON.stringify({ config: CONFIG, steps, churn, stoppedAt }, null, 1));
  process.exit(0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
