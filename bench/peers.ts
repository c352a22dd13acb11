// bpfnet against flannel, side by side in the same lab on the same etcd, in one run per mode:
// bpfnet vxlan vs flannel vxlan (lab bpe1), bpfnet l3 vs flannel host-gw (lab bpe2).
//
//   bash scripts/build-bench-tools.sh        (flanneld and the reference CNI plugins, cached)
//   npx tsc -p tsconfig.build.json           (the agents run from dist/)
//   flock /run/lock/bpfnet-bench.lock npx ts-node bench/peers.ts [--mode vxlan|l3|all] [--quick] [--write|--no-write]
//
// Lab: 2 + joins hosts on one underlay bridge (the vxlan topology: host-gw needs one L2 segment),
// one etcd for both over mutual TLS. h1 and h2 run both a bpfnet agent and flanneld from the
// start; h3… join later, one at a time, each on both sides.
// flannel uses its own port on the same bridge (fl0, bench/lib/flannel.ts) so none of its packets
// cross a device bpfnet put a program on. bpfnet l3 on that same segment gets what host-gw
// installs by itself: a route per peer pod CIDR via the peer's underlay address (added by this
// benchmark when a host's allocation exists, as a routing daemon would): one L2 hop on both sides.
// flannel's vxlan backend uses UDP port 4789 (bpfnet's device holds 8472); masquerading is off.
// Measured per mode, both sides interleaved (bench/datapath.ts measurePaths, whose progress lines
// call the second path, flannel here, "baseline"): iperf3 throughput,
// TCP request/response, ping; then endpoint add → first answered packet (alternating sides) and
// the joins of h3… (the side's containers on every host already there answer the new host's).
// Labs bpe1/bpe2, 10.200/10.201.0.0/16, container namespaces bdpcp…; everything is removed in
// `finally` and on signals (lab down takes flannel.1, cni0, fl0, routes and files with the hosts).
import * as os from "os";
import * as path from "path";
import { run, tryRun } from "../lab/sh";
import type { InventoryHost } from "../lab/inventory";
import { EtcdConnection, withEtcd } from "../provider/etcd/etcdClient";
import { allocate } from "../provider/ipam/ipamStore";
import { checkBuilt, LabAgent, seedNetwork } from "../test/agent/support/agents";
import { startEtcd } from "../test/support/etcd";
import { startTestLab } from "../test/support/lab";
import { openDatapathMaps } from "../bpf";
import { addNs, cleanup, cpuSince, cpuTimes, Ctx, delNs, ECHO_PORT, ensureSubnetFree, loadavg, measurePaths, newCtx, Params, Path } from "./datapath";
import { addFlannelUnderlay, checkFlannelTools, FLANNELD, FLANNEL_UNDERLAY_DEVICE, FLANNEL_VERSION, CNI_PLUGINS_VERSION, flannelCni, flannelNetworkConfig, FlannelBackend, FlannelHost, startFlanneld, SubnetEnv } from "./lib/flannel";
import { PeerSide, peersMissed, peersTable } from "./lib/peersReport";
import { msSince, now, runBenchMain } from "./lib/proc";
import { failOnMissedGoals, writeDoc } from "./lib/report";
import { fmt, median } from "./lib/stats";
import { startEchoServer, startProber } from "./lib/traffic";

const REPO = path.resolve(__dirname, "..");
const DOC = path.join(REPO, "docs", "benchmarks.md");
const FLANNEL_VXLAN_PORT = 4789;

type Mode = "vxlan" | "l3";
const MODES: Record<Mode, { lab: string; octet: number; flannel: FlannelBackend }> = {
  vxlan: { lab: "bpe1", octet: 200, flannel: "vxlan" },
  l3: { lab: "bpe2", octet: 201, flannel: "host-gw" },
};

interface PeerParams extends Params {
  /** Endpoint adds per side. */
  adds: number;
}
const FULL: PeerParams = { iperfRuns: 5, iperfSeconds: 4, rrChunks: 4, rrPerChunk: 1000, pingChunks: 4, pingPerChunk: 100, pingInterval: 0.01, pingFastPerChunk: 500, variantRounds: 0, variantPings: 0, endpoints: 0, joins: 3, deadlineMin: 10, adds: 40 };
const QUICK: PeerParams = { ...FULL, iperfRuns: 2, iperfSeconds: 2, rrChunks: 2, rrPerChunk: 300, pingChunks: 2, pingPerChunk: 30, pingFastPerChunk: 100, joins: 1, adds: 6 };

const linkMtu = (netns: string, dev: string): number => (JSON.parse(run("ip", ["-n", netns, "-j", "link", "show", "dev", dev])) as { mtu: number }[])[0].mtu;
const flannelHost = (h: InventoryHost): FlannelHost => ({ name: h.name, netns: h.netns!, stateDir: h.stateDir });

interface Container {
  netns: string;
  ip: string;
}

interface Setup {
  hosts: InventoryHost[];
  agents: LabAgent[];
  prefix: string;
  flannelPrefix: string;
  conn: EtcdConnection;
  etcdEndpoint: string;
  /** flanneld's etcd credentials (the same CA and client certificate as the agents'). */
  tls: { caPem: string; certPem: string; keyPem: string };
  /** Pod CIDR of each bpfnet host, by host name. */
  cidrs: Record<string, string>;
  /** Each flannel host's subnet.env (h1, h2). */
  env: SubnetEnv[];
  paths: [Path, Path];
  /** Per side (bpfnet, flannel): the containers every joining host must reach (h1's, h2's, then each joined host's). */
  answering: [Container[], Container[]];
  describe: string[];
}

/** What host-gw installs by itself, added for bpfnet l3 on the same segment: `cidr` via `via` on `netns`. */
function hostRoute(netns: string, cidr: string, via: string): void {
  run("ip", ["-n", netns, "route", "replace", cidr, "via", via, "dev", "eth0"]);
}

async function setup(ctx: Ctx, mode: Mode, joins: number, log: (s: string) => void): Promise<Setup> {
  const { lab: name, octet: o, flannel: backend } = MODES[mode];
  log(`${mode}: lab ${name} (10.${o}.0.0/16, ${2 + joins} hosts on one underlay bridge), etcd, bpfnet agents and flanneld on h1 and h2`);
  ensureSubnetFree(o, [`${name}-mgmt`, `${name}-ul`]);
  const lab = (ctx.lab = await startTestLab(name, o, "vxlan", 2 + joins));
  // One etcd for both, over mutual TLS, on the lab's management bridge (every host reaches it).
  const etcd = await startEtcd({ tls: true, host: `10.${o}.0.254` });
  ctx.etcd = { connection: etcd.connection, pid: etcd.pid, stop: () => etcd.stop(), halt: () => etcd.stop(), restart: () => Promise.reject(new Error("not restartable")) };
  const conn = etcd.connection;
  const tls = { caPem: conn.caPem!, certPem: conn.certPem!, keyPem: conn.keyPem! };
  const prefix = `/bpfnet/${name}`;
  const flannelPrefix = `/flannel/${name}`;
  const hosts = lab.inventory.hosts;
  const cidrs = await seedNetwork(conn, { prefix, mode, clusterCidr: `10.${o}.128.0/17` }, ["h1", "h2"]);
  await withEtcd(conn, async (c) => void (await c.put(`${flannelPrefix}/config`).value(flannelNetworkConfig(`10.${o}.64.0/18`, backend, FLANNEL_VXLAN_PORT))));
  for (const [i, h] of hosts.entries()) addFlannelUnderlay(flannelHost(h), `${name}-ul`, `${name}-f${i + 1}`, `10.${o}.2.${i + 1}`, linkMtu(h.netns!, h.underlayInterface));
  const agents = hosts.slice(0, 2).map((h) => new LabAgent(h, { prefix, etcd: conn, leaseTtlSeconds: 10, resyncSeconds: 3600 }));
  ctx.agents.push(...agents);
  const etcdEndpoint = conn.endpoints[0];
  const [, , env1, env2] = await Promise.all([
    ...agents.map((a) => a.start(60_000)),
    ...hosts.slice(0, 2).map((h) => startFlanneld(ctx.children, flannelHost(h), { endpoint: etcdEndpoint, prefix: flannelPrefix, iface: FLANNEL_UNDERLAY_DEVICE, timeoutMs: 30_000, tls })),
  ]);
  const env = [env1, env2] as SubnetEnv[];
  for (const h of hosts.slice(0, 2)) ctx.maps.push(openDatapathMaps(h.bpffsDir));
  if (mode === "l3") {
    hostRoute(hosts[0].netns!, cidrs.h2, hosts[1].underlayIp);
    hostRoute(hosts[1].netns!, cidrs.h1, hosts[0].underlayIp);
  }
  const c = mode === "vxlan" ? "v" : "l";
  const bp = await Promise.all(agents.map(async (a, i) => (await a.client.addEndpoint({ id: `bpe-${c}${i + 1}a`, netns: addNs(ctx, `bdpcp${c}${i + 1}a`) })).endpoint));
  const fl: string[] = [];
  for (const [i, h] of hosts.slice(0, 2).entries()) {
    const ns = `bdpcp${c}${i + 1}f`;
    addNs(ctx, ns);
    fl.push(await flannelCni(ctx.children, flannelHost(h), "ADD", `bpe-${c}${i + 1}f`, ns, env[i]));
  }
  const s = (await agents[0].status()).agent;
  return {
    hosts,
    agents,
    prefix,
    flannelPrefix,
    conn,
    etcdEndpoint,
    tls,
    cidrs,
    env,
    paths: [
      { name: "bpfnet", client: `bdpcp${c}1a`, server: `bdpcp${c}2a`, serverIp: bp[1].ip },
      { name: "baseline", client: `bdpcp${c}1f`, server: `bdpcp${c}2f`, serverIp: fl[1] },
    ],
    answering: [
      [
        { netns: `bdpcp${c}1a`, ip: bp[0].ip },
        { netns: `bdpcp${c}2a`, ip: bp[1].ip },
      ],
      [
        { netns: `bdpcp${c}1f`, ip: fl[0] },
        { netns: `bdpcp${c}2f`, ip: fl[1] },
      ],
    ],
    describe: [
      mode === "vxlan"
        ? `bpfnet: agents in vxlan mode (VNI ${s.vni}, port 8472), endpoints through the agent API, bpf_lxc → bpfnet_vxlan → bpf_overlay; MTU ${bp[0].mtu}; underlay eth0`
        : `bpfnet: agents in l3 mode, endpoints through the agent API, bpf_lxc → bpf_redirect_neigh out of eth0 → peer's eth0, bpf_netdev → container; pod CIDR routes via the peer's underlay address (what host-gw installs); MTU ${bp[0].mtu}`,
      `flannel ${FLANNEL_VERSION} (${backend}${backend === "vxlan" ? `, port ${FLANNEL_VXLAN_PORT}` : ""}, etcd backend on the same etcd over mutual TLS, prefix ${flannelPrefix}), containers by the reference bridge + host-local plugins ${CNI_PLUGINS_VERSION} as flannel's CNI plugin configures them (cni0 gateway, subnet.env's subnet, MTU ${env[0].mtu}); underlay fl0, a second port on the same bridge`,
    ],
  };
}

/** `add` run while a prober in `ns` sends to `targetIp` every ms: ms from the add's start to the first answer. */
async function addToFirstAnswer(ctx: Ctx, ns: string, targetIp: string, add: () => Promise<unknown>): Promise<number | undefined> {
  addNs(ctx, ns);
  const prober = await startProber(ctx.children, ns, targetIp, ECHO_PORT, 15_000);
  const t0 = now();
  await add();
  const r = await prober.result;
  return r.t === undefined ? undefined : msSince(t0, r.t);
}

/** Endpoint add → first answered packet from the side's container on h2, sides alternating. */
async function measureAdds(ctx: Ctx, s: Setup, mode: Mode, n: number, out: [PeerSide, PeerSide], log: (s: string) => void): Promise<void> {
  const c = mode === "vxlan" ? "v" : "l";
  const h1 = flannelHost(s.hosts[0]);
  for (let i = 0; i < n; i++) {
    for (const side of i % 2 === 0 ? [0, 1] : [1, 0]) {
      const ns = `bdpcp${c}e${side}${i}`;
      const id = `bpe-${c}e${side}${i}`;
      const ms =
        side === 0
          ? await addToFirstAnswer(ctx, ns, s.paths[0].serverIp, () => s.agents[0].client.addEndpoint({ id, netns: `/run/netns/${ns}` }))
          : await addToFirstAnswer(ctx, ns, s.paths[1].serverIp, () => flannelCni(ctx.children, h1, "ADD", id, ns, s.env[0]));
      if (ms === undefined) out[side].addFailures++;
      else out[side].add.push(ms);
      if (side === 0) await s.agents[0].client.deleteEndpoint(id);
      else await flannelCni(ctx.children, h1, "DEL", id, ns, s.env[0]);
      delNs(ctx, ns);
    }
  }
  log(`  endpoint add → first answer p50: bpfnet ${fmt(median(out[0].add))} ms, flannel ${fmt(median(out[1].add))} ms (${n} each)`);
}

/**
 * Host `h` joins: its daemon starts and a container is added; the clock stops when that
 * container's datagrams are answered by the side's containers on every host already there.
 * Then the new container answers too (for the next join).
 */
async function measureJoin(ctx: Ctx, s: Setup, mode: Mode, h: InventoryHost, side: 0 | 1, out: PeerSide, log: (s: string) => void): Promise<void> {
  const c = mode === "vxlan" ? "v" : "l";
  const ns = `bdpcp${c}${h.name.slice(1)}${side === 0 ? "a" : "f"}`;
  addNs(ctx, ns);
  const there = [...s.answering[side]];
  const probers = await Promise.all(there.map((t) => startProber(ctx.children, ns, t.ip, ECHO_PORT, 60_000)));
  const t0 = now();
  let ip: string;
  if (side === 0) {
    // What HostAllocation does for a new host, then its agent starts and adds the endpoint.
    const a = await withEtcd(s.conn, (e) => allocate(e, { prefix: s.prefix, host: h.name, allocationId: `alloc-${h.name}` }));
    if (mode === "l3") {
      for (const [peer, cidr] of Object.entries(s.cidrs)) {
        const p = s.hosts.find((x) => x.name === peer)!;
        hostRoute(p.netns!, a.podCidr, h.underlayIp);
        hostRoute(h.netns!, cidr, p.underlayIp);
      }
    }
    s.cidrs[h.name] = a.podCidr;
    const agent = new LabAgent(h, { prefix: s.prefix, etcd: s.conn, leaseTtlSeconds: 10, resyncSeconds: 3600 });
    ctx.agents.push(agent);
    await agent.start(60_000);
    ip = (await agent.client.addEndpoint({ id: `bpe-${c}${h.name}a`, netns: `/run/netns/${ns}` })).endpoint.ip;
  } else {
    const env = await startFlanneld(ctx.children, flannelHost(h), { endpoint: s.etcdEndpoint, prefix: s.flannelPrefix, iface: FLANNEL_UNDERLAY_DEVICE, timeoutMs: 60_000, tls: s.tls });
    ip = await flannelCni(ctx.children, flannelHost(h), "ADD", `bpe-${c}${h.name}f`, ns, env);
  }
  const ready = msSince(t0);
  const got = await Promise.all(probers.map((p) => p.result));
  if (got.some((g) => g.t === undefined)) out.joinFailures++;
  else {
    const all = Math.max(...got.map((g) => msSince(t0, g.t!)));
    out.join.push(all);
    out.joinAfterReady.push(Math.max(0, all - ready));
  }
  await startEchoServer(ctx.children, ns, ECHO_PORT);
  s.answering[side].push({ netns: ns, ip });
  log(`  ${side === 0 ? "bpfnet " : "flannel"} join of ${h.name}: daemon and container ready after ${fmt(ready, 0)} ms, ${there.length} hosts answer after ${fmt(out.join.at(-1), 0)} ms`);
}

const emptySide = (): PeerSide => ({ throughput: [], rr: [], ping: [], pingFast: [], add: [], addFailures: 0, join: [], joinAfterReady: [], joinFailures: 0 });

interface ModeRun {
  mode: Mode;
  bpfnet: PeerSide;
  flannel: PeerSide;
  describe: string[];
  checks: string[];
  seconds: number;
  cpu: string;
}

async function runMode(ctx: Ctx, mode: Mode, P: PeerParams, log: (s: string) => void): Promise<ModeRun> {
  const t0 = Date.now();
  const cpu0 = cpuTimes();
  const s = await setup(ctx, mode, P.joins, log);
  log(`${mode}: measuring (bpfnet and flannel interleaved)`);
  const m = await measurePaths(ctx, s.paths, P, log);
  const sides: [PeerSide, PeerSide] = [emptySide(), emptySide()];
  m.res.forEach((r, i) => Object.assign(sides[i], { throughput: r.throughput, rr: r.rr, ping: r.ping, pingFast: r.pingFast }));
  // h1's containers answer too: a joining host must reach every host (h2's already do).
  for (const side of s.answering) await startEchoServer(ctx.children, side[0].netns, ECHO_PORT);
  log(`${mode}: endpoint add → first answered packet (${P.adds} per side, alternating)`);
  await measureAdds(ctx, s, mode, P.adds, sides, log);
  log(`${mode}: ${P.joins} hosts join, one at a time (each joins both sides, which side first alternates)`);
  for (const [j, h] of s.hosts.slice(2).entries()) {
    for (const side of j % 2 === 0 ? ([0, 1] as const) : ([1, 0] as const)) await measureJoin(ctx, s, mode, h, side, sides[side], log);
  }
  const checks = [
    `bpfnet's counters (all programs, h1 and h2): +${m.res[0].bpfPackets.toLocaleString("en")} packets during the bpfnet runs, +${m.res[1].bpfPackets} during the flannel runs`,
    `ping loss: bpfnet ${m.res[0].pingLost}, flannel ${m.res[1].pingLost}`,
    `flannel's subnets: ${s.env.map((e, i) => `h${i + 1} ${e.subnet}`).join(", ")}; bpfnet's pod CIDRs: h1 ${s.cidrs.h1}, h2 ${s.cidrs.h2}`,
  ];
  if (m.res[0].bpfPackets === 0n) throw new Error("bpfnet's counters did not move while the bpfnet path carried traffic");
  return { mode, bpfnet: sides[0], flannel: sides[1], describe: s.describe, checks, seconds: (Date.now() - t0) / 1000, cpu: cpuSince(cpu0) };
}

function render(r: ModeRun, info: { date: string; loadBefore: string; loadAfter: string; command: string; quick: boolean }, P: PeerParams): string {
  const title = r.mode === "vxlan" ? "bpfnet vxlan vs flannel vxlan" : "bpfnet l3 vs flannel host-gw";
  return [
    `#### ${title}`,
    "",
    `Run ${info.date}${info.quick ? " (**--quick**)" : ""}: kernel ${os.release()}, ${os.cpus().length} CPUs, load average before ${info.loadBefore}, after ${info.loadAfter}; ${fmt(r.seconds, 0)} s for this mode, ${r.cpu}.`,
    "",
    "```",
    info.command,
    "```",
    "",
    ...r.describe.map((d) => `- ${d}`),
    `- iperf3 ${P.iperfRuns} × ${P.iperfSeconds} s, request/response ${P.rrChunks} × ${P.rrPerChunk} of 64 B, ping ${P.pingChunks} × (${P.pingPerChunk} every 10 ms + ${P.pingFastPerChunk} back to back), sides alternating run by run; endpoint adds ${P.adds} per side alternating; ${P.joins} hosts join (h3…), each on both sides, alternating which first`,
    "",
    peersTable(r.bpfnet, r.flannel),
    "",
    "Checks made during the run:",
    "",
    ...r.checks.map((c) => `- ${c}`),
    "",
  ].join("\n");
}

function parseArgs(argv: string[]): { modes: Mode[]; quick: boolean; write: boolean } {
  let modes: Mode[] = ["vxlan", "l3"];
  let quick = false;
  let write: boolean | undefined;
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === "--quick") quick = true;
    else if (k === "--write") write = true;
    else if (k === "--no-write") write = false;
    else if (k === "--mode" || k.startsWith("--mode=")) {
      const v = k.includes("=") ? k.split("=")[1] : argv[++i];
      if (v === "all") modes = ["vxlan", "l3"];
      else if (v === "vxlan" || v === "l3") modes = [v];
      else throw new Error(`--mode must be vxlan, l3 or all, got ${v}`);
    } else throw new Error(`unknown argument ${k} (usage: bench/peers.ts [--mode vxlan|l3|all] [--quick] [--write|--no-write])`);
  }
  return { modes, quick, write: write ?? !quick };
}

/** What a mode's lab left behind after cleanup: namespaces, root links, flanneld processes (should be nothing). */
function leftovers(lab: string): string[] {
  const netns = tryRun("ip", ["netns", "list"]).stdout.split("\n").map((l) => l.split(" ")[0]).filter((n) => n.startsWith(`${lab}-`) || n.startsWith("bdpcp"));
  const links = tryRun("ip", ["-o", "link", "show"]).stdout.split("\n").map((l) => l.split(": ")[1]?.split("@")[0] ?? "").filter((n) => n.startsWith(`${lab}-`));
  const procs = tryRun("ps", ["-eo", "pid=,args="]).stdout.split("\n").filter((l) => l.includes(FLANNELD));
  return [...netns.map((n) => `netns ${n}`), ...links.map((l) => `link ${l}`), ...procs.map((p) => `process ${p.trim()}`)];
}

let active: Ctx | undefined;
async function cleanupActive(): Promise<void> {
  const ctx = active;
  active = undefined;
  if (ctx) await cleanup(ctx);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const P = args.quick ? QUICK : FULL;
  if (process.getuid?.() !== 0) throw new Error("bench/peers.ts needs root (network namespaces, BPF)");
  checkBuilt();
  checkFlannelTools();
  const log = (s: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${s}`);
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.once(sig, () => void cleanupActive().finally(() => process.exit(130)));
  const watchdog = setTimeout(() => {
    console.error(`bench/peers.ts exceeded ${P.deadlineMin} minutes: cleaning up`);
    void cleanupActive().finally(() => process.exit(3));
  }, P.deadlineMin * 60_000);
  watchdog.unref();
  const info = {
    date: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    loadBefore: loadavg(),
    loadAfter: "",
    command: `npx ts-node bench/peers.ts${process.argv.length > 2 ? " " + process.argv.slice(2).join(" ") : ""}`,
    quick: args.quick,
  };
  const results: ModeRun[] = [];
  const leaks: string[] = [];
  for (const mode of args.modes) {
    const ctx = (active = newCtx());
    try {
      results.push(await runMode(ctx, mode, P, log));
    } finally {
      log(`${mode}: cleaning up`);
      await cleanupActive();
      leaks.push(...leftovers(MODES[mode].lab).map((l) => `${mode}: ${l}`));
    }
    if (!leaks.some((l) => l.startsWith(`${mode}:`))) results.at(-1)?.checks.push(`after cleanup: ${MODES[mode].lab}'s namespaces, root links (bridges, fl0 ends) and every flanneld are gone`);
  }
  info.loadAfter = loadavg();
  const blocks = results.map((r) => ({ mode: r.mode, text: render(r, info, P) }));
  for (const b of blocks) console.log(`\n${b.text}`);
  if (args.write) {
    writeDoc(DOC, blocks, "bench/peers.ts");
    console.log(`written to ${path.relative(process.cwd(), DOC)}`);
  }
  failOnMissedGoals([...results.flatMap((r) => peersMissed(r.mode, r.bpfnet, r.flannel)), ...leaks.map((l) => `left behind: ${l}`)]);
}

if (require.main === module) runBenchMain(main, cleanupActive);
