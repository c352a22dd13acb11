/**
 * Service load balancing in the tc datapath through BPF_PROG_TEST_RUN, rule by rule of the
 * contract (bpf/README.md, "Service load balancing"): DNAT of TCP and UDP with correct checksums
 * (recomputed here), reverse NAT on delivery (same host through bpf_lxc, across hosts through
 * bpf_overlay), the backend pinned in CT (also when it turns TERMINATING; a vanished one is
 * replaced), random spread over the slots, the Maglev table, clientIP affinity, no backend → a
 * counted drop, and policy judging the backend with the client's identity.
 *
 * Client A and local backend B sit on a veth pair made for the test (bftla/bftlb); R1 and R2 are
 * pods on another host (reached through the tunnel).
 */
import { DropReason, EndpointFlags, lbFlowHash, LbBackendFlags, LbProto, LbServiceFlags, LbServiceMap, MAGLEV_M, monotonicNowNs, openLbMaps, PolicyAction, PolicyDirection, SockConfigFlags, TcAction, testRun } from "../../bpf";
import type { DatapathMaps, DatapathObjects, Endpoint, LbMaps, LbServiceKey, PolicyRow } from "../../bpf";
import { encodeLbSvcKey } from "../../bpf/abi";
import { loadTestDatapath, TestDatapath, tunnelCb } from "./support/datapath";
import { ipQuiet, vethPair } from "./support/netns";
import { icmpChecksumValid, icmpError, l4ChecksumValid, l4Ports, onesComplementSum, parseIpv4Frame, tcp, TCP_FLAGS, udp, withL4Checksum } from "./support/packets";

const GATEWAY_MAC = "02:00:00:00:00:fe";
const A = { ip: "10.251.1.1", id: 2000, endpointId: 20, mac: "02:00:00:00:1a:01" };
const B = { ip: "10.251.1.2", id: 2001, endpointId: 21, mac: "02:00:00:00:1b:01" };
const R1 = { ip: "10.251.2.5", id: 2002 };
const R2 = { ip: "10.251.2.6", id: 2003 };
const REMOTE_PREFIX = "10.251.2.0/24";
const PEER_UNDERLAY = "192.0.2.20";
const VNI = 6;
const VIP = "10.96.0.10";
const DEV_A = "bftla";
const DEV_B = "bftlb";
const TCP_SVC: LbServiceKey = { vip: VIP, port: 80, proto: LbProto.TCP };
const UDP_SVC: LbServiceKey = { vip: VIP, port: 53, proto: LbProto.UDP };
const REV = 12;
// Backend ids: 1 = B:8080, 2 = R1:8080, 3 = R2:8080 (TCP); 4 = B:5353 (UDP).
const BACKENDS: Record<number, { addr: string; port: number }> = {
  1: { addr: B.ip, port: 8080 },
  2: { addr: R1.ip, port: 8080 },
  3: { addr: R2.ip, port: 8080 },
};

let t: TestDatapath | undefined;
let dp: DatapathObjects;
let maps: DatapathMaps;
let lb: LbMaps;
let ifA: number;
let ifB: number;

beforeAll(() => {
  [ifA, ifB] = vethPair(DEV_A, DEV_B);
  t = loadTestDatapath();
  ({ dp, maps } = t);
  lb = openLbMaps(t.bpffs.dir);
});

afterAll(() => {
  lb?.close();
  t?.close();
  ipQuiet("link", "del", DEV_A);
});

function endpoint(e: typeof A, ifindex: number, flags = 0): Endpoint {
  return { ifindex, endpointId: e.endpointId, mac: e.mac, nodeMac: "0a:00:00:00:00:01", flags };
}

beforeEach(() => {
  for (const e of maps.ct.entries()) maps.ct.delete(e);
  for (const s of lb.services.entries()) lb.services.delete(s);
  for (const [id] of lb.backends.entries()) lb.backends.delete(id);
  for (const [k] of lb.affinity.entries()) lb.affinity.delete(k);
  for (const [k] of lb.maglev.entries()) lb.maglev.delete(k);
  for (const row of maps.policy.entries()) maps.policy.delete(row);
  lb.noBackend.clear();
  maps.metrics.clear();
  maps.config.set({ mode: "vxlan", vni: VNI, vxlanIfindex: 4343, hostIfindex: 4444, gateway: "10.251.1.254" });
  maps.endpoints.set(A.ip, endpoint(A, ifA));
  maps.endpoints.set(B.ip, endpoint(B, ifB));
  maps.tunnel.set(REMOTE_PREFIX, { remote: PEER_UNDERLAY });
  maps.peers.set(PEER_UNDERLAY);
  for (const [addr, id] of [[A.ip, A.id], [B.ip, B.id], [R1.ip, R1.id], [R2.ip, R2.id]] as const) maps.ipcache.set(`${addr}/32`, id);
  for (const [id, be] of Object.entries(BACKENDS)) lb.backends.set(Number(id), { ...be, proto: LbProto.TCP });
  lb.backends.set(4, { addr: B.ip, port: 5353, proto: LbProto.UDP });
  lb.revNat.set(REV, { vip: VIP, port: 80 });
  lb.revNat.set(REV + 1, { vip: VIP, port: 53 });
});

const frame = (src: string, dst: string, srcMac = A.mac) => ({ srcMac, dstMac: GATEWAY_MAC, src, dst });
/** A's TCP segment with a correct checksum. */
const tcpFromA = (dst: string, sport: number, dport: number, flags: number = TCP_FLAGS.SYN) =>
  withL4Checksum(tcp(frame(A.ip, dst), sport, dport, flags, Buffer.from("hello")));
/** A reply from a backend to A with a correct checksum. */
const tcpTo = (src: string, dport: number, sport = 8080, flags = TCP_FLAGS.SYN | TCP_FLAGS.ACK) =>
  withL4Checksum(tcp(frame(src, A.ip, B.mac), sport, dport, flags, Buffer.from("world")));

const fromA = (packet: Buffer) => testRun(dp.programs.lxc, packet, { ifindex: ifA });
const fromB = (packet: Buffer) => testRun(dp.programs.lxc, packet, { ifindex: ifB });
/** A packet from another host's pod, through the VXLAN device (test build: metadata from cb). */
const fromTunnel = (packet: Buffer) => testRun(t!.overlayTest.program("from_overlay"), packet, { cb: tunnelCb(PEER_UNDERLAY, VNI) });

/** The backend a translated packet went to, by its new destination. */
function backendOf(out: Buffer): number {
  const p = parseIpv4Frame(out);
  const { dport } = l4Ports(out);
  const id = Object.entries(BACKENDS).find(([, be]) => be.addr === p.dst && be.port === dport)?.[0];
  if (!id) throw new Error(`not translated to a known backend: ${p.dst}:${dport}`);
  return Number(id);
}

function service(backendIds: number[], flags = 0, affinityTimeoutS = 0): void {
  lb.services.set(TCP_SVC, { revNatIndex: REV, backendIds, flags, affinityTimeoutS });
}

describe("DNAT", () => {
  test("TCP to VIP:80 goes to the backend's address and port with valid IPv4 and TCP checksums", () => {
    service([1]);
    const sent = tcpFromA(VIP, 40000, 80);
    expect(l4ChecksumValid(sent)).toBe(true);
    const out = fromA(sent);
    expect(out.retval).toBe(TcAction.REDIRECT);
    const p = parseIpv4Frame(out.data);
    expect({ src: p.src, dst: p.dst, ...l4Ports(out.data) }).toEqual({ src: A.ip, dst: B.ip, sport: 40000, dport: 8080 });
    expect(p.checksumValid).toBe(true);
    expect(l4ChecksumValid(out.data)).toBe(true);
    expect(p.l4.subarray(20).toString()).toBe("hello");
    // Pinned: the service entry (tuple as sent) and the revnat entry (tuple as translated).
    const ct = maps.ct.entries().filter((e) => e.hook === "service" || e.hook === "revnat");
    expect(ct.map((e) => ({ hook: e.hook, daddr: e.daddr, dport: e.dport, rev: e.revNatIndex, be: e.backendId })).sort((x, y) => x.hook.localeCompare(y.hook))).toEqual([
      { hook: "revnat", daddr: B.ip, dport: 8080, rev: REV, be: 1 },
      { hook: "service", daddr: VIP, dport: 80, rev: REV, be: 1 },
    ]);
  });

  test("UDP with a checksum keeps it valid; a UDP checksum of 0 stays 0", () => {
    lb.services.set(UDP_SVC, { revNatIndex: REV + 1, backendIds: [4] });
    const plain = udp(frame(A.ip, VIP), 5000, 53, Buffer.from("query"));
    const summed = withL4Checksum(plain);
    for (const [sent, zero] of [[summed, false], [plain, true]] as const) {
      maps.ct.entries().forEach((e) => maps.ct.delete(e));
      const out = fromA(sent);
      expect(out.retval).toBe(TcAction.REDIRECT);
      const p = parseIpv4Frame(out.data);
      expect({ dst: p.dst, ...l4Ports(out.data) }).toEqual({ dst: B.ip, sport: 5000, dport: 5353 });
      expect(p.checksumValid).toBe(true);
      if (zero) expect(out.data.readUInt16BE(14 + 20 + 6)).toBe(0);
      else expect(l4ChecksumValid(out.data)).toBe(true);
    }
  });

  test("a host where no service was ever written does not look: LB_ACTIVE, raised by the first set()", () => {
    service([1]);
    lb.sockConfig.set({ ...lb.sockConfig.get(), flags: 0 });
    const untouched = fromA(tcpFromA(VIP, 40010, 80));
    expect({ ret: untouched.retval, dst: parseIpv4Frame(untouched.data).dst }).toEqual({ ret: TcAction.OK, dst: VIP });
    const services = LbServiceMap.open(t!.bpffs.dir);
    try {
      services.set(TCP_SVC, { revNatIndex: REV, backendIds: [1] });
    } finally {
      services.close();
    }
    expect(lb.sockConfig.get().flags).toBe(SockConfigFlags.LB_ACTIVE);
    expect(parseIpv4Frame(fromA(tcpFromA(VIP, 40011, 80)).data).dst).toBe(B.ip);
  });

  test("the same VIP on another port or protocol is another service; other traffic is untouched", () => {
    service([1]);
    const other = fromA(tcpFromA(VIP, 40000, 81)); // no service on :81: to the host stack, unchanged
    expect(other.retval).toBe(TcAction.OK);
    expect(parseIpv4Frame(other.data).dst).toBe(VIP);
    const udp80 = fromA(withL4Checksum(udp(frame(A.ip, VIP), 5000, 80, Buffer.from("x"))));
    expect(parseIpv4Frame(udp80.data).dst).toBe(VIP);
    const direct = fromA(tcpFromA(B.ip, 40001, 8080));
    expect(direct.retval).toBe(TcAction.REDIRECT);
    expect(l4Ports(direct.data).dport).toBe(8080);
    expect(maps.ct.entries().filter((e) => e.hook === "service" || e.hook === "revnat")).toEqual([]);
  });
});

describe("reverse NAT on delivery", () => {
  test("a local backend's reply reaches the client from VIP:80 with valid checksums", () => {
    service([1]);
    fromA(tcpFromA(VIP, 40000, 80));
    const out = fromB(tcpTo(B.ip, 40000));
    expect(out.retval).toBe(TcAction.REDIRECT);
    const p = parseIpv4Frame(out.data);
    expect({ src: p.src, dst: p.dst, ...l4Ports(out.data) }).toEqual({ src: VIP, dst: A.ip, sport: 80, dport: 40000 });
    expect(p.checksumValid).toBe(true);
    expect(l4ChecksumValid(out.data)).toBe(true);
    expect(p.dstMac).toBe(A.mac);
  });

  test("a remote backend's reply is translated as bpf_overlay delivers it", () => {
    service([2]);
    const sent = fromA(tcpFromA(VIP, 40002, 80));
    expect(parseIpv4Frame(sent.data).dst).toBe(R1.ip);
    const out = fromTunnel(tcpTo(R1.ip, 40002));
    expect(out.retval).toBe(TcAction.REDIRECT);
    const p = parseIpv4Frame(out.data);
    expect({ src: p.src, ...l4Ports(out.data) }).toEqual({ src: VIP, sport: 80, dport: 40002 });
    expect(l4ChecksumValid(out.data)).toBe(true);
  });

  test("an ICMP error about a translated flow quotes the VIP; the backend's own comes from the VIP", () => {
    service([2]);
    const sent = fromA(tcpFromA(VIP, 40003, 80)).data;
    const quoted = sent.subarray(14, 14 + 20 + 8); // the translated packet as R1's side saw it: A → R1:8080
    const ROUTER = "10.251.2.254";
    for (const [from, outerSrc] of [[R1.ip, VIP], [ROUTER, ROUTER]] as const) {
      const out = fromTunnel(icmpError(frame(from, A.ip, B.mac), 3, 1, quoted));
      expect(out.retval).toBe(TcAction.REDIRECT);
      const p = parseIpv4Frame(out.data);
      const inner = p.l4.subarray(8);
      expect({ src: p.src, checksum: p.checksumValid, icmp: icmpChecksumValid(out.data) }).toEqual({ src: outerSrc, checksum: true, icmp: true });
      expect(parseIpv4Frame(Buffer.concat([out.data.subarray(0, 14), inner])).dst).toBe(VIP);
      expect(onesComplementSum(inner.subarray(0, 20))).toBe(0xffff); // the quoted header's checksum
      expect({ sport: inner.readUInt16BE(20), dport: inner.readUInt16BE(22) }).toEqual({ sport: 40003, dport: 80 });
    }
    // An error about a flow that was never translated stays as it was.
    const direct = fromA(tcpFromA(R1.ip, 40004, 8080)).data.subarray(14, 14 + 28);
    const untouched = fromTunnel(icmpError(frame(R1.ip, A.ip, B.mac), 3, 1, direct));
    expect(parseIpv4Frame(untouched.data).src).toBe(R1.ip);
    expect(parseIpv4Frame(Buffer.concat([untouched.data.subarray(0, 14), parseIpv4Frame(untouched.data).l4.subarray(8)])).dst).toBe(R1.ip);
  });

  test("a reply the host stack routed (l3 mode) is translated as bpf_host delivers it", () => {
    service([3]);
    fromA(tcpFromA(VIP, 40005, 80));
    const out = testRun(dp.programs.host, tcpTo(R2.ip, 40005));
    expect(out.retval).toBe(TcAction.REDIRECT);
    const p = parseIpv4Frame(out.data);
    expect({ src: p.src, ...l4Ports(out.data), csum: l4ChecksumValid(out.data), ip: p.checksumValid }).toEqual({ src: VIP, sport: 80, dport: 40005, csum: true, ip: true });
  });

  test("an ICMP error the client sends about a reply from the VIP goes to the backend, quoting it", () => {
    lb.services.set(UDP_SVC, { revNatIndex: REV + 1, backendIds: [4] });
    fromA(withL4Checksum(udp(frame(A.ip, VIP), 5000, 53, Buffer.from("q"))));
    const reply = withL4Checksum(udp(frame(VIP, A.ip), 53, 5000, Buffer.from("late answer"))); // as A received it
    const out = fromA(icmpError(frame(A.ip, VIP), 3, 3, reply.subarray(14, 14 + 28)));
    expect(out.retval).toBe(TcAction.REDIRECT);
    const p = parseIpv4Frame(out.data);
    const inner = p.l4.subarray(8);
    expect({ dst: p.dst, checksum: p.checksumValid, icmp: icmpChecksumValid(out.data) }).toEqual({ dst: B.ip, checksum: true, icmp: true });
    expect(parseIpv4Frame(Buffer.concat([out.data.subarray(0, 14), inner])).src).toBe(B.ip);
    expect(onesComplementSum(inner.subarray(0, 20))).toBe(0xffff);
    expect({ sport: inner.readUInt16BE(20), dport: inner.readUInt16BE(22) }).toEqual({ sport: 5353, dport: 5000 });
  });

  test("hairpin: a client that is its own backend is reached from 169.254.42.1, and its answer comes back from the VIP", () => {
    lb.backends.set(5, { addr: A.ip, port: 8080, proto: LbProto.TCP });
    service([5]);
    const there = fromA(tcpFromA(VIP, 40300, 80));
    expect(there.retval).toBe(TcAction.REDIRECT);
    const p = parseIpv4Frame(there.data);
    expect({ src: p.src, dst: p.dst, ...l4Ports(there.data), ip: p.checksumValid, l4: l4ChecksumValid(there.data), mac: p.dstMac }).toEqual({
      src: "169.254.42.1", dst: A.ip, sport: 40300, dport: 8080, ip: true, l4: true, mac: A.mac,
    });
    const back = fromA(withL4Checksum(tcp(frame(A.ip, "169.254.42.1"), 8080, 40300, TCP_FLAGS.SYN | TCP_FLAGS.ACK, Buffer.from("x"))));
    expect(back.retval).toBe(TcAction.REDIRECT);
    const q = parseIpv4Frame(back.data);
    expect({ src: q.src, dst: q.dst, ...l4Ports(back.data), ip: q.checksumValid, l4: l4ChecksumValid(back.data) }).toEqual({
      src: VIP, dst: A.ip, sport: 80, dport: 40300, ip: true, l4: true,
    });
  });

  test("the same backend answering a direct connection is not rewritten", () => {
    service([1]);
    fromA(tcpFromA(VIP, 40000, 80));
    fromA(tcpFromA(B.ip, 40001, 8080)); // direct, another port of A
    const out = fromB(tcpTo(B.ip, 40001));
    expect(parseIpv4Frame(out.data).src).toBe(B.ip);
  });

  test("a reply marks the flow seen-reply, and the next forward packet carries that to the pin", () => {
    service([1]);
    fromA(tcpFromA(VIP, 40000, 80));
    fromB(tcpTo(B.ip, 40000));
    fromA(tcpFromA(VIP, 40000, 80, TCP_FLAGS.ACK));
    const byHook = Object.fromEntries(maps.ct.entries().map((e) => [e.hook, e]));
    expect(byHook.revnat.seenReply).toBe(true);
    expect(byHook.service.seenReply).toBe(true);
    // Established TCP: the long lifetime (default 6 h), not the short one.
    expect(byHook.service.expiresNs - monotonicNowNs()).toBeGreaterThan(3600n * 1_000_000_000n);
  });
});

describe("the backend pinned in CT", () => {
  test("the same flow keeps its backend; TERMINATING keeps it too; a vanished one is replaced", () => {
    service([1, 2, 3]);
    const first = backendOf(fromA(tcpFromA(VIP, 41000, 80)).data);
    for (let i = 0; i < 20; i++) expect(backendOf(fromA(tcpFromA(VIP, 41000, 80, TCP_FLAGS.ACK)).data)).toBe(first);

    // Drain it: out of the slots, flagged terminating. The pinned flow stays; new flows avoid it.
    lb.backends.set(first, { ...BACKENDS[first], proto: LbProto.TCP, flags: LbBackendFlags.TERMINATING });
    service([1, 2, 3].filter((id) => id !== first));
    for (let i = 0; i < 10; i++) expect(backendOf(fromA(tcpFromA(VIP, 41000, 80, TCP_FLAGS.ACK)).data)).toBe(first);
    for (let sport = 42000; sport < 42030; sport++) expect(backendOf(fromA(tcpFromA(VIP, sport, 80)).data)).not.toBe(first);

    // Gone from the backends map: the flow picks again, among the remaining ones.
    lb.backends.delete(first);
    const again = backendOf(fromA(tcpFromA(VIP, 41000, 80, TCP_FLAGS.ACK)).data);
    expect(again).not.toBe(first);
    const pin = maps.ct.entries().find((e) => e.hook === "service" && e.sport === 41000);
    expect(pin?.backendId).toBe(again);
  });

  test("new flows spread at random over the slots", () => {
    service([1, 2, 3]);
    const counts: Record<number, number> = { 1: 0, 2: 0, 3: 0 };
    const flows = 600;
    for (let sport = 20000; sport < 20000 + flows; sport++) counts[backendOf(fromA(tcpFromA(VIP, sport, 80)).data)]++;
    // Binomial(600, 1/3): mean 200, sd 11.5; 140..260 is more than 5 sd either side.
    for (const id of [1, 2, 3]) expect(counts[id]).toBeGreaterThan(140);
    for (const id of [1, 2, 3]) expect(counts[id]).toBeLessThan(260);
  });

  test("a slot repeated weighs its backend accordingly", () => {
    service([1, 1, 1, 2]);
    let toB = 0;
    for (let sport = 21000; sport < 21400; sport++) if (backendOf(fromA(tcpFromA(VIP, sport, 80)).data) === 1) toB++;
    // Binomial(400, 3/4): mean 300, sd 8.7.
    expect(toB).toBeGreaterThan(255);
    expect(toB).toBeLessThan(345);
  });
});

describe("selection", () => {
  test("Maglev: the flow takes table[lbFlowHash(tuple) % 251]", () => {
    const table = Array.from({ length: MAGLEV_M }, (_, i) => ((i * 7) % 3) + 1);
    lb.maglev.set(REV, table);
    service([1, 2, 3], LbServiceFlags.MAGLEV);
    const seen = new Set<number>();
    for (let sport = 30000; sport < 30060; sport++) {
      const expected = table[lbFlowHash({ saddr: A.ip, daddr: VIP, sport, dport: 80, proto: LbProto.TCP }) % MAGLEV_M];
      const got = backendOf(fromA(tcpFromA(VIP, sport, 80)).data);
      expect({ sport, got }).toEqual({ sport, got: expected });
      seen.add(got);
    }
    expect(seen.size).toBe(3);
    // Without the pin the same tuple hashes to the same entry again.
    maps.ct.entries().forEach((e) => maps.ct.delete(e));
    const expected = table[lbFlowHash({ saddr: A.ip, daddr: VIP, sport: 30005, dport: 80, proto: LbProto.TCP }) % MAGLEV_M];
    expect(backendOf(fromA(tcpFromA(VIP, 30005, 80)).data)).toBe(expected);
  });

  test("clientIP affinity: every new flow of one client lands on one backend, recorded in bpfnet_lb_aff", () => {
    service([1, 2, 3], LbServiceFlags.AFFINITY, 60);
    const chosen = new Set<number>();
    for (let sport = 31000; sport < 31050; sport++) chosen.add(backendOf(fromA(tcpFromA(VIP, sport, 80)).data));
    expect(chosen.size).toBe(1);
    const [only] = [...chosen];
    expect(lb.affinity.get({ clientIp: A.ip, revNatIndex: REV })?.backendId).toBe(only);
  });

  test("an affinity entry older than the timeout is not followed", () => {
    // The entry points at backend 3, which no slot lists: only affinity can choose it.
    service([1, 2], LbServiceFlags.AFFINITY, 60);
    lb.affinity.set({ clientIp: A.ip, revNatIndex: REV }, { lastUsedNs: monotonicNowNs(), backendId: 3 });
    expect(backendOf(fromA(tcpFromA(VIP, 32000, 80)).data)).toBe(3);
    lb.affinity.set({ clientIp: A.ip, revNatIndex: REV }, { lastUsedNs: monotonicNowNs() - 120n * 1_000_000_000n, backendId: 3 });
    expect(backendOf(fromA(tcpFromA(VIP, 32001, 80)).data)).not.toBe(3);
  });

  test("no backend: dropped as NO_SERVICE_BACKEND, counted for the service", () => {
    service([]);
    expect(fromA(tcpFromA(VIP, 33000, 80)).retval).toBe(TcAction.SHOT);
    expect(maps.metrics.get({ id: ifA, direction: "ingress", reason: DropReason.NO_SERVICE_BACKEND }).packets).toBe(1n);
    service([9]); // a slot whose backend does not exist
    expect(fromA(tcpFromA(VIP, 33001, 80)).retval).toBe(TcAction.SHOT);
    expect(lb.noBackend.get(REV).packets).toBe(2n);
    expect(maps.ct.entries().filter((e) => e.hook === "service")).toEqual([]);
  });
});

describe("service and policy", () => {
  function row(endpointId: number, direction: number, identity: number, dport: number): PolicyRow {
    return { endpointId, direction, identity, dport, proto: 6, action: PolicyAction.ALLOW, proxyPort: 0, ruleId: 7 };
  }

  test("egress policy judges the backend, not the VIP", () => {
    service([1]);
    maps.endpoints.set(A.ip, endpoint(A, ifA, EndpointFlags.ENFORCE_EGRESS));
    maps.policy.set(row(A.endpointId, PolicyDirection.EGRESS, B.id, 80)); // the frontend's port: no use
    expect(fromA(tcpFromA(VIP, 34000, 80)).retval).toBe(TcAction.SHOT);
    maps.policy.set(row(A.endpointId, PolicyDirection.EGRESS, B.id, 8080));
    expect(fromA(tcpFromA(VIP, 34001, 80)).retval).toBe(TcAction.REDIRECT);
  });

  test("the backend's ingress sees the client's identity; the reply passes the client's ingress", () => {
    service([1]);
    maps.endpoints.set(B.ip, endpoint(B, ifB, EndpointFlags.ENFORCE_INGRESS));
    maps.endpoints.set(A.ip, endpoint(A, ifA, EndpointFlags.ENFORCE_INGRESS));
    maps.policy.set(row(B.endpointId, PolicyDirection.INGRESS, R1.id, 8080)); // someone else
    expect(fromA(tcpFromA(VIP, 35000, 80)).retval).toBe(TcAction.SHOT);
    maps.policy.set(row(B.endpointId, PolicyDirection.INGRESS, A.id, 8080));
    expect(fromA(tcpFromA(VIP, 35001, 80)).retval).toBe(TcAction.REDIRECT);
    // A enforces ingress with no rows: only the reply's CT pass lets it in, then it is translated.
    const reply = fromB(tcpTo(B.ip, 35001));
    expect(reply.retval).toBe(TcAction.REDIRECT);
    expect(parseIpv4Frame(reply.data).src).toBe(VIP);
  });
});

describe("typed service maps", () => {
  test("set grows and shrinks a service without leaving slots behind; delete removes row and slots", () => {
    lb.services.set(TCP_SVC, { revNatIndex: REV, backendIds: [1, 2, 3], flags: LbServiceFlags.AFFINITY, affinityTimeoutS: 30 });
    expect(lb.services.get(TCP_SVC)).toEqual({ revNatIndex: REV, backendIds: [1, 2, 3], flags: LbServiceFlags.AFFINITY, affinityTimeoutS: 30 });
    lb.services.set(TCP_SVC, { revNatIndex: REV, backendIds: [2] });
    expect(lb.services.get(TCP_SVC)).toEqual({ revNatIndex: REV, backendIds: [2], flags: 0, affinityTimeoutS: 0 });
    expect(lb.services.raw.keys().length).toBe(2); // the row and one slot
    expect(lb.services.strays()).toEqual([]);
    expect(lb.services.entries()).toEqual([{ ...TCP_SVC, revNatIndex: REV, backendIds: [2], flags: 0, affinityTimeoutS: 0 }]);
    expect(lb.services.delete(TCP_SVC)).toBe(true);
    expect(lb.services.raw.keys()).toEqual([]);
    expect(lb.services.delete(TCP_SVC)).toBe(false);
  });

  test("a slot beyond the row's count (an interrupted writer) is a stray the agent can delete", () => {
    service([1]);
    lb.services.set({ ...TCP_SVC, port: 81 }, { revNatIndex: REV + 2, backendIds: [1, 2] });
    lb.services.raw.delete(encodeLbSvcKey({ ...TCP_SVC, port: 81 }, 0)); // a row gone, its slots left
    expect(lb.services.strays().map((k) => `${k.port}/${k.slot}`).sort()).toEqual(["81/1", "81/2"]);
    for (const k of lb.services.strays()) lb.services.deleteSlot(k, k.slot);
    expect(lb.services.strays()).toEqual([]);
    expect(lb.services.get(TCP_SVC)?.backendIds).toEqual([1]);
  });

  test.each([
    ["VIP with a command", () => lb.services.set({ ...TCP_SVC, vip: "10.96.0.10; rm -rf /" }, { revNatIndex: REV, backendIds: [1] })],
    ["VIP with $(…)", () => lb.services.set({ ...TCP_SVC, vip: "$(reboot)" }, { revNatIndex: REV, backendIds: [1] })],
    ["VIP with a newline", () => lb.services.set({ ...TCP_SVC, vip: "10.96.0.10\n10.0.0.1" }, { revNatIndex: REV, backendIds: [1] })],
    ["port 0", () => lb.services.set({ ...TCP_SVC, port: 0 }, { revNatIndex: REV, backendIds: [1] })],
    ["port 70000", () => lb.services.set({ ...TCP_SVC, port: 70000 }, { revNatIndex: REV, backendIds: [1] })],
    ["protocol ICMP", () => lb.services.set({ ...TCP_SVC, proto: 1 }, { revNatIndex: REV, backendIds: [1] })],
    ["revNatIndex 0", () => lb.services.set(TCP_SVC, { revNatIndex: 0, backendIds: [1] })],
    ["revNatIndex 65536", () => lb.services.set(TCP_SVC, { revNatIndex: 65536, backendIds: [1] })],
    ["backend id 0", () => lb.services.set(TCP_SVC, { revNatIndex: REV, backendIds: [0] })],
    ["backend id 1.5", () => lb.services.set(TCP_SVC, { revNatIndex: REV, backendIds: [1.5] })],
    ["affinity timeout 70000 s", () => lb.services.set(TCP_SVC, { revNatIndex: REV, backendIds: [1], affinityTimeoutS: 70000 })],
    ["backend address with backticks", () => lb.backends.set(9, { addr: "`id`", port: 80, proto: LbProto.TCP })],
    ["backend address with ..", () => lb.backends.set(9, { addr: "10..0.1", port: 80, proto: LbProto.TCP })],
    ["backend port -1", () => lb.backends.set(9, { addr: B.ip, port: -1, proto: LbProto.TCP })],
    ["a Maglev table of 250", () => lb.maglev.set(REV, new Array(250).fill(1))],
    ["a Maglev entry 0", () => lb.maglev.set(REV, new Array(MAGLEV_M).fill(0))],
    ["reverse NAT to a quoted address", () => lb.revNat.set(REV, { vip: "'10.96.0.10'", port: 80 })],
  ])("refused before anything is written: %s", (_what, write) => {
    const before = [lb.services.raw.keys().length, lb.backends.entries().length, lb.maglev.entries().length];
    expect(write).toThrow(/not an IPv4 address|must be|Maglev table has/);
    expect([lb.services.raw.keys().length, lb.backends.entries().length, lb.maglev.entries().length]).toEqual(before);
  });
});

