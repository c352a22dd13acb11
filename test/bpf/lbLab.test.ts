/**
 * The service datapath on real hosts (lab tlb1, vxlan, 2 hosts, real agents and BPF), with h1's
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
import { cgroupV2Root, LbProto, openLbMaps, socketLbLinks } from "../../bpf";
import type { LbMaps, SocketLbLink } from "../../bpf";
import { startTestLab, TestLab } from "../support/lab";
import { cleanupAll } from "../support/cleanup";
import { LabEtcd, startEtcdOn } from "../agent/support/etcd";
import { addContainerNetns, checkBuilt, CLI, LabAgent, removeContainers, seedNetwork } from "../agent/support/agents";

const LAB = "tlb1";
const OCTET = 100;
const PREFIX = `/bpfnet/${LAB}`;
const VIP = `10.${OCTET}.96.10`;
const NS = { client: "tlbc1c", b1: "tlbc1b", b2: "tlbc2b" };
const OUTSIDER = "tlbcx"; // no host's, no container: owns the VIP address itself

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
  const [ip, count] = process.argv.slice(1);
  const out = { counts: {}, peers: {}, errors: 0, udp: "", udpFrom: "" };
  const one = () => new Promise((res) => {
    const s = net.connect({ host: ip, port: 80 }); let buf = "";
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

let lab: TestLab | undefined;
let etcd: LabEtcd | undefined;
let agents: LabAgent[] = [];
let lb: LbMaps | undefined;
const children: ChildProcess[] = [];
const ips: Record<string, string> = {};
/** h1's links as the agent attached them. */
let h1Links: SocketLbLink[] = [];
let h2Links: SocketLbLink[] = [];

const host = (i: number) => lab!.inventory.hosts[i];

function client(netns: string, count: number, ip = VIP): ClientResult {
  const r = spawnSync("ip", ["netns", "exec", netns, process.execPath, "-e", CLIENT, ip, String(count)], { encoding: "utf8", timeout: 120_000 });
  if (r.status !== 0) throw new Error(`${netns}: exit ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").pop()!) as ClientResult;
}

async function startServer(netns: string, name: string, tport: number, uport: number, bind?: string): Promise<void> {
  const child = spawn("ip", ["netns", "exec", netns, process.execPath, "-e", SERVER, name, String(tport), String(uport), ...(bind ? [bind] : [])], { stdio: ["ignore", "pipe", "inherit"] });
  children.push(child);
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

beforeAll(async () => {
  checkBuilt();
  lab = await startTestLab(LAB, OCTET, "vxlan", 2);
  etcd = await startEtcdOn(`10.${OCTET}.0.254`);
  await seedNetwork(etcd.connection, { prefix: PREFIX, mode: "vxlan", clusterCidr: `10.${OCTET}.128.0/17`, vni: 10 }, lab.inventory.hosts.map((h) => h.name));
  agents = lab.inventory.hosts.map((h) => new LabAgent(h, { prefix: PREFIX, etcd: etcd!.connection }));
  await Promise.all(agents.map((a) => a.start()));
  for (const [name, ns] of Object.entries(NS)) {
    addContainerNetns(ns);
    const a = agents[name === "b2" ? 1 : 0];
    ips[name] = (await a.client.addEndpoint({ id: name, netns: `/run/netns/${ns}` })).endpoint.ip;
  }
  await startServer(NS.b1, "b1", 8080, 5353);
  await startServer(NS.b2, "b2", 8080, 5353);
  addContainerNetns(OUTSIDER);
  execFileSync("ip", ["netns", "exec", OUTSIDER, "ip", "link", "set", "lo", "up"]);
  execFileSync("ip", ["netns", "exec", OUTSIDER, "ip", "addr", "add", `${VIP}/32`, "dev", "lo"]);
  await startServer(OUTSIDER, "untranslated", 80, 53, VIP);
}, 180_000);

afterAll(async () => {
  await cleanupAll([
    ...children.map((c) => () => c.kill("SIGKILL")),
    ...agents.map((a) => () => a.stop()),
    () => lb?.close(),
    () => removeContainers([...Object.values(NS), OUTSIDER]),
    () => etcd?.stop(),
    () => lab?.down(),
  ]);
}, 120_000);

test("each agent attached the socket hooks as links pinned in its bpffs; they stay when it stops", async () => {
  h1Links = socketLbLinks(host(0).bpffsDir);
  h2Links = socketLbLinks(host(1).bpffsDir);
  for (const links of [h1Links, h2Links]) {
    expect(links.map((l) => l.hook).sort()).toEqual(["connect4", "getpeername4", "recvmsg4", "sendmsg4"]);
    expect(links.every((l) => l.cgroupId !== 0n)).toBe(true);
  }
  const attached = rootCgroupProgIds();
  for (const l of [...h1Links, ...h2Links]) expect(attached).toContain(l.progId);
  // The test owns h1's service maps from here: no agent reconciles them away.
  await Promise.all(agents.map((a) => a.stop()));
  expect(socketLbLinks(host(0).bpffsDir).map((l) => l.linkId)).toEqual(h1Links.map((l) => l.linkId));

  lb = openLbMaps(host(0).bpffsDir);
  lb.backends.set(1, { addr: ips.b1, port: 8080, proto: LbProto.TCP });
  lb.backends.set(2, { addr: ips.b2, port: 8080, proto: LbProto.TCP });
  lb.backends.set(3, { addr: ips.b2, port: 5353, proto: LbProto.UDP });
  lb.revNat.set(100, { vip: VIP, port: 80 });
  lb.revNat.set(101, { vip: VIP, port: 53 });
  lb.services.set({ vip: VIP, port: 80, proto: LbProto.TCP }, { revNatIndex: 100, backendIds: [1, 2] });
  lb.services.set({ vip: VIP, port: 53, proto: LbProto.UDP }, { revNatIndex: 101, backendIds: [3] });
}, 60_000);

test("a container's connections to VIP:80 reach the backend on its host and the one on the other; UDP answers from the VIP", () => {
  const r = client(NS.client, 40);
  expect(r.errors).toBe(0);
  expect(Object.keys(r.counts).sort()).toEqual(["b1", "b2"]);
  expect(r.counts.b1 + r.counts.b2).toBe(40);
  expect(r.peers).toEqual({ [`${VIP}:80`]: 40 });
  expect({ udp: r.udp, udpFrom: r.udpFrom }).toEqual({ udp: "b2", udpFrom: `${VIP}:53` });
});

test("h1's host namespace reaches the backends through the socket hooks and sees the VIP; another namespace is not translated", () => {
  const r = client(host(0).netns!, 20);
  expect(r.errors).toBe(0);
  expect(Object.keys(r.counts).sort()).toEqual(["b1", "b2"]);
  expect(r.peers).toEqual({ [`${VIP}:80`]: 20 }); // getpeername4
  expect({ udp: r.udp, udpFrom: r.udpFrom }).toEqual({ udp: "b2", udpFrom: `${VIP}:53` }); // recvmsg4
  // The hooks of h1 run for this process too (same root cgroup): its namespace's cookie is not h1's.
  const o = client(OUTSIDER, 5);
  expect(o).toMatchObject({ counts: { untranslated: 5 }, errors: 0, udp: "untranslated", udpFrom: `${VIP}:53` });
  // What recvmsg4/getpeername4 used: (socket, backend) → VIP, written by connect4/sendmsg4.
  expect(lb!.sockNat.entries().some((e) => e.vip === VIP && e.vipPort === 53 && e.addr === ips.b2 && e.port === 5353)).toBe(true);
});

test("an agent start keeps the pinned links; teardown detaches h1's; lab down releases h2's", async () => {
  await agents[0].start();
  const after = socketLbLinks(host(0).bpffsDir);
  expect(after.map((l) => `${l.hook}:${l.linkId}`).sort()).toEqual(h1Links.map((l) => `${l.hook}:${l.linkId}`).sort());
  expect(after.every((l) => l.cgroupId !== 0n)).toBe(true);
  await agents[0].stop();

  const a = agents[0];
  const out = spawnSync("ip", ["netns", "exec", a.netns, process.execPath, CLI, "agent", "teardown", "--config", a.configPath], { encoding: "utf8", timeout: 120_000 });
  expect(out.status).toBe(0);
  expect(socketLbLinks(host(0).bpffsDir)).toEqual([]);
  expect(fs.readdirSync(host(0).bpffsDir).filter((f) => f.startsWith("bpfnet_sock_"))).toEqual([]);
  let attached = rootCgroupProgIds();
  for (const l of h1Links) expect(attached).not.toContain(l.progId);
  for (const l of h2Links) expect(attached).toContain(l.progId);

  lb?.close();
  lb = undefined;
  lab!.down();
  attached = rootCgroupProgIds();
  for (const l of h2Links) expect(attached).not.toContain(l.progId);
}, 120_000);
