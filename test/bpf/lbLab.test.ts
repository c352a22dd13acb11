/**
 * The service datapath on real hosts (labs tlb1 vxlan and tlb2 l3, 2 hosts each, real agents and
 * BPF; the lifecycle checks in tlb1 only), with h1's
 * service maps programmed directly through the typed maps (no control plane: the agents are
 * stopped while the test owns the maps, and the datapath forwards without them):
 * - a container's TCP connections to VIP:80 reach a backend on its own host and one on the other
 *   host (the handshake completes only if replies come back from the VIP); UDP to VIP:53 is
 *   answered from VIP:53;
 * - a process in h1's host namespace reaches the backends through the socket hooks (its
 *   getpeername and recvfrom report the VIP); a process in another namespace that owns the VIP
 *   address is not translated;
 * - the agent attached the hooks as links pinned in h1's bpffs: they survive the agent's stop
 *   and start (same links); teardown detaches them (nothing of h1 on the root cgroup, no pin);
 *   lab down releases h2's.
 * Needs root and dist/ built.
 */
import { ChildProcess, execFileSync, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import { cgroupV2Root, LbProto, openDatapathMaps, openLbMaps, socketLbLinks, Verdict } from "../../bpf";
import type { LbMaps, SocketLbLink } from "../../bpf";
import { startTestLab, TestLab } from "../support/lab";
import type { LabTopology } from "../../lab/topology";
import { cleanupAll } from "../support/cleanup";
import { LabEtcd, startEtcdOn } from "../agent/support/etcd";
import { addContainerNetns, checkBuilt, CLI, LabAgent, removeContainers, seedNetwork } from "../agent/support/agents";

/** The lab of one topology, and what its tests share. */
interface ServiceLab {
  topology: LabTopology;
  name: string;
  octet: number;
  vip: string;
  ns: { client: string; b1: string; b2: string };
  outsider: string;
  lab?: TestLab;
  etcd?: LabEtcd;
  agents: LabAgent[];
  lb?: LbMaps;
  children: ChildProcess[];
  ips: Record<string, string>;
  /** The links as the agents attached them. */
  h1Links: SocketLbLink[];
  h2Links: SocketLbLink[];
}

function serviceLab(topology: LabTopology, name: string, octet: number): ServiceLab {
  const n = name.slice(-1); // container namespaces named per lab: tlbc<n>…
  return {
    topology,
    name,
    octet,
    vip: `10.${octet}.96.10`,
    ns: { client: `tlbc${n}c`, b1: `tlbc${n}b1`, b2: `tlbc${n}b2` },
    outsider: `tlbc${n}x`, // no host's, no container: owns the VIP address itself
    agents: [],
    children: [],
    ips: {},
    h1Links: [],
    h2Links: [],
  };
}

/** A backend: TCP 8080 writes its name and closes; UDP 5353 answers its name. */
const SERVER = `
  const net = require("net"), dgram = require("dgram");
  const [name, tport, uport, host] = process.argv.slice(1);
  let n = 2; const ready = () => --n === 0 && console.log("listening");
  net.createServer((s) => { s.on("error", () => {}); s.end(name + "\\n"); }).listen(Number(tport), host || "0.0.0.0", ready);
  const u = dgram.createSocket("udp4"); u.on("message", (m, r) => u.send(name, r.port, r.address)); u.bind(Number(uport), host || "0.0.0.0", ready);`;

/** count TCP connections and one UDP exchange: {counts: name → n, peers, errors, udp, udpFrom}. */
const CLIENT = `
  const net = require("net"), dgram = require("dgram");
  const [ip, count, port = "80"] = process.argv.slice(1);
  const out = { counts: {}, peers: {}, errors: 0, udp: "", udpFrom: "" };
  const one = () => new Promise((res) => {
    const s = net.connect({ host: ip, port: Number(port) }); let buf = "";
    const t = setTimeout(() => { out.errors++; s.destroy(); res(); }, 3000);
    s.on("connect", () => { const p = s.remoteAddress + ":" + s.remotePort; out.peers[p] = (out.peers[p] || 0) + 1; });
    s.on("data", (d) => (buf += d));
    s.on("end", () => { const n = buf.trim(); out.counts[n] = (out.counts[n] || 0) + 1; clearTimeout(t); res(); });
    s.on("error", () => { out.errors++; clearTimeout(t); res(); });
  });
  (async () => {
    for (let i = 0; i < Number(count); i++) await one();
    const u = dgram.createSocket("udp4");
    const t = setTimeout(() => { console.log(JSON.stringify(out)); process.exit(0); }, 3000);
    u.on("message", (m, r) => { out.udp = String(m); out.udpFrom = r.address + ":" + r.port; clearTimeout(t); console.log(JSON.stringify(out)); process.exit(0); });
    u.send("q", 53, ip);
  })();`;

interface ClientResult {
  counts: Record<string, number>;
  peers: Record<string, number>;
  errors: number;
  udp: string;
  udpFrom: string;
}

function client(netns: string, count: number, ip: string, port = 80): ClientResult {
  const r = spawnSync("ip", ["netns", "exec", netns, process.execPath, "-e", CLIENT, ip, String(count), String(port)], { encoding: "utf8", timeout: 120_000 });
  if (r.status !== 0) throw new Error(`${netns}: exit ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").pop()!) as ClientResult;
}

async function startServer(l: ServiceLab, netns: string, name: string, tport: number, uport: number, bind?: string): Promise<void> {
  const child = spawn("ip", ["netns", "exec", netns, process.execPath, "-e", SERVER, name, String(tport), String(uport), ...(bind ? [bind] : [])], { stdio: ["ignore", "pipe", "inherit"] });
  l.children.push(child);
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on("data", (d) => String(d).includes("listening") && resolve());
    child.on("exit", (code) => reject(new Error(`server ${name} exited ${code}`)));
  });
}

/** Program ids attached to the root cgroup (all hook types), as the kernel lists them. */
function rootCgroupProgIds(): number[] {
  const out = execFileSync("bpftool", ["-j", "cgroup", "show", cgroupV2Root()], { encoding: "utf8" });
  return (JSON.parse(out.trim() || "[]") as { id: number }[]).map((p) => p.id);
}

/** Lab, etcd, agents, three containers (client and b1 on h1, b2 on h2) with servers, and the outsider. */
async function setUp(l: ServiceLab): Promise<void> {
  checkBuilt();
  l.lab = await startTestLab(l.name, l.octet, l.topology, 2);
  l.etcd = await startEtcdOn(`10.${l.octet}.0.254`);
  const prefix = `/bpfnet/${l.name}`;
  const cidrs = await seedNetwork(l.etcd.connection, { prefix, mode: l.topology, clusterCidr: `10.${l.octet}.128.0/17`, vni: 10 }, l.lab.inventory.hosts.map((h) => h.name));
  if (l.topology === "l3") {
    for (const h of l.lab.inventory.hosts) execFileSync("ip", ["-n", l.lab.inventory.router!.netns!, "route", "add", cidrs[h.name], "via", h.underlayIp]);
  }
  l.agents = l.lab.inventory.hosts.map((h) => new LabAgent(h, { prefix, etcd: l.etcd!.connection }));
  await Promise.all(l.agents.map((a) => a.start()));
  for (const [name, ns] of Object.entries(l.ns)) {
    addContainerNetns(ns);
    const a = l.agents[name === "b2" ? 1 : 0];
    l.ips[name] = (await a.client.addEndpoint({ id: name, netns: `/run/netns/${ns}` })).endpoint.ip;
  }
  await startServer(l, l.ns.b1, "b1", 8080, 5353);
  await startServer(l, l.ns.b2, "b2", 8080, 5353);
  addContainerNetns(l.outsider);
  execFileSync("ip", ["netns", "exec", l.outsider, "ip", "link", "set", "lo", "up"]);
  execFileSync("ip", ["netns", "exec", l.outsider, "ip", "addr", "add", `${l.vip}/32`, "dev", "lo"]);
  await startServer(l, l.outsider, "untranslated", 80, 53, l.vip);
}

async function tearDown(l: ServiceLab): Promise<void> {
  await cleanupAll([
    ...l.children.map((c) => () => c.kill("SIGKILL")),
    ...l.agents.map((a) => () => a.stop()),
    () => l.lb?.close(),
    () => removeContainers([...Object.values(l.ns), l.outsider]),
    () => l.etcd?.stop(),
    () => l.lab?.down(),
  ]);
}

/** Stops the agents (the test owns h1's service maps from here: nothing reconciles them away) and programs h1's. */
async function programH1(l: ServiceLab): Promise<void> {
  await Promise.all(l.agents.map((a) => a.stop()));
  const lb = (l.lb = openLbMaps(l.lab!.inventory.hosts[0].bpffsDir));
  lb.backends.set(1, { addr: l.ips.b1, port: 8080, proto: LbProto.TCP });
  lb.backends.set(2, { addr: l.ips.b2, port: 8080, proto: LbProto.TCP });
  lb.backends.set(3, { addr: l.ips.b2, port: 5353, proto: LbProto.UDP });
  lb.revNat.set(100, { vip: l.vip, port: 80 });
  lb.revNat.set(101, { vip: l.vip, port: 53 });
  lb.services.set({ vip: l.vip, port: 80, proto: LbProto.TCP }, { revNatIndex: 100, backendIds: [1, 2] });
  lb.services.set({ vip: l.vip, port: 53, proto: LbProto.UDP }, { revNatIndex: 101, backendIds: [3] });
  lb.revNat.set(102, { vip: l.vip, port: 81 });
  lb.services.set({ vip: l.vip, port: 81, proto: LbProto.TCP }, { revNatIndex: 102, backendIds: [1] }); // b1 only
}

function trafficTests(l: ServiceLab): void {
  test("a container's connections to VIP:80 reach the backend on its host and the one on the other; UDP answers from the VIP", () => {
    const peerDelivered = () => {
      const maps = openDatapathMaps(l.lab!.inventory.hosts[0].bpffsDir);
      try {
        return maps.metrics.entries().filter((e) => e.reason === Verdict.PEER).reduce((n, e) => n + e.packets, 0n);
      } finally {
        maps.close();
      }
    };
    const before = peerDelivered();
    const r = client(l.ns.client, 40, l.vip);
    // l3: b2's answers arrive on h1's underlay device, where bpf_netdev delivers (and un-NATs) them.
    if (l.topology === "l3") expect(peerDelivered() - before).toBeGreaterThanOrEqual(BigInt(r.counts.b2 ?? 0));
    expect(r.errors).toBe(0);
    expect(Object.keys(r.counts).sort()).toEqual(["b1", "b2"]);
    expect(r.counts.b1 + r.counts.b2).toBe(40);
    expect(r.peers).toEqual({ [`${l.vip}:80`]: 40 });
    expect({ udp: r.udp, udpFrom: r.udpFrom }).toEqual({ udp: "b2", udpFrom: `${l.vip}:53` });
  });

  test("hairpin: b1 connecting to a VIP whose only backend is b1 reaches itself, and sees the VIP", () => {
    const r = client(l.ns.b1, 5, l.vip, 81);
    expect({ counts: r.counts, errors: r.errors, peers: r.peers }).toEqual({ counts: { b1: 5 }, errors: 0, peers: { [`${l.vip}:81`]: 5 } });
  });

  test("h1's host namespace reaches the backends through the socket hooks and sees the VIP; another namespace is not translated", () => {
    const r = client(l.lab!.inventory.hosts[0].netns!, 20, l.vip);
    expect(r.errors).toBe(0);
    expect(Object.keys(r.counts).sort()).toEqual(["b1", "b2"]);
    expect(r.peers).toEqual({ [`${l.vip}:80`]: 20 }); // getpeername4
    expect({ udp: r.udp, udpFrom: r.udpFrom }).toEqual({ udp: "b2", udpFrom: `${l.vip}:53` }); // recvmsg4
    // The hooks of h1 run for this process too (same root cgroup): its namespace's cookie is not h1's.
    const o = client(l.outsider, 5, l.vip);
    expect(o).toMatchObject({ counts: { untranslated: 5 }, errors: 0, udp: "untranslated", udpFrom: `${l.vip}:53` });
    // What recvmsg4/getpeername4 used: (socket, backend) → VIP, written by connect4/sendmsg4.
    expect(l.lb!.sockNat.entries().some((e) => e.vip === l.vip && e.vipPort === 53 && e.addr === l.ips.b2 && e.port === 5353)).toBe(true);
  });
}

describe("vxlan (lab tlb1)", () => {
  const l = serviceLab("vxlan", "tlb1", 100);
  beforeAll(() => setUp(l), 180_000);
  afterAll(() => tearDown(l), 120_000);
  const host = (i: number) => l.lab!.inventory.hosts[i];

  test("each agent attached the socket hooks as links pinned in its bpffs; they stay when it stops", async () => {
    l.h1Links = socketLbLinks(host(0).bpffsDir);
    l.h2Links = socketLbLinks(host(1).bpffsDir);
    for (const links of [l.h1Links, l.h2Links]) {
      expect(links.map((k) => k.hook).sort()).toEqual(["connect4", "getpeername4", "recvmsg4", "sendmsg4"]);
      expect(links.every((k) => k.cgroupId !== 0n)).toBe(true);
    }
    const attached = rootCgroupProgIds();
    for (const k of [...l.h1Links, ...l.h2Links]) expect(attached).toContain(k.progId);
    await programH1(l);
    expect(socketLbLinks(host(0).bpffsDir).map((k) => k.linkId)).toEqual(l.h1Links.map((k) => k.linkId));
  }, 60_000);

  trafficTests(l);

  test("an agent start keeps the pinned links; teardown detaches h1's; lab down releases h2's", async () => {
    await l.agents[0].start();
    const after = socketLbLinks(host(0).bpffsDir);
    expect(after.map((k) => `${k.hook}:${k.linkId}`).sort()).toEqual(l.h1Links.map((k) => `${k.hook}:${k.linkId}`).sort());
    expect(after.every((k) => k.cgroupId !== 0n)).toBe(true);
    await l.agents[0].stop();

    const a = l.agents[0];
    const out = spawnSync("ip", ["netns", "exec", a.netns, process.execPath, CLI, "agent", "teardown", "--config", a.configPath], { encoding: "utf8", timeout: 120_000 });
    expect(out.status).toBe(0);
    expect(socketLbLinks(host(0).bpffsDir)).toEqual([]);
    expect(fs.readdirSync(host(0).bpffsDir).filter((f) => f.startsWith("bpfnet_sock_"))).toEqual([]);
    let attached = rootCgroupProgIds();
    for (const k of l.h1Links) expect(attached).not.toContain(k.progId);
    for (const k of l.h2Links) expect(attached).toContain(k.progId);

    l.lb?.close();
    l.lb = undefined;
    l.lab!.down();
    attached = rootCgroupProgIds();
    for (const k of l.h2Links) expect(attached).not.toContain(k.progId);
  }, 120_000);
});

describe("l3 (lab tlb2): the fast path's delivery (bpf_netdev) translates replies too", () => {
  const l = serviceLab("l3", "tlb2", 101);
  beforeAll(async () => {
    await setUp(l);
    await programH1(l);
  }, 180_000);
  afterAll(() => tearDown(l), 120_000);

  trafficTests(l);
});
