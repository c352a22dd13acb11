/**
 * The policy datapath through BPF_PROG_TEST_RUN, rule by rule of the contract (docs/policy.md,
 * bpf/README.md): ipcache identities (world by default), the policy map's lookup order and
 * wildcards, a miss as a deny, audit mode, connection tracking (replies skip policy, forward
 * packets are re-checked, lifetimes, expiry, GC), enforcement at bpf_lxc (egress of the sender,
 * ingress of a local receiver), bpf_overlay and bpf_host, and the redirect to the proxy.
 *
 * Two endpoints sit on a veth pair made for the test (root namespace, bftpa/bftpb): a test run
 * sees a packet on the device it names, and bpf_lxc's anti-spoofing wants the sender's own.
 */
import {
  ABI_CONSTANTS,
  BpfObject,
  DatapathMaps,
  DatapathObjects,
  DropReason,
  EndpointFlags,
  Identity,
  monotonicNowNs,
  PolicyAction,
  PolicyDirection,
  TcAction,
  testRun,
  Verdict,
} from "../../bpf";
import type { BpfProgram, CtKey, Direction, Endpoint, PolicyRow } from "../../bpf";
import { encodeCtKey } from "../../bpf/abi";
import { CtGarbageCollector } from "../../node-agent/daemon/ctGc";
import { silentLogger } from "../../node-agent/daemon/log";
import { loadTestDatapath, TestDatapath, tunnelCb } from "./support/datapath";
import { ipQuiet, vethPair } from "./support/netns";
import { icmpEcho, icmpEchoReply, tcp, TCP_FLAGS, udp } from "./support/packets";

const GATEWAY_MAC = "02:00:00:00:00:fe";
const A = { ip: "10.252.1.1", id: 1000, endpointId: 10, mac: "02:00:00:00:0a:01" };
const B = { ip: "10.252.1.2", id: 1001, endpointId: 11, mac: "02:00:00:00:0b:01" };
const REMOTE = { ip: "10.252.2.5", id: 1002 }; // a pod on another host
const REMOTE_PREFIX = "10.252.2.0/24";
const PEER_UNDERLAY = "192.0.2.10";
const HOST_GATEWAY = "10.252.1.254"; // this host's address towards its pods: identity host
const OUTSIDE = "192.0.2.99"; // no ipcache row: world (test runs transmit nothing)
const VNI = 5;
const DEV_A = "bftpa";
const DEV_B = "bftpb";

let t: TestDatapath | undefined;
let dp: DatapathObjects;
let maps: DatapathMaps;
let overlayTest: BpfObject;
let ifA: number;
let ifB: number;

beforeAll(() => {
  [ifA, ifB] = vethPair(DEV_A, DEV_B);
  t = loadTestDatapath();
  ({ dp, maps, overlayTest } = t);
});

afterAll(() => {
  t?.close();
  ipQuiet("link", "del", DEV_A);
});

function endpoint(e: typeof A, ifindex: number, flags: number): Endpoint {
  return { ifindex, endpointId: e.endpointId, mac: e.mac, nodeMac: "0a:00:00:00:00:01", flags };
}

/** Sets the enforcement bits of A and B. */
function enforce(aFlags: number, bFlags: number): void {
  maps.endpoints.set(A.ip, endpoint(A, ifA, aFlags));
  maps.endpoints.set(B.ip, endpoint(B, ifB, bFlags));
}

beforeEach(() => {
  for (const [k] of maps.endpoints.entries()) maps.endpoints.delete(k);
  for (const [k] of maps.ipcache.entries()) maps.ipcache.delete(k);
  for (const row of maps.policy.entries()) maps.policy.delete(row);
  for (const e of maps.ct.entries()) maps.ct.delete(e);
  for (const [k] of maps.tunnel.entries()) maps.tunnel.delete(k);
  for (const [k] of maps.peers.entries()) maps.peers.delete(k);
  maps.metrics.clear();
  maps.verdicts.clear();
  maps.config.set({ mode: "vxlan", vni: VNI, vxlanIfindex: 4343, hostIfindex: 4444, gateway: HOST_GATEWAY });
  enforce(0, 0);
  maps.tunnel.set(REMOTE_PREFIX, { remote: PEER_UNDERLAY });
  maps.peers.set(PEER_UNDERLAY);
  maps.ipcache.set(`${A.ip}/32`, A.id);
  maps.ipcache.set(`${B.ip}/32`, B.id);
  maps.ipcache.set(`${REMOTE.ip}/32`, REMOTE.id);
  maps.ipcache.set(`${HOST_GATEWAY}/32`, Identity.HOST);
});

const ING = PolicyDirection.INGRESS;
const EGR = PolicyDirection.EGRESS;
const TCP = 6;
const UDP = 17;
const ICMP = 1;

function row(endpointId: number, direction: number, identity: number, dport: number, proto: number, action: number = PolicyAction.ALLOW, ruleId = 1): PolicyRow {
  return { endpointId, direction, identity, dport, proto, action, proxyPort: 0, ruleId };
}

const frame = (src: string, dst: string) => ({ srcMac: A.mac, dstMac: GATEWAY_MAC, src, dst });
const tcpFrom = (src: string, dst: string, sport: number, dport: number, flags: number = TCP_FLAGS.SYN) => tcp(frame(src, dst), sport, dport, flags);
const udpFrom = (src: string, dst: string, dport: number) => udp(frame(src, dst), 5000, dport, Buffer.from("x"));

/** Runs bpf_lxc on the sender's veth. */
function fromPod(ifindex: number, packet: Buffer) {
  return testRun(dp.programs.lxc, packet, { ifindex });
}
const fromA = (packet: Buffer) => fromPod(ifA, packet).retval;
const fromB = (packet: Buffer) => fromPod(ifB, packet).retval;

function counted(ifindex: number, reason: number, direction: Direction = "ingress"): bigint {
  return maps.metrics.get({ id: ifindex, direction, reason }).packets;
}

describe("open endpoints", () => {
  test("no enforcement bits: forwarded, and no connection-tracking entry is made (the lean path)", () => {
    expect(fromA(tcpFrom(A.ip, B.ip, 40000, 80))).toBe(TcAction.REDIRECT);
    expect(fromA(tcpFrom(A.ip, REMOTE.ip, 40000, 80))).toBe(TcAction.REDIRECT);
    expect(fromB(tcpFrom(B.ip, A.ip, 80, 40000, TCP_FLAGS.SYN | TCP_FLAGS.ACK))).toBe(TcAction.REDIRECT);
    expect(maps.ct.entries()).toEqual([]);
    expect(counted(ifA, DropReason.POLICY_DENIED)).toBe(0n);
  });
});

describe("ingress policy of a local receiver (at the sender's bpf_lxc)", () => {
  beforeEach(() => enforce(0, EndpointFlags.ENFORCE_INGRESS));

  test("no row: denied, counted as policy-denied on the sender's veth", () => {
    expect(fromA(tcpFrom(A.ip, B.ip, 40000, 80))).toBe(TcAction.SHOT);
    expect(fromA(icmpEcho(frame(A.ip, B.ip)))).toBe(TcAction.SHOT);
    expect(counted(ifA, DropReason.POLICY_DENIED)).toBe(2n);
    expect(counted(ifA, Verdict.FORWARDED)).toBe(0n);
    expect(maps.ct.entries()).toEqual([]); // a denied flow leaves no state
  });

  // Each level of the lookup order on its own, against the same probes.
  const probes = {
    "A tcp/80": () => fromA(tcpFrom(A.ip, B.ip, 40000, 80)),
    "A tcp/81": () => fromA(tcpFrom(A.ip, B.ip, 40001, 81)),
    "A udp/80": () => fromA(udpFrom(A.ip, B.ip, 80)),
    "A icmp": () => fromA(icmpEcho(frame(A.ip, B.ip))),
    "host tcp/80": () => testRun(dp.programs.host, tcpFrom(HOST_GATEWAY, B.ip, 40002, 80)).retval,
  };
  const levels: [string, PolicyRow, string[]][] = [
    ["(id, port, proto)", row(B.endpointId, ING, A.id, 80, TCP), ["A tcp/80"]],
    ["(id, 0, proto)", row(B.endpointId, ING, A.id, 0, TCP), ["A tcp/80", "A tcp/81"]],
    ["(id, 0, 0)", row(B.endpointId, ING, A.id, 0, 0), ["A tcp/80", "A tcp/81", "A udp/80", "A icmp"]],
    ["(any, port, proto)", row(B.endpointId, ING, Identity.ANY, 80, TCP), ["A tcp/80", "host tcp/80"]],
    ["(any, 0, proto)", row(B.endpointId, ING, Identity.ANY, 0, TCP), ["A tcp/80", "A tcp/81", "host tcp/80"]],
    ["(any, 0, 0)", row(B.endpointId, ING, Identity.ANY, 0, 0), Object.keys(probes)],
  ];
  test.each(levels)("a row at level %s allows exactly what it names", (_name, r, allowed) => {
    maps.policy.set(r);
    const verdicts = Object.fromEntries(Object.entries(probes).map(([name, run]) => [name, run() === TcAction.REDIRECT]));
    expect(verdicts).toEqual(Object.fromEntries(Object.keys(probes).map((name) => [name, allowed.includes(name)])));
  });

  test("first hit wins: a specific deny beats a wildcard allow, a specific allow beats a wildcard deny", () => {
    maps.policy.set(row(B.endpointId, ING, Identity.ANY, 0, 0, PolicyAction.ALLOW));
    maps.policy.set(row(B.endpointId, ING, A.id, 80, TCP, PolicyAction.DENY));
    expect(fromA(tcpFrom(A.ip, B.ip, 40000, 80))).toBe(TcAction.SHOT);
    expect(fromA(tcpFrom(A.ip, B.ip, 40001, 81))).toBe(TcAction.REDIRECT); // falls through to (any, 0, 0)

    maps.policy.set(row(B.endpointId, ING, Identity.ANY, 0, 0, PolicyAction.DENY));
    maps.policy.set(row(B.endpointId, ING, A.id, 80, TCP, PolicyAction.ALLOW));
    expect(fromA(tcpFrom(A.ip, B.ip, 40002, 80))).toBe(TcAction.REDIRECT);
    expect(fromA(tcpFrom(A.ip, B.ip, 40003, 81))).toBe(TcAction.SHOT);
    // Between the identity tiers: (id, 0, 0) deny is hit before (any, port, proto) allow.
    maps.policy.delete(row(B.endpointId, ING, A.id, 80, TCP));
    maps.policy.set(row(B.endpointId, ING, A.id, 0, 0, PolicyAction.DENY));
    maps.policy.set(row(B.endpointId, ING, Identity.ANY, 80, TCP, PolicyAction.ALLOW));
    expect(fromA(tcpFrom(A.ip, B.ip, 40004, 80))).toBe(TcAction.SHOT);
    expect(counted(ifA, DropReason.POLICY_DENIED)).toBe(3n);
  });

  test("rows are per endpoint and per direction: A's rows, or B's egress rows, open nothing into B", () => {
    maps.policy.set(row(A.endpointId, ING, Identity.ANY, 0, 0));
    maps.policy.set(row(B.endpointId, EGR, Identity.ANY, 0, 0));
    expect(fromA(tcpFrom(A.ip, B.ip, 40000, 80))).toBe(TcAction.SHOT);
  });

  test("verdicts are counted per endpoint and rule: each denied packet, the first packet of each allowed flow", () => {
    maps.policy.set(row(B.endpointId, ING, A.id, 80, TCP, PolicyAction.ALLOW, 7));
    maps.policy.set(row(B.endpointId, ING, A.id, 0, UDP, PolicyAction.DENY, 9));
    const verdict = (ruleId: number, v: "allow" | "deny") => maps.verdicts.get({ endpointId: B.endpointId, ruleId, direction: ING, verdict: v }).packets;
    for (let i = 0; i < 3; i++) fromA(tcpFrom(A.ip, B.ip, 40000, 80, i ? TCP_FLAGS.ACK : TCP_FLAGS.SYN)); // one flow, 3 packets
    fromA(tcpFrom(A.ip, B.ip, 40001, 80)); // a second flow
    fromA(udpFrom(A.ip, B.ip, 53)); // the deny row
    fromA(udpFrom(A.ip, B.ip, 53));
    fromA(tcpFrom(A.ip, B.ip, 40002, 81)); // no row: rule 0
    expect(verdict(7, "allow")).toBe(2n);
    expect(verdict(9, "deny")).toBe(2n);
    expect(verdict(0, "deny")).toBe(1n);
    expect(maps.verdicts.entries().map((e) => `${e.endpointId}/${e.ruleId}/${e.direction}/${e.verdict}=${e.packets}`).sort()).toEqual(
      [`${B.endpointId}/0/1/deny=1`, `${B.endpointId}/7/1/allow=2`, `${B.endpointId}/9/1/deny=2`],
    );
  });

  test("audit: a would-be drop passes and is counted as an audit verdict; allowed packets are not", () => {
    enforce(0, EndpointFlags.ENFORCE_INGRESS | EndpointFlags.AUDIT_INGRESS);
    maps.policy.set(row(B.endpointId, ING, A.id, 80, TCP));
    expect(fromA(tcpFrom(A.ip, B.ip, 40000, 81))).toBe(TcAction.REDIRECT);
    expect(fromA(udpFrom(A.ip, B.ip, 53))).toBe(TcAction.REDIRECT);
    expect(fromA(tcpFrom(A.ip, B.ip, 40001, 80))).toBe(TcAction.REDIRECT);
    expect(counted(ifA, Verdict.POLICY_AUDIT)).toBe(2n);
    expect(counted(ifA, DropReason.POLICY_DENIED)).toBe(0n);
    expect(maps.verdicts.get({ endpointId: B.endpointId, ruleId: 0, direction: ING, verdict: "audit" }).packets).toBe(2n);
    expect(maps.verdicts.get({ endpointId: B.endpointId, ruleId: 1, direction: ING, verdict: "allow" }).packets).toBe(1n);
    expect(counted(ifA, Verdict.FORWARDED)).toBe(3n);
  });

  test("redirect to the proxy: marked with the proxy port and tracked; no proxy socket takes it: dropped as no-proxy, never delivered", () => {
    // A test run is not at tc ingress (bpf_sk_assign refuses), and nothing listens on the port:
    // the packet is dropped. Delivery to a real listener is the lab test's (test/policy/l7Lab).
    maps.policy.set({ ...row(B.endpointId, ING, A.id, 8080, TCP, PolicyAction.REDIRECT), proxyPort: 15001 });
    const before = counted(ifA, DropReason.NO_PROXY);
    const result = fromPod(ifA, tcpFrom(A.ip, B.ip, 40000, 8080));
    expect(result.retval).toBe(TcAction.SHOT);
    expect(result.mark).toBe((15001 << 16) | ABI_CONSTANTS.BPFNET_MARK_TO_PROXY);
    expect(counted(ifA, DropReason.NO_PROXY)).toBe(before + 1n);
    expect(maps.ct.get({ saddr: A.ip, daddr: B.ip, sport: 40000, dport: 8080, proto: TCP, hook: "ingress" })?.proxyPort).toBe(15001);
    expect(fromPod(ifA, tcpFrom(A.ip, B.ip, 40001, 80)).mark).toBe(0); // no row: denied, unmarked
  });
});

describe("the ipcache", () => {
  beforeEach(() => enforce(EndpointFlags.ENFORCE_EGRESS, 0));

  test("an address without a row is world; a CIDR row names a prefix; a /32 beats the prefix", () => {
    expect(maps.ipcache.resolve(OUTSIDE)).toBe(Identity.WORLD);
    maps.policy.set(row(A.endpointId, EGR, Identity.WORLD, 0, 0));
    expect(fromA(tcpFrom(A.ip, OUTSIDE, 40000, 443))).toBe(TcAction.OK); // allowed: to the host stack
    expect(fromA(tcpFrom(A.ip, B.ip, 40000, 443))).toBe(TcAction.SHOT); // B is 1001, not world

    maps.ipcache.set("192.0.2.0/24", 1 << 24); // a CIDR identity
    expect(maps.ipcache.resolve(OUTSIDE)).toBe(1 << 24);
    expect(fromA(tcpFrom(A.ip, OUTSIDE, 40001, 443))).toBe(TcAction.SHOT);
    maps.policy.set(row(A.endpointId, EGR, 1 << 24, 443, TCP));
    expect(fromA(tcpFrom(A.ip, OUTSIDE, 40002, 443))).toBe(TcAction.OK);
    maps.ipcache.set(`${OUTSIDE}/32`, REMOTE.id);
    expect(maps.ipcache.resolve(OUTSIDE)).toBe(REMOTE.id);
    expect(fromA(tcpFrom(A.ip, OUTSIDE, 40003, 443))).toBe(TcAction.SHOT);
    expect(maps.ipcache.entries()).toContainEqual(["192.0.2.0/24", 1 << 24]);
  });
});

describe("egress policy of the sender (bpf_lxc)", () => {
  beforeEach(() => enforce(EndpointFlags.ENFORCE_EGRESS, 0));

  test("by the destination's identity, also towards another host's pod (before the tunnel)", () => {
    expect(fromA(tcpFrom(A.ip, REMOTE.ip, 40000, 5432))).toBe(TcAction.SHOT);
    maps.policy.set(row(A.endpointId, EGR, REMOTE.id, 5432, TCP));
    expect(fromA(tcpFrom(A.ip, REMOTE.ip, 40001, 5432))).toBe(TcAction.REDIRECT); // into the tunnel
    expect(fromA(tcpFrom(A.ip, REMOTE.ip, 40002, 5433))).toBe(TcAction.SHOT);
    expect(fromA(tcpFrom(A.ip, B.ip, 40003, 5432))).toBe(TcAction.SHOT);
    expect(counted(ifA, DropReason.POLICY_DENIED)).toBe(3n);
  });

  test("a sender's egress and the receiver's ingress must both allow", () => {
    enforce(EndpointFlags.ENFORCE_EGRESS, EndpointFlags.ENFORCE_INGRESS);
    maps.policy.set(row(A.endpointId, EGR, B.id, 80, TCP));
    expect(fromA(tcpFrom(A.ip, B.ip, 40000, 80))).toBe(TcAction.SHOT);
    maps.policy.set(row(B.endpointId, ING, A.id, 80, TCP));
    expect(fromA(tcpFrom(A.ip, B.ip, 40001, 80))).toBe(TcAction.REDIRECT);
  });
});

describe("connection tracking", () => {
  const flowKey = (sport: number, hook: "egress" | "ingress"): CtKey => ({ saddr: A.ip, daddr: B.ip, sport, dport: 80, proto: TCP, hook });

  beforeEach(() => {
    // B serves port 80 to A and may not open anything itself.
    enforce(0, EndpointFlags.ENFORCE_INGRESS | EndpointFlags.ENFORCE_EGRESS);
    maps.policy.set(row(B.endpointId, ING, A.id, 80, TCP));
  });

  test("replies of an allowed flow pass the other direction's enforcement; new flows that way do not", () => {
    expect(fromA(tcpFrom(A.ip, B.ip, 40000, 80))).toBe(TcAction.REDIRECT);
    expect(maps.ct.get(flowKey(40000, "ingress"))).toMatchObject({ srcIdentity: A.id, seenReply: false });
    // B's SYN-ACK: B has no egress rows, but it is a reply.
    expect(fromB(tcpFrom(B.ip, A.ip, 80, 40000, TCP_FLAGS.SYN | TCP_FLAGS.ACK))).toBe(TcAction.REDIRECT);
    expect(maps.ct.get(flowKey(40000, "ingress"))).toMatchObject({ seenReply: true });
    // B opening a connection to A, or answering on a port A never used: denied.
    expect(fromB(tcpFrom(B.ip, A.ip, 5555, 80))).toBe(TcAction.SHOT);
    expect(fromB(tcpFrom(B.ip, A.ip, 80, 40001, TCP_FLAGS.ACK))).toBe(TcAction.SHOT);
    expect(counted(ifB, DropReason.POLICY_DENIED)).toBe(2n);
  });

  test("the sender's entry lets replies through the sender's own ingress enforcement", () => {
    enforce(EndpointFlags.ENFORCE_INGRESS, EndpointFlags.ENFORCE_INGRESS | EndpointFlags.ENFORCE_EGRESS);
    expect(fromA(tcpFrom(A.ip, B.ip, 40000, 80))).toBe(TcAction.REDIRECT);
    expect(maps.ct.get(flowKey(40000, "egress"))).toBeDefined(); // A's end
    expect(fromB(tcpFrom(B.ip, A.ip, 80, 40000, TCP_FLAGS.SYN | TCP_FLAGS.ACK))).toBe(TcAction.REDIRECT);
    // The same reply arriving from another host's pod address would not be one.
    expect(testRun(dp.programs.host, tcpFrom(HOST_GATEWAY, A.ip, 80, 40000, TCP_FLAGS.ACK)).retval).toBe(TcAction.SHOT);
  });

  test("ICMP echo: the reply matches the request by its identifier", () => {
    maps.policy.set(row(B.endpointId, ING, A.id, 0, ICMP));
    expect(fromA(icmpEcho(frame(A.ip, B.ip)))).toBe(TcAction.REDIRECT);
    expect(fromB(icmpEchoReply(frame(B.ip, A.ip)))).toBe(TcAction.REDIRECT);
    expect(fromB(icmpEcho(frame(B.ip, A.ip)))).toBe(TcAction.SHOT); // B pinging A is new
  });

  test("forward packets are re-checked: removing the allow cuts the established flow", () => {
    expect(fromA(tcpFrom(A.ip, B.ip, 40000, 80))).toBe(TcAction.REDIRECT);
    expect(fromB(tcpFrom(B.ip, A.ip, 80, 40000, TCP_FLAGS.SYN | TCP_FLAGS.ACK))).toBe(TcAction.REDIRECT);
    expect(fromA(tcpFrom(A.ip, B.ip, 40000, 80, TCP_FLAGS.ACK))).toBe(TcAction.REDIRECT);
    maps.policy.delete(row(B.endpointId, ING, A.id, 80, TCP));
    expect(fromA(tcpFrom(A.ip, B.ip, 40000, 80, TCP_FLAGS.ACK))).toBe(TcAction.SHOT);
    expect(counted(ifA, DropReason.POLICY_DENIED)).toBe(1n);
  });

  test("lifetimes: short until a reply, long once established, short again after FIN; configurable", () => {
    const remaining = (hook: "egress" | "ingress") => Number((maps.ct.get(flowKey(40000, hook))!.expiresNs - monotonicNowNs()) / 1_000_000_000n);
    fromA(tcpFrom(A.ip, B.ip, 40000, 80));
    expect(remaining("ingress")).toBeGreaterThan(ABI_CONSTANTS.BPFNET_CT_LIFETIME_SHORT_DEFAULT - 30);
    expect(remaining("ingress")).toBeLessThanOrEqual(ABI_CONSTANTS.BPFNET_CT_LIFETIME_SHORT_DEFAULT);
    fromB(tcpFrom(B.ip, A.ip, 80, 40000, TCP_FLAGS.SYN | TCP_FLAGS.ACK));
    expect(remaining("ingress")).toBeGreaterThan(ABI_CONSTANTS.BPFNET_CT_LIFETIME_TCP_DEFAULT - 30);

    maps.config.set({ ...maps.config.get(), ctLifetimeTcp: 1000, ctLifetimeShort: 7 });
    fromA(tcpFrom(A.ip, B.ip, 40000, 80, TCP_FLAGS.ACK));
    expect(remaining("ingress")).toBeGreaterThan(1000 - 30);
    expect(remaining("ingress")).toBeLessThanOrEqual(1000);
    fromA(tcpFrom(A.ip, B.ip, 40000, 80, TCP_FLAGS.FIN | TCP_FLAGS.ACK));
    expect(maps.ct.get(flowKey(40000, "ingress"))).toMatchObject({ closing: true, seenReply: true });
    expect(remaining("ingress")).toBeLessThanOrEqual(7);
    // UDP never counts as established.
    maps.policy.set(row(B.endpointId, ING, A.id, 53, UDP));
    fromA(udpFrom(A.ip, B.ip, 53));
    const udpEntry = maps.ct.entries().find((e) => e.proto === UDP)!;
    expect(Number((udpEntry.expiresNs - monotonicNowNs()) / 1_000_000_000n)).toBeLessThanOrEqual(7);
  });

  test("an expired entry is no reply; gc() removes expired entries and keeps live ones", () => {
    expect(fromA(tcpFrom(A.ip, B.ip, 40000, 80))).toBe(TcAction.REDIRECT);
    expect(fromA(tcpFrom(A.ip, B.ip, 40001, 80))).toBe(TcAction.REDIRECT);
    // Age the first flow's entry past its deadline (as time would).
    const key = encodeCtKey(flowKey(40000, "ingress"));
    const value = maps.ct.raw.lookup(key)!;
    value.writeBigUInt64LE(1n, 0);
    maps.ct.raw.update(key, value);
    expect(fromB(tcpFrom(B.ip, A.ip, 80, 40000, TCP_FLAGS.SYN | TCP_FLAGS.ACK))).toBe(TcAction.SHOT);
    expect(fromB(tcpFrom(B.ip, A.ip, 80, 40001, TCP_FLAGS.SYN | TCP_FLAGS.ACK))).toBe(TcAction.REDIRECT);

    // The agent's collector: the expired entry goes, the live ones stay, a second pass finds nothing.
    const collector = new CtGarbageCollector(maps.ct, 60_000, silentLogger);
    const live = maps.ct.entries().length - 1;
    expect(collector.runOnce()).toBe(1);
    expect(maps.ct.get(flowKey(40000, "ingress"))).toBeUndefined();
    expect(maps.ct.get(flowKey(40001, "ingress"))).toBeDefined();
    expect(maps.ct.entries()).toHaveLength(live);
    expect(maps.ct.gc(monotonicNowNs())).toBe(0);
    expect(collector.stats).toEqual({ runs: 1, removed: 1, errors: 0 });
  });
});

describe("ingress policy on the other attach points", () => {
  beforeEach(() => enforce(0, EndpointFlags.ENFORCE_INGRESS));

  test("bpf_overlay: the source identity comes from the ipcache (unknown sources are world)", () => {
    const prog: BpfProgram = overlayTest.program("from_overlay");
    const run = (src: string) => testRun(prog, tcpFrom(src, B.ip, 40000, 80), { cb: tunnelCb(PEER_UNDERLAY, VNI) }).retval;
    expect(run(REMOTE.ip)).toBe(TcAction.SHOT);
    maps.policy.set(row(B.endpointId, ING, REMOTE.id, 80, TCP));
    expect(run(REMOTE.ip)).toBe(TcAction.REDIRECT);
    expect(run("10.252.7.7")).toBe(TcAction.SHOT);
    maps.policy.set(row(B.endpointId, ING, Identity.WORLD, 80, TCP));
    expect(run("10.252.7.7")).toBe(TcAction.REDIRECT);
    expect(counted(1, DropReason.POLICY_DENIED)).toBe(2n);
  });

  test("bpf_host: host processes are the host identity", () => {
    const run = () => testRun(dp.programs.host, tcpFrom(HOST_GATEWAY, B.ip, 40000, 80)).retval;
    expect(run()).toBe(TcAction.SHOT);
    expect(counted(1, DropReason.POLICY_DENIED, "egress")).toBe(1n);
    maps.policy.set(row(B.endpointId, ING, Identity.HOST, 0, 0));
    expect(run()).toBe(TcAction.REDIRECT);
  });
});

describe("typed maps", () => {
  test("PolicyMap lists rows per endpoint; CtMap and IpcacheMap refuse bad input", () => {
    maps.policy.set(row(A.endpointId, EGR, B.id, 80, TCP, PolicyAction.ALLOW, 7));
    maps.policy.set(row(B.endpointId, ING, A.id, 80, TCP, PolicyAction.DENY, 8));
    expect(maps.policy.entries(A.endpointId)).toEqual([row(A.endpointId, EGR, B.id, 80, TCP, PolicyAction.ALLOW, 7)]);
    expect(maps.policy.entries()).toHaveLength(2);
    expect(maps.policy.get(row(B.endpointId, ING, A.id, 80, TCP))).toEqual({ action: PolicyAction.DENY, proxyPort: 0, ruleId: 8 });
    expect(() => maps.policy.set(row(A.endpointId, 0, B.id, 80, TCP))).toThrow(RangeError);
    expect(() => maps.ipcache.set("10.0.0.1/32", 0)).toThrow(RangeError);
    expect(() => maps.ct.get({ saddr: "10.0.0.1; rm -rf /", daddr: B.ip, sport: 1, dport: 2, proto: 6, hook: "egress" })).toThrow(TypeError);
  });
});
