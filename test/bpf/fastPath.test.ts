/**
 * The l3 fast path on crafted frames (BPF_PROG_TEST_RUN, real maps in a private bpffs):
 * bpf_lxc sends another host's pod traffic out of the underlay device when bpfnet_routes has
 * its CIDR and falls back to the host stack when not; bpf_netdev delivers from the underlay
 * through the same endpoint delivery (policy included) into the container. Each path counted.
 * Lab test with real traffic: test/agent/fastPath.test.ts.
 */
import { DatapathMaps, DatapathObjects, DropReason, EndpointFlags, TcAction, testRun, Verdict } from "../../bpf";
import type { Direction, Endpoint } from "../../bpf";
import { loadTestDatapath, TestDatapath } from "./support/datapath";
import { icmpEcho, parseIpv4Frame } from "./support/packets";

const LOOPBACK = 1; // test runs see the packet on lo
const POD_A = { ip: "10.252.1.1", mac: "02:00:00:00:02:01" };
const POD_A_ENDPOINT: Endpoint = { ifindex: LOOPBACK, endpointId: 16, mac: POD_A.mac, nodeMac: "0a:00:00:00:02:01" };
const POD_B_IP = "10.252.1.2";
const POD_B: Endpoint = { ifindex: 4242, endpointId: 17, mac: "02:00:00:00:02:02", nodeMac: "0a:00:00:00:02:02" };
const REMOTE_POD = "10.252.128.5";
const REMOTE_PREFIX = "10.252.128.0/24";
const UNDERLAY_IFINDEX = 4545;
const ROUTER_MAC = "02:00:00:00:0f:01";

let t: TestDatapath;
let dp: DatapathObjects;
let maps: DatapathMaps;

beforeAll(() => {
  t = loadTestDatapath();
  ({ dp, maps } = t);
});

afterAll(() => t?.close());

beforeEach(() => {
  for (const [ip] of maps.endpoints.entries()) maps.endpoints.delete(ip);
  for (const [cidr] of maps.routes.entries()) maps.routes.delete(cidr);
  for (const [cidr] of maps.tunnel.entries()) maps.tunnel.delete(cidr);
  maps.config.set({ mode: "l3", vni: 0, vxlanIfindex: 0, hostIfindex: 4444, gateway: "10.252.1.254" });
  maps.endpoints.set(POD_A.ip, POD_A_ENDPOINT);
  maps.endpoints.set(POD_B_IP, POD_B);
  maps.routes.set(REMOTE_PREFIX, { ifindex: UNDERLAY_IFINDEX });
  maps.metrics.clear();
});

const counted = (direction: Direction, reason: number) => maps.metrics.get({ id: LOOPBACK, direction, reason }).packets;
const fromPodA = (dst: string) => icmpEcho({ srcMac: POD_A.mac, dstMac: "02:00:00:00:00:fe", src: POD_A.ip, dst, ttl: 64 });
const fromWire = (dst: string, ttl = 62) => icmpEcho({ srcMac: ROUTER_MAC, dstMac: "02:00:00:00:0e:01", src: REMOTE_POD, dst, ttl });

describe("bpf_lxc, l3 mode", () => {
  test("another host's pod with a route row: out of the underlay device (redirect_neigh), TTL decremented, counted fast", () => {
    const r = testRun(dp.programs.lxc, fromPodA(REMOTE_POD));
    expect(r.retval).toBe(TcAction.REDIRECT);
    const out = parseIpv4Frame(r.data);
    expect([out.ttl, out.checksumValid]).toEqual([63, true]);
    expect(counted("ingress", Verdict.ROUTE_FAST)).toBe(1n);
    expect(counted("ingress", Verdict.ROUTE_STACK)).toBe(0n);
    expect(counted("ingress", Verdict.FORWARDED)).toBe(1n);
  });

  test("no route row (the row deleted, or a destination outside every pod CIDR): the host stack, untouched, counted", () => {
    maps.routes.delete(REMOTE_PREFIX);
    for (const dst of [REMOTE_POD, "192.0.2.7"]) {
      const packet = fromPodA(dst);
      const r = testRun(dp.programs.lxc, packet);
      expect(r.retval).toBe(TcAction.OK);
      expect(r.data).toEqual(packet);
    }
    expect(counted("ingress", Verdict.ROUTE_STACK)).toBe(2n);
    expect(counted("ingress", Verdict.ROUTE_FAST)).toBe(0n);
    expect(counted("ingress", Verdict.PASSED)).toBe(2n);
  });

  test("a TTL that would reach zero is dropped, not sent", () => {
    const r = testRun(dp.programs.lxc, icmpEcho({ srcMac: POD_A.mac, dstMac: "02:00:00:00:00:fe", src: POD_A.ip, dst: REMOTE_POD, ttl: 1 }));
    expect(r.retval).toBe(TcAction.SHOT);
    expect(maps.metrics.get({ id: LOOPBACK, direction: "ingress", reason: DropReason.TTL_EXCEEDED }).packets).toBe(1n);
  });

  test("vxlan mode ignores the route rows: the tunnel (or the stack) as before", () => {
    maps.config.set({ mode: "vxlan", vni: 42, vxlanIfindex: 4343, hostIfindex: 4444, gateway: "10.252.1.254" });
    expect(testRun(dp.programs.lxc, fromPodA(REMOTE_POD)).retval).toBe(TcAction.OK); // no tunnel entry: stack
    expect(counted("ingress", Verdict.ROUTE_FAST) + counted("ingress", Verdict.ROUTE_STACK)).toBe(0n);
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
    expect(maps.metrics.get({ id: LOOPBACK, direction: "ingress", reason: DropReason.POLICY_DENIED }).packets).toBe(1n);
    expect(counted("ingress", Verdict.PEER)).toBe(0n);
  });
});
