// Policy cost on real traffic: TCP throughput and request/response latency between containers on
// two hosts (a vxlan lab, real agents, real policies through the provider, the computation and
// the maps), with the server endpoint under no policy, one L3/L4 policy, or 1,000 rules; the
// three run interleaved in the same lab and the same run, and are reported as ratios to "no
// policy" (never as absolute claims). Goal (issue 9): at 1,000 rules ≥ 0.95× the throughput and
// ≤ 1.05× the request/response latency of no policy.
//
//   npx ts-node bench/policyTraffic.ts [--rounds 5] [--seconds 5] [--rr 1000] [--rules 1000]
//
// One client container on h1 (app=client); four server containers on h2, each with an iperf3
// server and a TCP echo server: "open" and "open2" (selected by nothing: the second is an A/A
// control that shows this run's noise), "one" (one policy: client → TCP 5201 and 7100) and
// "many" (one policy of --rules ingress rules: --rules − 1 CIDR rules, each a /32 outside the
// lab with its own port, plus the client's rule).
// The CIDRs get identities and ipcache rows of their own (shared by all three paths: the ipcache
// is per host). Enforced packets of an established flow are re-checked in the forward direction
// (docs/policy.md), so every data packet of "one" and "many" pays for a policy lookup.
// Per round, each path runs one iperf3 (single stream, 1 s omitted) and one chunk of
// request/response round trips; the order of the paths rotates each round. Ratios are given two
// ways: of the medians over all rounds, and the median of the per-round ratios (each path
// against "no policy" in the same round, which cancels drift between rounds).
//
// Lab tpb3, 10.192.0.0/16, containers tpolc192…; everything is removed in `finally`.
import { openDatapathMaps } from "../bpf";
import type { DatapathMaps } from "../bpf";
import { addContainerNetns, removeContainers, waitFor } from "../test/agent/support/agents";
import { startAgentLab, AgentLab } from "../test/reliability/support/agentLab";
import { applyPolicy, WrittenPolicy } from "../test/policy/support/policies";
import { cleanupAll } from "../test/support/cleanup";
import { Children } from "./lib/proc";
import { fmt, markdownTable, mean, median, percentile, ratio } from "./lib/stats";
import { iperf, IperfResult, requestResponse, startEchoServer, startIperfServer } from "./lib/traffic";

const LAB = "tpb3";
const OCTET = 192;
const IPERF_PORT = 5201;
const ECHO_PORT = 7100;
const FIRST_RULE_PORT = 20000;
const THROUGHPUT_GOAL = 0.95;
const LATENCY_GOAL = 1.05;

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

interface Server {
  name: string;
  netns: string;
  labels: Record<string, string>;
  ip?: string;
  throughput: IperfResult[];
  rr: number[];
  /** Request/response p50 of each round. */
  rrRounds: number[];
}

/** The n-th /32 of 172.16.0.0/12 (documentation-free private space outside the lab's 10/8). */
const cidr = (n: number) => `172.${16 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}/32`;

const clientRule = { fromEndpoints: [{ app: "client" }], toPorts: [{ port: IPERF_PORT, protocol: "TCP" as const }, { port: ECHO_PORT, protocol: "TCP" as const }] };

async function main(): Promise<void> {
  const rounds = arg("rounds", 5);
  const seconds = arg("seconds", 5);
  const rrPerRound = arg("rr", 1000);
  const rules = arg("rules", 1000);
  const client = "tpolc192c";
  const servers: Server[] = [
    { name: "no policy", netns: "tpolc192o", labels: { app: "open" }, throughput: [], rr: [], rrRounds: [] },
    { name: "no policy (A/A)", netns: "tpolc192q", labels: { app: "open2" }, throughput: [], rr: [], rrRounds: [] },
    { name: "one L3/L4 policy", netns: "tpolc192p", labels: { app: "one" }, throughput: [], rr: [], rrRounds: [] },
    { name: `${rules} rules`, netns: "tpolc192m", labels: { app: "many" }, throughput: [], rr: [], rrRounds: [] },
  ];
  const children = new Children();
  const policies: WrittenPolicy[] = [];
  let env: AgentLab | undefined;
  let h2: DatapathMaps | undefined;
  const loadBefore = (await import("os")).loadavg().map((l) => l.toFixed(2)).join(" ");
  const started = Date.now();
  try {
    env = await startAgentLab({ lab: LAB, octet: OCTET, hosts: 2, clusterCidr: `10.${OCTET}.128.0/17`, leaseTtlSeconds: 10 });
    const [a1, a2] = env.agents;
    addContainerNetns(client);
    const clientIp = (await a1.client.addEndpoint({ id: "client", netns: `/run/netns/${client}`, labels: { app: "client" } })).endpoint.ip;
    for (const s of servers) {
      addContainerNetns(s.netns);
      s.ip = (await a2.client.addEndpoint({ id: s.labels.app, netns: `/run/netns/${s.netns}`, labels: s.labels })).endpoint.ip;
      await startIperfServer(children, s.netns, IPERF_PORT);
      await startEchoServer(children, s.netns, ECHO_PORT);
    }
    h2 = openDatapathMaps(a2.host.bpffsDir);

    const conn = env.etcd.connection;
    policies.push(await applyPolicy(conn, env.prefix, "one", { endpointSelector: { app: "one" }, ingress: [clientRule] }));
    const many = Array.from({ length: rules - 1 }, (_, i) => ({ fromCidrs: [cidr(i + 1)], toPorts: [{ port: FIRST_RULE_PORT + i, protocol: "TCP" as const }] }));
    policies.push(await applyPolicy(conn, env.prefix, "many", { endpointSelector: { app: "many" }, ingress: [...many, clientRule] }));
    const cidrRows = () => h2!.policy.entries().filter((r) => r.dport >= FIRST_RULE_PORT && r.dport < FIRST_RULE_PORT + rules).length;
    await waitFor(`h2's policy map to hold the ${rules - 1} CIDR rules' rows`, () => cidrRows() >= rules - 1, 120_000, 200);
    await waitFor("both policies enforced", async () => (await a2.client.getEndpoint("one"))?.ingress === "enforced" && (await a2.client.getEndpoint("many"))?.ingress === "enforced", 60_000);
    for (const id of ["open", "open2"]) {
      const v = await a2.client.getEndpoint(id);
      if (v?.ingress !== "open") throw new Error(`the "${id}" endpoint is ${v?.ingress}, not open`);
    }
    const rowsOfMany = h2.policy.entries().length;
    const ipcacheRows = h2.ipcache.entries().length;
    console.log(`h2: ${rowsOfMany} policy rows, ${ipcacheRows} ipcache rows; client ${clientIp}; servers ${servers.map((s) => `${s.name} ${s.ip}`).join(", ")}`);

    // Warm-up (ARP/neighbours, CT, the echo server's JIT), then the interleaved rounds.
    for (const s of servers) await requestResponse(children, client, s.ip!, ECHO_PORT, 200);
    for (let r = 0; r < rounds; r++) {
      const order = servers.map((_, i) => servers[(i + r) % servers.length]);
      for (const s of order) {
        const t = await iperf(children, client, s.ip!, IPERF_PORT, seconds);
        s.throughput.push(t);
        const rr = await requestResponse(children, client, s.ip!, ECHO_PORT, rrPerRound);
        s.rr.push(...rr);
        s.rrRounds.push(median(rr));
        console.log(`round ${r + 1}/${rounds} ${s.name.padEnd(16)} ${fmt(t.gbps, 2)} Gbit/s (${t.retransmits} retr), request/response p50 ${fmt(median(rr))} µs`);
      }
    }

    const base = servers[0];
    const gbps = (s: Server) => median(s.throughput.map((t) => t.gbps));
    /** Median over rounds of (s / no policy) in the same round. */
    const paired = (xs: number[], base: number[]) => median(xs.map((x, i) => ratio(x, base[i])));
    const tputPaired = (s: Server) => paired(s.throughput.map((t) => t.gbps), base.throughput.map((t) => t.gbps));
    const rrPaired = (s: Server) => paired(s.rrRounds, base.rrRounds);
    const rows = servers.map((s) => [
      s.name,
      fmt(gbps(s), 2),
      `${fmt(ratio(gbps(s), gbps(base)), 3)}× / ${fmt(tputPaired(s), 3)}×`,
      fmt(percentile(s.rr, 50)),
      `${fmt(ratio(percentile(s.rr, 50), percentile(base.rr, 50)), 3)}× / ${fmt(rrPaired(s), 3)}×`,
      fmt(mean(s.rr)),
      `${fmt(ratio(mean(s.rr), mean(base.rr)), 3)}×`,
      fmt(percentile(s.rr, 99)),
    ]);
    const last = servers[servers.length - 1];
    const tputRatio = tputPaired(last);
    const latRatio = rrPaired(last);
    const loadAfter = (await import("os")).loadavg().map((l) => l.toFixed(2)).join(" ");
    console.log(
      `\n${rounds} rounds × (iperf3 ${seconds} s + ${rrPerRound} request/response round trips of 64 bytes) per path, interleaved; ` +
        `${Math.round((Date.now() - started) / 1000)} s; load average before ${loadBefore}, after ${loadAfter}\n`,
    );
    console.log(markdownTable(["server endpoint", "Gbit/s (median)", "vs no policy (medians / per round)", "RR p50 µs", "vs no policy (medians / per round)", "RR mean µs", "vs no policy", "RR p99 µs"], rows));
    console.log(
      `\nper-round throughput (Gbit/s): ${servers.map((s) => `${s.name}: ${s.throughput.map((t) => fmt(t.gbps, 2)).join(" ")}`).join("; ")}` +
        `\ngoal at ${rules} rules (per-round ratios): throughput ≥ ${THROUGHPUT_GOAL}× (${fmt(tputRatio, 3)}×: ${tputRatio >= THROUGHPUT_GOAL ? "met" : "MISSED"}), ` +
        `request/response p50 ≤ ${LATENCY_GOAL}× (${fmt(latRatio, 3)}×: ${latRatio <= LATENCY_GOAL ? "met" : "MISSED"}); ` +
        `A/A control: throughput ${fmt(tputPaired(servers[1]), 3)}×, request/response p50 ${fmt(rrPaired(servers[1]), 3)}× (the noise of this run)`,
    );
  } finally {
    await cleanupAll([
      () => children.killAll(),
      ...policies.map((p) => () => p.remove()),
      () => h2?.close(),
      () => env?.down(),
      () => removeContainers([client, ...servers.map((s) => s.netns)]),
    ]);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
