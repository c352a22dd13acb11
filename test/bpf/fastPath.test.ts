/**
 * The l3 fast path on crafted frames (BPF_PROG_TEST_RUN, real maps in a private bpffs), run in
 * a network namespace of its own whose routes and neighbours bpf_fib_lookup consults: bpf_lxc
 * sends another host's pod traffic (a bpfnet_routes row) with the FIB's next hop and MACs
 * (bpf_redirect), by bpf_redirect_neigh when the next hop is not resolved, and to the host stack
 * when there is no row or the FIB would not forward; bpf_netdev delivers from the underlay
 * through the same endpoint delivery (policy included) into the container. Each outcome counted.
 * Lab test with real traffic: test/agent/fastPath.test.ts.
 */
import { DatapathMaps, DatapathObjects, DropReason, EndpointFlags, TcAction, testRun, Verdict } from "../../bpf";
import type { Direction, Endpoint, TestRunOptions } from "../../bpf";
import { loadTestDatapath, TestDatapath } from "./support/datapath";
import { execInNetns, ip, linkInfo } from "./support/netns";
import { icmpEcho, parseIpv4Frame, udp } from "./support/packets";
import { addNetns, deleteNetns } from "./support/topology";

const NS = "bftl3fib";
const LOOPBACK = 1; // test runs see the packet on the namespace's lo
const POD_A = { ip: "10.252.1.1", mac: "02:00:00:00:02:01" };
const POD_A_ENDPOINT: Endpoint = { ifindex: LOOPBACK, endpointId: 16, mac: POD_A.mac, nodeMac: "0a:00:00:00:02:01" };
const GATEWAY_MAC = "02:00:00:00:00:fe";
const POD_B_IP = "10.252.1.2";
const POD_B: Endpoint = { ifindex: 4242, endpointId: 17, mac: "02:00:00:00:02:02", nodeMac: "0a:00:00:00:02:02" };
const REMOTE_POD = "10.252.128.5";
const REMOTE_PREFIX = "10.252.128.0/24";
const NEXT_HOP = "10.253.0.2";
const ROUTER_MAC = "02:00:00:00:0f:01";
/** Pod CIDRs with a route row whose route in the namespace's FIB is not a forwarding one. */
const REFUSED = {
  blackhole: "10.252.129.0/24",
  unreachable: "10.252.130.0/24",
  prohibit: "10.252.131.0/24",
  "no route at all": "10.252.132.0/24",
  "the host's own address": "10.253.0.0/24",
};
/** Behind a 1280-byte link: small packets go fast, bigger ones to the stack (it sends frag-needed). */
const NARROW_PREFIX = "10.252.133.0/24";

let t: TestDatapath;
let dp: DatapathObjects;
let maps: DatapathMaps;
let underlay: { ifindex: number; mac: string };

beforeAll(() => {
  t = loadTestDatapath();
  ({ dp, maps } = t);
  addNetns(NS);
  // ul0: the underlay towards the router (10.253.0.2); ul2: a narrow link to a second router.
  ip("-n", NS, "link", "add", "ul0", "type", "veth", "peer", "name", "ul1");
  ip("-n", NS, "link", "add", "ul2", "mtu", "1280", "type", "veth", "peer", "name", "ul3", "mtu", "1280");
  for (const dev of ["ul0", "ul1", "ul2", "ul3"]) ip("-n", NS, "link", "set", dev, "up");
  ip("-n", NS, "addr", "add", "10.253.0.1/24", "dev", "ul0");
  ip("-n", NS, "addr", "add", "10.253.1.1/24", "dev", "ul2");
  ip("-n", NS, "route", "add", REMOTE_PREFIX, "via", NEXT_HOP, "dev", "ul0");
  ip("-n", NS, "route", "add", NARROW_PREFIX, "via", "10.253.1.2", "dev", "ul2");
  ip("-n", NS, "neigh", "replace", "10.253.1.2", "lladdr", ROUTER_MAC, "dev", "ul2", "nud", "permanent");
  for (const kind of ["blackhole", "unreachable", "prohibit"] as const) ip("-n", NS, "route", "add", kind, REFUSED[kind]);
  expect(execInNetns(NS, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])).toBe(0);
  underlay = linkInfo(NS, "ul0");
});

afterAll(() => {
  deleteNetns(NS);
  t?.close();
});

beforeEach(() => {
  for (const [addr] of maps.endpoints.entries()) maps.endpoints.delete(addr);
  for (const [cidr] of maps.routes.entries()) maps.routes.delete(cidr);
  for (const [cidr] of maps.tunnel.entries()) maps.tunnel.delete(cidr);
  maps.config.set({ mode: "l3", vni: 0, vxlanIfindex: 0, hostIfindex: 4444, gateway: "10.252.1.254" });
  maps.endpoints.set(POD_A.ip, POD_A_ENDPOINT);
  maps.endpoints.set(POD_B_IP, POD_B);
  for (const cidr of [REMOTE_PREFIX, NARROW_PREFIX, ...Object.values(REFUSED)]) maps.routes.set(cidr, { ifindex: underlay.ifindex });
  ip("-n", NS, "neigh", "replace", NEXT_HOP, "lladdr", ROUTER_MAC, "dev", "ul0", "nud", "permanent");
  maps.metrics.clear();
});

const IN_NS: TestRunOptions = { netns: NS };
const counted = (direction: Direction, reason: number) => maps.metrics.get({ id: LOOPBACK, direction, reason }).packets;
const routeCounters = () => ({
  fast: counted("ingress", Verdict.ROUTE_FAST),
  neigh: counted("ingress", Verdict.ROUTE_NEIGH),
  fibStack: counted("ingress", Verdict.ROUTE_FIB_STACK),
  stack: counted("ingress", Verdict.ROUTE_STACK),
});
const fromPodA = (dst: string, ttl = 64) => icmpEcho({ srcMac: POD_A.mac, dstMac: GATEWAY_MAC, src: POD_A.ip, dst, ttl });
const fromWire = (dst: string, ttl = 62) => icmpEcho({ srcMac: ROUTER_MAC, dstMac: "02:00:00:00:0e:01", src: REMOTE_POD, dst, ttl });
const lxc = (frame: Buffer) => testRun(dp.programs.lxc, frame, IN_NS);

describe("bpf_lxc, l3 mode: the FIB decides how a routed pod CIDR leaves", () => {
  test("next hop resolved: its MAC as destination, the underlay's as source, TTL−1, bpf_redirect; counted fast", () => {
    const r = lxc(fromPodA(REMOTE_POD));
    expect(r.retval).toBe(TcAction.REDIRECT);
    const out = parseIpv4Frame(r.data);
    expect([out.dstMac, out.srcMac, out.ttl, out.checksumValid, out.dst]).toEqual([ROUTER_MAC, underlay.mac, 63, true, REMOTE_POD]);
    expect(routeCounters()).toEqual({ fast: 1n, neigh: 0n, fibStack: 0n, stack: 0n });
    expect(counted("ingress", Verdict.FORWARDED)).toBe(1n);
  });

  test("neighbour missing: bpf_redirect_neigh (MACs left for the kernel to fill), counted neigh; once resolved, fast", () => {
    ip("-n", NS, "neigh", "del", NEXT_HOP, "dev", "ul0");
    const r = lxc(fromPodA(REMOTE_POD));
    expect(r.retval).toBe(TcAction.REDIRECT);
    const out = parseIpv4Frame(r.data);
    expect([out.dstMac, out.srcMac, out.ttl, out.checksumValid]).toEqual([GATEWAY_MAC, POD_A.mac, 63, true]);
    expect(routeCounters()).toEqual({ fast: 0n, neigh: 1n, fibStack: 0n, stack: 0n });
    // What the kernel's resolution leaves behind (a reachable entry; a stale one counts as valid too).
    for (const nud of ["reachable", "stale"]) {
      ip("-n", NS, "neigh", "replace", NEXT_HOP, "lladdr", ROUTER_MAC, "dev", "ul0", "nud", nud);
      expect(parseIpv4Frame(lxc(fromPodA(REMOTE_POD)).data).dstMac).toBe(ROUTER_MAC);
    }
    expect(routeCounters()).toEqual({ fast: 2n, neigh: 1n, fibStack: 0n, stack: 0n });
  });

  test.each(Object.entries(REFUSED))("a route row, but the FIB would not forward (%s): the host stack, untouched, counted fib-stack", (_, cidr) => {
    const dst = cidr.replace(/0\/24$/, cidr.startsWith("10.253.0.") ? "1" : "9");
    const packet = fromPodA(dst);
    const r = lxc(packet);
    expect(r.retval).toBe(TcAction.OK);
    expect(r.data).toEqual(packet);
    expect(routeCounters()).toEqual({ fast: 0n, neigh: 0n, fibStack: 1n, stack: 0n });
    expect(counted("ingress", Verdict.PASSED)).toBe(1n);
  });

  test("forwarding off on the ingress device: the host stack (which will not forward either)", () => {
    expect(execInNetns(NS, ["sysctl", "-qw", "net.ipv4.conf.lo.forwarding=0"])).toBe(0);
    try {
      expect(lxc(fromPodA(REMOTE_POD)).retval).toBe(TcAction.OK);
    } finally {
      expect(execInNetns(NS, ["sysctl", "-qw", "net.ipv4.conf.lo.forwarding=1"])).toBe(0);
    }
    expect(routeCounters()).toEqual({ fast: 0n, neigh: 0n, fibStack: 1n, stack: 0n });
    expect(lxc(fromPodA(REMOTE_POD)).retval).toBe(TcAction.REDIRECT);
  });

  test("bigger than the next hop's MTU: the host stack (it answers with fragmentation needed); a small packet the same way goes fast", () => {
    const spec = { srcMac: POD_A.mac, dstMac: GATEWAY_MAC, src: POD_A.ip, dst: "10.252.133.7" };
    const big = udp(spec, 4000, 5000, Buffer.alloc(1400, 7));
    const r = lxc(big);
    expect(r.retval).toBe(TcAction.OK);
    expect(r.data).toEqual(big);
    const small = lxc(udp(spec, 4000, 5000, Buffer.alloc(100, 7)));
    expect(small.retval).toBe(TcAction.REDIRECT);
    expect(parseIpv4Frame(small.data).srcMac).toBe(linkInfo(NS, "ul2").mac);
    expect(routeCounters()).toEqual({ fast: 1n, neigh: 0n, fibStack: 1n, stack: 0n });
  });

  test("no route row (deleted, or a destination outside every pod CIDR): the host stack without asking the FIB, counted stack", () => {
    maps.routes.delete(REMOTE_PREFIX);
    for (const dst of [REMOTE_POD, "192.0.2.7"]) {
      const packet = fromPodA(dst);
      const r = lxc(packet);
      expect(r.retval).toBe(TcAction.OK);
      expect(r.data).toEqual(packet);
    }
    expect(routeCounters()).toEqual({ fast: 0n, neigh: 0n, fibStack: 0n, stack: 2n });
    expect(counted("ingress", Verdict.PASSED)).toBe(2n);
  });

  test("a TTL that would reach zero is dropped, not sent", () => {
    const r = lxc(fromPodA(REMOTE_POD, 1));
    expect(r.retval).toBe(TcAction.SHOT);
    expect(counted("ingress", DropReason.TTL_EXCEEDED)).toBe(1n);
    expect(routeCounters().fast).toBe(0n);
  });

  test("anti-spoofing and egress policy still come first: nothing reaches the FIB", () => {
    const spoofed = icmpEcho({ srcMac: POD_A.mac, dstMac: GATEWAY_MAC, src: POD_B_IP, dst: REMOTE_POD, ttl: 64 });
    expect(lxc(spoofed).retval).toBe(TcAction.SHOT);
    maps.endpoints.set(POD_A.ip, { ...POD_A_ENDPOINT, flags: EndpointFlags.ENFORCE_EGRESS });
    expect(lxc(fromPodA(REMOTE_POD)).retval).toBe(TcAction.SHOT);
    expect([counted("ingress", DropReason.SPOOFED_SOURCE), counted("ingress", DropReason.POLICY_DENIED)]).toEqual([1n, 1n]);
    expect(routeCounters()).toEqual({ fast: 0n, neigh: 0n, fibStack: 0n, stack: 0n });
  });

  test("vxlan mode ignores the route rows: the tunnel (or the stack) as before", () => {
    maps.config.set({ mode: "vxlan", vni: 42, vxlanIfindex: 4343, hostIfindex: 4444, gateway: "10.252.1.254" });
    expect(lxc(fromPodA(REMOTE_POD)).retval).toBe(TcAction.OK); // no tunnel entry: stack
    expect(routeCounters()).toEqual({ fast: 0n, neigh: 0n, fibStack: 0n, stack: 0n });
  });

  test("testRun's namespace option: hostile names fail to open and leave the caller where it was", () => {
    for (const bad of ["no such ns", "../../etc/passwd", "x; rm -rf /", "$(id)", "`id`", "a\nb", "'q'\"", ".."]) {
      expect(() => testRun(dp.programs.lxc, fromPodA(REMOTE_POD), { netns: bad })).toThrow();
    }
    // Back in the test's own namespace: its FIB has no 10.253.0.2 neighbour on a ul0, but NS's still works.
    expect(lxc(fromPodA(REMOTE_POD)).retval).toBe(TcAction.REDIRECT);
    expect(routeCounters().fast).toBe(1n);
  });
});

describe("bpf_netdev (underlay ingress)", () => {
  test("a local endpoint: MACs rewritten, TTL decremented, into the container (redirect_peer), counted peer", () => {
    const r = testRun(dp.programs.netdev, fromWire(POD_B_IP));
    expect(r.retval).toBe(TcAction.REDIRECT);
    const out = parseIpv4Frame(r.data);
    expect([out.dstMac, out.srcMac, out.ttl, out.checksumValid]).toEqual([POD_B.mac, POD_B.nodeMac, 61, true]);
    expect(counted("ingress", Verdict.PEER)).toBe(1n);
  });

  test("anything else goes on to the host stack untouched", () => {
    for (const dst of ["10.252.1.99", "192.0.2.1"]) {
      const packet = fromWire(dst);
      const r = testRun(dp.programs.netdev, packet);
      expect(r.retval).toBe(TcAction.OK);
      expect(r.data).toEqual(packet);
    }
    expect(counted("ingress", Verdict.PEER)).toBe(0n);
  });

  test("the endpoint's ingress policy applies as on every other path: no allow row → dropped, counted policy-denied", () => {
    maps.endpoints.set(POD_B_IP, { ...POD_B, flags: EndpointFlags.ENFORCE_INGRESS });
    const r = testRun(dp.programs.netdev, fromWire(POD_B_IP));
    expect(r.retval).toBe(TcAction.SHOT);
    expect(counted("ingress", DropReason.POLICY_DENIED)).toBe(1n);
    expect(counted("ingress", Verdict.PEER)).toBe(0n);
  });
});
