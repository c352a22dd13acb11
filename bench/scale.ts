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
import * as fs from "fs";
import * as os from "os";
import type { Etcd3 } from "etcd3";
import { containerNetworkProvider } from "../provider/network/containerNetwork";
import { connect } from "../provider/etcd/etcdClient";
import { networkRange } from "../provider/etcd/keys";
import { rangeEnd } from "../provider/etcd/etcdOps";
import { silentLogger } from "../node-agent/daemon/log";
import { Simulation, waitFor } from "../node-agent/sim/simulation";
import { SIM_MAP_CAPACITY } from "../node-agent/sim/simulatedAgent";
import { startThreeMemberEtcd, ThreeMemberEtcd } from "../test/support/threeMemberEtcd";
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

interface EtcdSample {
  at: number;
  revision: number;
  keys: number;
  dbBytes: number[];
  cpuSeconds: number[];
  rssBytes: number[];
}

interface Step {
  hosts: number;
  rampSeconds: number;
  rampHostsPerSecond: number;
  join: number[];
  endpoint: number[];
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
  /** Writes the agents' maps refused as full (BPF max_entries), summed over agents. */
  mapFull: number;
}

function procStat(pid: number): { cpuSeconds: number; rssBytes: number } {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(f[11]) + Number(f[12]);
  const rss = Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) * 1024;
  return { cpuSeconds: ticks / 100, rssBytes: rss };
}

async function sampleEtcd(etcd: ThreeMemberEtcd, perMember: Etcd3[], admin: Etcd3, prefix: string): Promise<EtcdSample> {
  const count = await admin.kv.range({ key: Buffer.from(networkRange(prefix)), range_end: rangeEnd(networkRange(prefix)), count_only: true });
  const status = await Promise.all(perMember.map((c) => c.maintenance.status()));
  const procs = etcd.members.map((m) => procStat(m.pid));
  return {
    at: Date.now(),
    revision: Number(count.header.revision),
    keys: Number(count.count),
    dbBytes: status.map((s) => Number(s.dbSize)),
    cpuSeconds: procs.map((p) => p.cpuSeconds),
    rssBytes: procs.map((p) => p.rssBytes),
  };
}

function gc(): void {
  (global as { gc?: () => void }).gc?.();
}

const mib = (b: number) => fmt(b / 2 ** 20, 1);
const dist = (xs: number[]) => `${fmt(percentile(xs, 50), 0)} / ${fmt(percentile(xs, 99), 0)} / ${fmt(Math.max(...xs), 0)}`;

/** Transport errors no caller awaited (an etcd member too slow on a loaded machine): counted, reported, not fatal. */
let unhandled = 0;
process.on("unhandledRejection", (e) => {
  unhandled++;
  if (unhandled <= 3) console.error(`unhandled rejection: ${(e as Error)?.message ?? e}`);
});

async function main(): Promise<void> {
  if (!(global as { gc?: unknown }).gc) console.error("note: run with node --expose-gc for per-agent heap figures");
  const dataRoot = process.env.SCALE_TMPFS ? "/dev/shm" : os.tmpdir();
  const etcd = await startThreeMemberEtcd({ dataRoot });
  const admin = connect(etcd.connection, { callTimeoutMs: 30_000 });
  const perMember = etcd.members.map((m) => connect({ ...etcd.connection, endpoints: [m.clientUrl] }, { callTimeoutMs: 30_000 }));
  const c = await containerNetworkProvider.check!({} as never, { connection: etcd.connection, networkName: "scale", mode: "vxlan", clusterCidr: "10.0.0.0/10", hostPrefixLength: 24 } as never);
  if (c.failures?.length) throw new Error(JSON.stringify(c.failures));
  const prefix = (await containerNetworkProvider.create(c.inputs!)).id;
  const sim = new Simulation({ connection: etcd.connection, prefix, mode: "vxlan", hostsPerClient: 100, endpointsPerHost: ENDPOINTS, leaseTtlSeconds: TTL, ipcache: true, log: silentLogger, coalesceMs: COALESCE, callTimeoutMs: CALL_TIMEOUT_MS });
  const steps: Step[] = [];
  let churn: Record<string, unknown> | undefined;
  let stoppedAt: string | undefined;
  console.error(`etcd: 3 members, TLS, data on ${dataRoot}; ${AGENTS} agents, ${ENDPOINTS} endpoints/host, coalesce ${COALESCE} ms, lease TTL ${TTL} s`);
  try {
    await sim.startAgents(AGENTS);
    for (const size of SIZES) {
      const before = await sampleEtcd(etcd, perMember, admin, prefix);
      const agentBefore = sim.agents.map((a) => a.stats);
      const cpu0 = process.cpuUsage();
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
      await waitFor(() => sim.agents.every((a) => a.tunnel.size === Math.min(total(), SIM_MAP_CAPACITY.tunnel)), 300_000, `every agent's tunnel map at ${total()} hosts`);
      const rampSeconds = (Date.now() - t0) / 1000;
      const cpu = process.cpuUsage(cpu0);
      const ramped = sim.hosts.size - hostsBefore;
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
      sim.track(false);
      const after = await sampleEtcd(etcd, perMember, admin, prefix);
      const seconds = (after.at - before.at) / 1000;

      // One more agent: its heap and its list.
      gc();
      const heap0 = process.memoryUsage().heapUsed;
      const l0 = Date.now();
      const [extra] = await sim.startAgents(1, 300_000);
      await waitFor(() => extra.tunnel.size === sim.hosts.size, 300_000, "the extra agent's tunnel map");
      await extra.settled();
      const relistMs = Date.now() - l0;
      gc();
      const agentHeapBytes = process.memoryUsage().heapUsed - heap0;
      const relistBytes = extra.stats.listedBytes;
      await sim.stopAgent(extra);

      const step: Step = {
        hosts: sim.hosts.size,
        rampSeconds,
        rampHostsPerSecond: ramped / rampSeconds,
        join: join.latenciesMs,
        endpoint: ep.latenciesMs,
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
        mapFull: sim.agents.reduce((n, a) => n + a.stats.mapFull, 0),
      };
      steps.push(step);
      if (process.env.SCALE_JSON) fs.writeFileSync(process.env.SCALE_JSON, JSON.stringify({ steps, partial: true }, null, 1));
      console.error(`${step.hosts} hosts: ramp ${fmt(rampSeconds)} s, join p50/p99/max ${dist(step.join)} ms, endpoint ${dist(step.endpoint)} ms, relist ${relistMs} ms, agent heap ${mib(agentHeapBytes)} MiB`);
    }

    if (CHURN_SECONDS > 0 && steps.length) {
      const listsBefore = sim.agents.map((a) => a.stats.lists);
      const before = await sampleEtcd(etcd, perMember, admin, prefix);
      sim.track(true);
      const joinAt = new Map<string, number>();
      const goneAt = new Map<string, number>();
      const epAt = new Map<string, number>();
      const end = Date.now() + CHURN_SECONDS * 1000;
      const ticks: Promise<void>[] = [];
      while (Date.now() < end) {
        ticks.push(
          (async () => {
            const names = [...sim.hosts.keys()];
            const victim = names[Math.floor(Math.random() * names.length)];
            const victimCidr = sim.hosts.get(victim)?.podCidr;
            const other = sim.hosts.get(names[Math.floor(Math.random() * names.length)]);
            const [j] = await Promise.all([
              sim.join(),
              sim.leave(victim).then(() => victimCidr && goneAt.set(victimCidr, Date.now())),
              other && other !== sim.hosts.get(victim)
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
      const join = await sim.converge("tunnel", [...joinAt.keys()], (k) => joinAt.get(k)!, 120_000);
      const leave = await sim.converge("tunnel", [...goneAt.keys()], (k) => goneAt.get(k)!, 120_000, true);
      const ep = await sim.converge("ipcache", [...epAt.keys()], (k) => epAt.get(k)!, 120_000);
      sim.track(false);
      const after = await sampleEtcd(etcd, perMember, admin, prefix);
      const seconds = (after.at - before.at) / 1000;
      churn = {
        hosts: sim.hosts.size,
        seconds,
        joins: joinAt.size,
        leaves: goneAt.size,
        endpointChanges: epAt.size,
        join: join.latenciesMs,
        leave: leave.latenciesMs,
        endpoint: ep.latenciesMs,
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
    admin.close();
    perMember.forEach((c) => c.close());
    await etcd.stop();
  }

  console.log(`\n### Scale ramp (${AGENTS} simulated agents, ${ENDPOINTS} endpoints/host, 3-member etcd with TLS on ${dataRoot}, coalesce ${COALESCE} ms, ${os.cpus().length} CPUs)\n`);
  console.log(
    markdownTable(
      ["hosts", "ramp hosts/s", "join→tunnel ms p50/p99/max", "endpoint→ipcache ms p50/p99/max", "missing", "map full", "etcd keys", "etcd DB MiB", "etcd RSS MiB (max member)", "etcd CPU % (3 members)", "revisions/s", "agent heap MiB", "agent watch ev/s", "agent watch KiB/s", "relist ms", "relist MiB"],
      steps.map((s) => [
        String(s.hosts),
        fmt(s.rampHostsPerSecond, 0),
        dist(s.join),
        dist(s.endpoint),
        String(s.missing),
        String(s.mapFull),
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
    const c = churn as { hosts: number; seconds: number; joins: number; leaves: number; endpointChanges: number; join: number[]; leave: number[]; endpoint: number[]; missing: number; relists: number; writesPerSecond: number; etcdCpuPercent: number };
    console.log(`\n### Churn at ${c.hosts} hosts for ${fmt(c.seconds, 0)} s (${c.joins} joins, ${c.leaves} leaves, ${c.endpointChanges} endpoint re-adds)\n`);
    console.log(
      markdownTable(
        ["join→tunnel ms p50/p99/max", "leave→tunnel removed ms p50/p99/max", "endpoint→ipcache ms p50/p99/max", "missing", "agent relists", "revisions/s", "etcd CPU %"],
        [[dist(c.join), dist(c.leave), dist(c.endpoint), String(c.missing), String(c.relists), fmt(c.writesPerSecond, 0), fmt(c.etcdCpuPercent, 0)]],
      ),
    );
  }
  if (stoppedAt) console.log(`\n${stoppedAt}`);
  console.log(`\nUnhandled etcd call failures in the harness: ${unhandled}.`);
  if (process.env.SCALE_JSON) fs.writeFileSync(process.env.SCALE_JSON, JSON.stringify({ steps, churn, stoppedAt }, null, 1));
  process.exit(0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
