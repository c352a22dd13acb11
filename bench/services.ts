// Services at scale: connection setup latency (connect + one 64-byte request/response, p50/p99)
// and TCP throughput through a VIP with 10, 1,000 and 10,000 services defined, bpfnet against
// kube-proxy-style iptables DNAT chains and against connecting to the backend directly; and the
// time to apply one service change at each size, both. One run, one lab, the same containers and
// backends; figures are reported as ratios to the baseline of the same run.
//
//   npx ts-node bench/services.ts [--rounds 3] [--conns 300] [--seconds 3] [--counts 10,1000,10000]
//
// Lab tsvc2 (vxlan, 2 hosts, real agents). h2 runs two backend containers (app=bench; the first
// also tput=yes) with a TCP echo server (7100) and an iperf3 server (5201). Clients:
// - a container on h1: "direct" (to backend 1) and "bpfnet" (the VIP, translated by bpf_lxc at the
//   container's veth: per packet, pinned in CT);
// - h1's own namespace: "direct", "bpfnet" (the VIP, translated once at connect() by the cgroup
//   socket hooks) and "iptables" (another VIP, translated by kube-proxy-style rules built in that
//   namespace only: OUTPUT → KUBE-SERVICES with one rule per service, the measured one LAST (the
//   worst case of the linear walk; kube-proxy's order is arbitrary) → KUBE-SVC-* with
//   `statistic --mode random` over the endpoints → KUBE-SEP-* DNAT; iptables-legacy, the classic
//   rule list). The latency service spreads over both backends; the throughput service has one
//   backend (iperf3's control and data connections must meet the same server).
// bpfnet's services are written to etcd as the Service resource writes them (records only: the
// agents read nothing else), N−2 fillers of 2 backends each beside the two measured ones.
// "Apply one change": bpfnet — put a new service record, until h1's service map has its row (the
// etcd write, the watch, the agent's pass, the map writes); iptables — iptables-restore of the
// whole nat table with one more service (kube-proxy's full sync before 1.26), and the partial
// sync of the same change (the new chains and one KUBE-SERVICES rule) as separate commands.
import { spawnSync } from "child_process";
import { LbProto, openLbMaps } from "../bpf";
import type { LbMaps } from "../bpf";
import { withEtcd } from "../provider/etcd/etcdClient";
import { op, txn } from "../provider/etcd/etcdOps";
import { serviceSpecKey, serviceSpecsDir, SCHEMA_VERSION } from "../provider/etcd/keys";
import type { StoredService } from "../provider/services/serviceSpec";
import { addContainerNetns, removeContainers, waitFor } from "../test/agent/support/agents";
import { startAgentLab, AgentLab } from "../test/reliability/support/agentLab";
import { Children, msSince, now, sleep } from "./lib/proc";
import { fmt, markdownTable, median, percentile, ratio } from "./lib/stats";
import { iperf, startEchoServer, startIperfServer } from "./lib/traffic";

const LAB = "tsvc2";
const OCTET = 106;
const ECHO = 7100;
const IPERF = 5201;
const NS = { cli: "tsvcc106c", srv1: "tsvcc106a", srv2: "tsvcc106b" };
/** bpfnet's measured VIP, iptables' measured VIP, the fillers' VIPs from FILLER_BASE + i. */
const VIP = `10.${OCTET}.120.10`;
const IPT_VIP = `10.${OCTET}.121.10`;
const FILLER_BASE = (10 << 24) + (OCTET << 16) + (64 << 8) + 1;
const ipOf = (n: number) => [n >>> 24, (n >> 16) & 255, (n >> 8) & 255, n & 255].join(".");
const NODE = process.execPath;

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
}

/**
 * n sequential connections: connect, send 64 bytes, wait for them back, close. Prints µs per
 * connection, and how many failed (an error, or no answer within 2 s: not a sample).
 */
const SETUP_CLIENT = `
const net = require("net");
const { ip, port, n, warmup } = JSON.parse(process.env.BENCH_ARGS);
const msg = Buffer.alloc(64, 120), out = [];
let failed = 0;
const one = (record) => new Promise((res) => {
  const t0 = process.hrtime.bigint(); let got = 0;
  const s = net.connect({ host: ip, port, noDelay: true }, () => s.write(msg));
  const t = setTimeout(() => { failed++; s.destroy(); res(); }, 2000);
  s.on("data", (d) => { got += d.length; if (got >= 64) { clearTimeout(t); if (record) out.push(Number(process.hrtime.bigint() - t0) / 1000); s.destroy(); res(); } });
  s.on("error", () => { clearTimeout(t); failed++; res(); });
});
(async () => { for (let i = 0; i < warmup + n; i++) await one(i >= warmup); process.stdout.write(JSON.stringify({ us: out.map((x) => Math.round(x)), failed })); })();
`;

async function setupLatency(children: Children, netns: string, ip: string, n: number): Promise<{ us: number[]; failed: number }> {
  const out = await children.check(netns, [NODE, "-e", SETUP_CLIENT], 600_000, { BENCH_ARGS: JSON.stringify({ ip, port: ECHO, n, warmup: 20 }) });
  return JSON.parse(out) as { us: number[]; failed: number };
}

function serviceRecord(name: string, ip: string, ports: [number, number][], selector: Record<string, string>, firstRevNat: number): StoredService {
  return {
    schema: SCHEMA_VERSION,
    serviceId: `bench-${name}`,
    serviceName: name,
    frontend: { ip, ports: ports.map(([port, targetPort], i) => ({ port, targetPort, protocol: "TCP" as const, revNatIndex: firstRevNat + i })) },
    selector,
    sessionAffinity: "none",
    sessionAffinityTimeoutSeconds: 10800,
    algorithm: "random",
    ipAllocated: false,
  };
}

/** The measured services: latency (both backends) and throughput (backend 1), then fillers f0… */
function bpfnetRecords(total: number): StoredService[] {
  const out = [serviceRecord("bench", VIP, [[ECHO, ECHO]], { app: "bench" }, 1), serviceRecord("bench-tput", VIP, [[IPERF, IPERF]], { tput: "yes" }, 2)];
  for (let i = 0; i < total - 2; i++) out.push(serviceRecord(`f${i}`, ipOf(FILLER_BASE + i), [[80, ECHO]], { app: "bench" }, 3 + i));
  return out;
}

/** Makes etcd hold exactly `records` under specs/ (puts and deletes in transactions of 128). */
async function writeServices(lab: AgentLab, records: StoredService[]): Promise<void> {
  const want = new Map(records.map((r) => [serviceSpecKey(lab.prefix, r.serviceName), JSON.stringify(r)]));
  await withEtcd(lab.etcd.connection, async (c) => {
    const have = new Set((await c.getAll().prefix(serviceSpecsDir(lab.prefix)).keys()).map(String));
    const ops = [...[...have].filter((k) => !want.has(k)).map((k) => op.del(k)), ...[...want].filter(([k]) => !have.has(k)).map(([k, v]) => op.put(k, v))];
    for (let i = 0; i < ops.length; i += 128) await txn(c, [], ops.slice(i, i + 128));
  });
}

/** The nat table of kube-proxy's iptables mode for `total` services (the measured ones last). */
function iptablesRules(total: number, backends: string[]): string {
  const lines = ["*nat", ":KUBE-SERVICES - [0:0]"];
  const chains: string[] = [];
  const rules: string[] = [];
  const service = (name: string, vip: string, port: number, target: number, eps: string[]) => {
    const svc = `KUBE-SVC-${name}`.slice(0, 28);
    chains.push(`:${svc} - [0:0]`);
    rules.push(`-A KUBE-SERVICES -d ${vip}/32 -p tcp -m tcp --dport ${port} -j ${svc}`);
    eps.forEach((ep, i) => {
      const sep = `KUBE-SEP-${name}-${i}`.slice(0, 28);
      chains.push(`:${sep} - [0:0]`);
      const left = eps.length - i;
      rules.push(left > 1 ? `-A ${svc} -m statistic --mode random --probability ${(1 / left).toFixed(11)} -j ${sep}` : `-A ${svc} -j ${sep}`);
      rules.push(`-A ${sep} -p tcp -m tcp -j DNAT --to-destination ${ep}:${target}`);
    });
  };
  for (let i = 0; i < total - 2; i++) service(`F${i}`, ipOf(FILLER_BASE + i), 80, ECHO, backends);
  service("BENCH", IPT_VIP, ECHO, ECHO, backends);
  service("TPUT", IPT_VIP, IPERF, IPERF, backends.slice(0, 1));
  // OUTPUT: the host's own connections (kube-proxy also hooks PREROUTING for pods; bpfnet's pods
  // never traverse this namespace's netfilter, so only host clients are compared).
  lines.push(":OUTPUT ACCEPT [0:0]", ...chains, "-A OUTPUT -j KUBE-SERVICES", ...rules, "COMMIT", "");
  return lines.join("\n");
}

function iptablesRestore(netns: string, text: string): number {
  const t0 = now();
  const r = spawnSync("ip", ["netns", "exec", netns, "iptables-legacy-restore"], { input: text, encoding: "utf8", maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`iptables-legacy-restore in ${netns}: ${r.stderr}`);
  return msSince(t0);
}

function iptables(netns: string, ...args: string[]): void {
  const r = spawnSync("ip", ["netns", "exec", netns, "iptables-legacy", "-t", "nat", ...args], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`iptables ${args.join(" ")} in ${netns}: ${r.stderr}`);
}

/** ms from putting one new service record until h1's service map has its row. */
async function bpfnetChange(lab: AgentLab, lb: LbMaps, k: number, revNat: number): Promise<number> {
  const rec = serviceRecord(`probe${k}`, ipOf(FILLER_BASE + 12000 + k), [[80, ECHO]], { app: "bench" }, revNat);
  const key = { vip: rec.frontend.ip, port: 80, proto: LbProto.TCP };
  const t0 = now();
  await withEtcd(lab.etcd.connection, (c) => c.put(serviceSpecKey(lab.prefix, rec.serviceName)).value(JSON.stringify(rec)).exec());
  for (;;) {
    const row = lb.services.get(key);
    if (row && row.backendIds.length === 2) return msSince(t0);
    if (msSince(t0) > 60_000) throw new Error(`h1 did not program probe${k} within 60 s`);
    await sleep(1);
  }
}

interface PathStats {
  setup: number[];
  failed: number;
  gbps: number[];
}

async function main(): Promise<void> {
  const rounds = Number(arg("rounds", "3"));
  const conns = Number(arg("conns", "300"));
  const seconds = Number(arg("seconds", "3"));
  const counts = arg("counts", "10,1000,10000").split(",").map(Number);
  const children = new Children();
  let lab: AgentLab | undefined;
  let lb: LbMaps | undefined;
  const started = new Date();
  try {
    lab = await startAgentLab({ lab: LAB, octet: OCTET, hosts: 2, clusterCidr: `10.${OCTET}.128.0/17`, leaseTtlSeconds: 10 });
    const [h1, h2] = lab.agents;
    const hostNs = h1.netns;
    const ips: Record<string, string> = {};
    for (const [name, agent, labels] of [["cli", h1, {}], ["srv1", h2, { app: "bench", tput: "yes" }], ["srv2", h2, { app: "bench" }]] as const) {
      addContainerNetns(NS[name]);
      ips[name] = (await agent.client.addEndpoint({ id: name, netns: `/run/netns/${NS[name]}`, labels })).endpoint.ip;
    }
    for (const srv of [NS.srv1, NS.srv2]) {
      await startEchoServer(children, srv, ECHO);
      await startIperfServer(children, srv, IPERF);
    }
    lb = openLbMaps(h1.host.bpffsDir);
    const backends = [ips.srv1, ips.srv2];
    // A node's VIPs are routable (kube-proxy nodes have a default route): connect() needs a route
    // before OUTPUT's DNAT can rewrite it; the one the backends' addresses take.
    const via = (JSON.parse(spawnSync("ip", ["-n", hostNs, "-j", "route", "get", ips.srv1], { encoding: "utf8" }).stdout) as { dev: string; gateway?: string }[])[0];
    spawnSync("ip", ["-n", hostNs, "route", "replace", `${IPT_VIP}/32`, "dev", via.dev, ...(via.gateway ? ["via", via.gateway] : [])]);
    const paths = {
      "container direct": { netns: NS.cli, ip: ips.srv1 },
      "container bpfnet": { netns: NS.cli, ip: VIP },
      "host direct": { netns: hostNs, ip: ips.srv1 },
      "host bpfnet": { netns: hostNs, ip: VIP },
      "host iptables": { netns: hostNs, ip: IPT_VIP },
    } as const;
    type Path = keyof typeof paths;
    const results = new Map<number, Map<Path, PathStats>>();
    const changes = new Map<number, { bpfnet: number[]; restore: number[]; partial: number[]; programAll: number }>();

    for (const total of counts) {
      // Program both to `total` services; bpfnet's time to program them all is recorded too.
      const t0 = now();
      await writeServices(lab, bpfnetRecords(total));
      const last = total > 2 ? { vip: ipOf(FILLER_BASE + total - 3), port: 80, proto: LbProto.TCP } : { vip: VIP, port: IPERF, proto: LbProto.TCP };
      await waitFor(`h1 programs ${total} services`, () => (lb!.services.get(last)?.backendIds.length ?? 0) >= 1 && lb!.services.get({ vip: VIP, port: ECHO, proto: LbProto.TCP })?.backendIds.length === 2, 600_000, 50);
      const programAll = msSince(t0);
      await waitFor(`h1 has exactly ${total} service rows`, () => lb!.services.entries().length === total, 120_000, 500);
      iptablesRestore(hostNs, iptablesRules(total, backends));
      for (const [name, p] of Object.entries(paths)) {
        const warm = await setupLatency(children, p.netns, p.ip, 20);
        if (warm.us.length === 0) throw new Error(`${name} (${p.ip}) answers nothing at ${total} services`);
      }

      const byPath = new Map<Path, PathStats>(Object.keys(paths).map((p) => [p as Path, { setup: [], failed: 0, gbps: [] }]));
      const names = Object.keys(paths) as Path[];
      for (let r = 0; r < rounds; r++) {
        const order = names.map((_, i) => names[(i + r) % names.length]);
        for (const name of order) {
          const p = paths[name];
          const r = await setupLatency(children, p.netns, p.ip, conns);
          byPath.get(name)!.setup.push(...r.us);
          byPath.get(name)!.failed += r.failed;
          byPath.get(name)!.gbps.push((await iperf(children, p.netns, p.ip, IPERF, seconds)).gbps);
        }
      }
      results.set(total, byPath);

      // One change at this size, 5 times each.
      const bpfnet: number[] = [];
      const restore: number[] = [];
      const partial: number[] = [];
      for (let k = 0; k < 5; k++) {
        bpfnet.push(await bpfnetChange(lab, lb, k, 3 + total + k));
        restore.push(iptablesRestore(hostNs, iptablesRules(total + 1 + k, backends)));
        const t = now();
        iptables(hostNs, "-N", `KUBE-SEP-PROBE${k}`);
        iptables(hostNs, "-A", `KUBE-SEP-PROBE${k}`, "-p", "tcp", "-j", "DNAT", "--to-destination", `${backends[0]}:${ECHO}`);
        iptables(hostNs, "-N", `KUBE-SVC-PROBE${k}`);
        iptables(hostNs, "-A", `KUBE-SVC-PROBE${k}`, "-j", `KUBE-SEP-PROBE${k}`);
        iptables(hostNs, "-I", "KUBE-SERVICES", "1", "-d", `${ipOf(FILLER_BASE + 13000 + k)}/32`, "-p", "tcp", "--dport", "80", "-j", `KUBE-SVC-PROBE${k}`);
        partial.push(msSince(t));
      }
      changes.set(total, { bpfnet, restore, partial, programAll });
      console.error(`done: ${total} services`);
    }
    spawnSync("ip", ["netns", "exec", hostNs, "iptables-legacy", "-t", "nat", "-F"]);
    spawnSync("ip", ["netns", "exec", hostNs, "iptables-legacy", "-t", "nat", "-X"]);

    // Report.
    const base = counts[0];
    const p50 = (total: number, path: Path) => percentile(results.get(total)!.get(path)!.setup, 50);
    const p99 = (total: number, path: Path) => percentile(results.get(total)!.get(path)!.setup, 99);
    const gb = (total: number, path: Path) => median(results.get(total)!.get(path)!.gbps);
    const rows: string[][] = [];
    for (const total of counts) {
      for (const path of Object.keys(paths) as Path[]) {
        const direct: Path = path.startsWith("container") ? "container direct" : "host direct";
        const self: Path = path;
        rows.push([
          String(total),
          path,
          fmt(p50(total, path), 0),
          fmt(p99(total, path), 0),
          fmt(ratio(p50(total, path), p50(total, direct)), 2),
          fmt(ratio(p50(total, self), p50(base, self)), 2),
          fmt(gb(total, path), 2),
          fmt(ratio(gb(total, path), gb(total, direct)), 2),
          String(results.get(total)!.get(path)!.failed),
        ]);
      }
    }
    console.log(`\n### Run ${started.toISOString()}: ${rounds} rounds × ${conns} connections and ${seconds} s iperf3 per path and size\n`);
    console.log(
      markdownTable(["services", "path", "setup p50 µs", "setup p99 µs", "p50 × direct", `p50 × same path at ${base}`, "Gbit/s (median)", "Gbit/s × direct", "failed connections"], rows),
    );
    console.log("\nTime to apply one service change (median of 5; bpfnet: etcd put → h1's map row; iptables: the command(s)):\n");
    console.log(
      markdownTable(
        ["services", "bpfnet ms", "iptables full restore ms", "iptables partial (5 commands) ms", "bpfnet: all services programmed from etcd, ms"],
        counts.map((t) => {
          const c = changes.get(t)!;
          return [String(t), fmt(median(c.bpfnet), 1), fmt(median(c.restore), 1), fmt(median(c.partial), 1), fmt(c.programAll, 0)];
        }),
      ),
    );
    const last = counts[counts.length - 1];
    console.log(
      `\nGoals: container bpfnet p50 at ${last} = ${fmt(ratio(p50(last, "container bpfnet"), p50(base, "container bpfnet")), 2)}× its p50 at ${base} (goal ≤ 1.1), ` +
        `${fmt(ratio(p50(last, "container bpfnet"), p50(last, "container direct")), 2)}× direct (goal ≤ 1.1); ` +
        `host bpfnet ${fmt(ratio(p50(last, "host bpfnet"), p50(base, "host bpfnet")), 2)}× at ${base}, ${fmt(ratio(p50(last, "host bpfnet"), p50(last, "host direct")), 2)}× direct; ` +
        `host iptables ${fmt(ratio(p50(last, "host iptables"), p50(base, "host iptables")), 2)}× at ${base}.`,
    );
  } finally {
    lb?.close();
    await children.killAll();
    removeContainers(Object.values(NS));
    await lab?.down();
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
