/**
 * The socket-level service hooks (bpf_sock.o on the cgroup-v2 root, bpf/socketLb.ts) with real
 * sockets in two network namespaces made for the test: "host" (bftls1, the namespace whose cookie
 * the hooks act in) and "other" (bftls2). In host, connect/sendto to VIP:port reach the backend
 * and getpeername/recvfrom report the VIP; in other the same VIP is a plain local address and is
 * not translated. Attaching again keeps the links; detaching leaves nothing on the root cgroup.
 */
import { execFileSync } from "child_process";
import { attachSocketLb, cgroupV2Root, detachSocketLb, LbProto, LbServiceFlags, openLbMaps, socketLbLinks, socketLbPin } from "../../bpf";
import type { LbMaps } from "../../bpf";
import { loadTestDatapath, TestDatapath } from "./support/datapath";
import { ipQuiet } from "./support/netns";
import { nativeAddonPath } from "../../bpf/paths";

const HOST_NS = "bftls1";
const OTHER_NS = "bftls2";
const VIP = "10.96.7.10";
const BACKEND = "10.250.7.1";
const EMPTY_VIP = "10.96.7.11";
const PAIR_VIP = "10.96.7.12"; // two backends: BACKEND:8080 ("backend") and BACKEND:8081 ("backend2")

let t: TestDatapath | undefined;
let lb: LbMaps;
const servers: { kill(): void }[] = [];

function inNs(ns: string, cmd: string[], input?: string): string {
  return execFileSync("ip", ["netns", "exec", ns, ...cmd], { encoding: "utf8", input, timeout: 20000, stdio: ["pipe", "pipe", "pipe"] });
}

/** SO_NETNS_COOKIE of a namespace, read by the addon from a process inside it. */
function cookieOf(ns: string): bigint {
  const js = `process.stdout.write(String(require(${JSON.stringify(nativeAddonPath())}).netnsCookie()))`;
  return BigInt(inNs(ns, [process.execPath, "-e", js]));
}

/** Servers answering with a fixed word: TCP and UDP, on one address. */
const SERVER = `
import socket, sys, threading
addr, word = sys.argv[1], sys.argv[2].encode()
def tcp(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((addr, port)); s.listen(64)
    while True:
        c, _ = s.accept(); c.recv(100); c.sendall(word); c.close()
def udp(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((addr, port))
    while True:
        d, peer = s.recvfrom(100); s.sendto(word, peer)
for f, p in ((tcp, int(sys.argv[3])), (udp, int(sys.argv[4]))):
    threading.Thread(target=f, args=(p,), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
`;

/** One TCP exchange and one UDP exchange to addr: what came back and from where. */
const CLIENT = `
import json, socket, sys
addr, tport, uport = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
out = {}
try:
    s = socket.create_connection((addr, tport), timeout=5); s.sendall(b"hi")
    out["tcp"] = s.recv(100).decode(); out["peer"] = "%s:%d" % s.getpeername(); s.close()
except OSError as e:
    out["tcpError"] = e.errno
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(5)
try:
    u.sendto(b"q", (addr, uport)); d, src = u.recvfrom(100)
    out["udp"] = d.decode(); out["udpFrom"] = "%s:%d" % src
except OSError as e:
    out["udpError"] = e.errno
print(json.dumps(out))
`;

/** n TCP connections to addr:port; the words that came back. */
const MANY = `
import json, socket, sys
addr, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
words = []
for _ in range(n):
    s = socket.create_connection((addr, port), timeout=5); s.sendall(b"hi"); words.append(s.recv(100).decode()); s.close()
print(json.dumps(words))
`;

function words(ns: string, addr: string, port: number, n: number): string[] {
  return JSON.parse(inNs(ns, ["python3", "-c", MANY, addr, String(port), String(n)]));
}

function startServer(ns: string, addr: string, word: string, tport: number, uport: number): Promise<void> {
  const { spawn } = require("child_process") as typeof import("child_process");
  const p = spawn("ip", ["netns", "exec", ns, "python3", "-c", SERVER, addr, word, String(tport), String(uport)], { stdio: ["ignore", "pipe", "inherit"] });
  servers.push({ kill: () => p.kill("SIGKILL") });
  return new Promise((resolve, reject) => {
    p.stdout.once("data", () => resolve());
    p.once("exit", (code) => reject(new Error(`server in ${ns} exited ${code}`)));
  });
}

function client(ns: string, addr: string, tport: number, uport: number): Record<string, string | number> {
  return JSON.parse(inNs(ns, ["python3", "-c", CLIENT, addr, String(tport), String(uport)]));
}

/** Program ids attached to the root cgroup for one hook type, as the kernel lists them. */
function rootCgroupProgIds(): number[] {
  const out = execFileSync("bpftool", ["-j", "cgroup", "show", cgroupV2Root()], { encoding: "utf8" });
  return (JSON.parse(out.trim() || "[]") as { id: number }[]).map((p) => p.id);
}

beforeAll(async () => {
  for (const ns of [HOST_NS, OTHER_NS]) {
    ipQuiet("netns", "del", ns);
    execFileSync("ip", ["netns", "add", ns]);
    inNs(ns, ["ip", "link", "set", "lo", "up"]);
  }
  // The hooks rewrite before routing: host needs no route to the VIP, only one to the backend.
  inNs(HOST_NS, ["ip", "addr", "add", `${BACKEND}/32`, "dev", "lo"]);
  inNs(OTHER_NS, ["ip", "addr", "add", `${VIP}/32`, "dev", "lo"]);
  await startServer(HOST_NS, BACKEND, "backend", 8080, 5353);
  await startServer(OTHER_NS, VIP, "untranslated", 80, 53);
  await startServer(HOST_NS, BACKEND, "backend2", 8081, 5354);
  t = loadTestDatapath();
  lb = openLbMaps(t.bpffs.dir);
  lb.backends.set(1, { addr: BACKEND, port: 8080, proto: LbProto.TCP });
  lb.backends.set(2, { addr: BACKEND, port: 5353, proto: LbProto.UDP });
  lb.revNat.set(70, { vip: VIP, port: 80 });
  lb.revNat.set(71, { vip: VIP, port: 53 });
  lb.services.set({ vip: VIP, port: 80, proto: LbProto.TCP }, { revNatIndex: 70, backendIds: [1] });
  lb.services.set({ vip: VIP, port: 53, proto: LbProto.UDP }, { revNatIndex: 71, backendIds: [2] });
  lb.services.set({ vip: EMPTY_VIP, port: 80, proto: LbProto.TCP }, { revNatIndex: 72, backendIds: [] });
  lb.backends.set(3, { addr: BACKEND, port: 8081, proto: LbProto.TCP });
  lb.revNat.set(73, { vip: PAIR_VIP, port: 80 });
}, 60000);

afterAll(() => {
  if (t) detachSocketLb(t.bpffs.dir);
  servers.forEach((s) => s.kill());
  lb?.close();
  t?.close();
  for (const ns of [HOST_NS, OTHER_NS]) ipQuiet("netns", "del", ns);
});

test("attached, the host namespace's sockets reach the backend and see the VIP; another namespace's are untouched", async () => {
  const links = await attachSocketLb(t!.bpffs.dir, { netnsCookie: cookieOf(HOST_NS) });
  expect(links.map((l) => l.hook).sort()).toEqual(["connect4", "getpeername4", "recvmsg4", "sendmsg4"]);
  expect(links.every((l) => l.cgroupId !== 0n)).toBe(true);
  const attached = rootCgroupProgIds();
  for (const l of links) expect(attached).toContain(l.progId);

  expect(client(HOST_NS, VIP, 80, 53)).toEqual({ tcp: "backend", peer: `${VIP}:80`, udp: "backend", udpFrom: `${VIP}:53` });
  expect(client(OTHER_NS, VIP, 80, 53)).toEqual({ tcp: "untranslated", peer: `${VIP}:80`, udp: "untranslated", udpFrom: `${VIP}:53` });
  // The socket NAT the reverse hooks used, keyed by socket and backend.
  expect(lb.sockNat.entries().map((e) => `${e.addr}:${e.port}>${e.vip}:${e.vipPort}`).sort()).toEqual(
    expect.arrayContaining([`${BACKEND}:5353>${VIP}:53`, `${BACKEND}:8080>${VIP}:80`]),
  );
});

test("a service without backends refuses the connect (EPERM) and counts it", () => {
  const before = lb.noBackend.get(72).packets;
  const out = client(HOST_NS, EMPTY_VIP, 80, 9);
  expect(out.tcpError).toBe(1); // EPERM
  expect(lb.noBackend.get(72).packets).toBe(before + 1n);
});

test("connects spread over two backends at random; with clientIP affinity the host namespace sticks to one", () => {
  const pair = { vip: PAIR_VIP, port: 80, proto: LbProto.TCP };
  lb.services.set(pair, { revNatIndex: 73, backendIds: [1, 3] });
  expect(new Set(words(HOST_NS, PAIR_VIP, 80, 24))).toEqual(new Set(["backend", "backend2"])); // all alike: p = 2^-23
  lb.services.set(pair, { revNatIndex: 73, backendIds: [1, 3], flags: LbServiceFlags.AFFINITY, affinityTimeoutS: 60 });
  const sticky = words(HOST_NS, PAIR_VIP, 80, 12);
  expect(new Set(sticky).size).toBe(1);
  // The host namespace is one client: affinity keyed by 0.0.0.0.
  expect(lb.affinity.get({ clientIp: "0.0.0.0", revNatIndex: 73 })?.backendId).toBe(sticky[0] === "backend" ? 1 : 3);
});

test("attaching again keeps the same links (an agent restart); detaching leaves nothing attached", async () => {
  const before = socketLbLinks(t!.bpffs.dir);
  const again = await attachSocketLb(t!.bpffs.dir, { netnsCookie: cookieOf(HOST_NS) });
  expect(again.map((l) => l.linkId).sort()).toEqual(before.map((l) => l.linkId).sort());
  expect(detachSocketLb(t!.bpffs.dir).sort()).toEqual(["connect4", "getpeername4", "recvmsg4", "sendmsg4"]);
  expect(socketLbLinks(t!.bpffs.dir)).toEqual([]);
  const attached = rootCgroupProgIds();
  for (const l of before) expect(attached).not.toContain(l.progId);
  expect(require("fs").existsSync(socketLbPin(t!.bpffs.dir, "connect4"))).toBe(false);
});
