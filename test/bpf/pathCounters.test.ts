/**
 * One counter update per packet on the paths (bpf/lib/metrics.h path_redirect/path_pass): the
 * datapath counts a fast-path or peer-delivered packet under its path reason only, and readers
 * (MetricsMap, bpf/pathCounters.ts) add it to the verdict it implies, so every counter reads as
 * before. Pure rules first, then the real programs on crafted frames (BPF_PROG_TEST_RUN in a
 * namespace of its own, whose FIB bpf_fib_lookup consults), checking the raw map's rows.
 */
import { join } from "path";
import { BpfMap, TcAction, testRun, Verdict } from "../../bpf";
import { decodeMetricsKey, sumPerCpuCounters } from "../../bpf/abi";
import type { Counters, MetricsKey } from "../../bpf";
import { countedAs, PATH_VERDICT, withPathTotals } from "../../bpf/pathCounters";
import { loadTestDatapath, TestDatapath } from "./support/datapath";
import { addL3Underlay, REMOTE_POD, REMOTE_PREFIX, ROUTER_MAC } from "./support/l3Underlay";
import { ip } from "./support/netns";
import { icmpEcho, icmpEchoReply } from "./support/packets";
import { deleteNetns } from "./support/topology";

const row = (id: number, direction: "ingress" | "egress", reason: number, packets: number, bytes = packets * 100) => ({
  id,
  direction,
  reason,
  packets: BigInt(packets),
  bytes: BigInt(bytes),
});
const sorted = (rows: (MetricsKey & Counters)[]) => [...rows].sort((a, b) => a.id - b.id || a.direction.localeCompare(b.direction) || a.reason - b.reason);

describe("path counters read as their verdicts (pure)", () => {
  test("each path stands in for the verdict its action is: redirects FORWARDED, the host stack PASSED", () => {
    expect([...PATH_VERDICT]).toEqual([
      [Verdict.ROUTE_FAST, Verdict.FORWARDED],
      [Verdict.ROUTE_NEIGH, Verdict.FORWARDED],
      [Verdict.PEER, Verdict.FORWARDED],
      [Verdict.ROUTE_STACK, Verdict.PASSED],
      [Verdict.ROUTE_FIB_STACK, Verdict.PASSED],
    ]);
    expect(countedAs(Verdict.FORWARDED).sort()).toEqual([Verdict.FORWARDED, Verdict.ROUTE_FAST, Verdict.PEER, Verdict.ROUTE_NEIGH].sort());
    expect(countedAs(Verdict.PASSED).sort()).toEqual([Verdict.PASSED, Verdict.ROUTE_STACK, Verdict.ROUTE_FIB_STACK].sort());
    expect(countedAs(Verdict.ROUTE_FAST)).toEqual([Verdict.ROUTE_FAST]);
    expect(countedAs(-130)).toEqual([-130]);
  });

  test("totals add paths of the same device and direction only; path rows stay; a verdict row appears for paths alone", () => {
    const raw = [
      row(4, "ingress", Verdict.FORWARDED, 2),
      row(4, "ingress", Verdict.ROUTE_FAST, 5),
      row(4, "ingress", Verdict.ROUTE_NEIGH, 1),
      row(4, "egress", Verdict.PEER, 7), // another direction: its own FORWARDED row
      row(5, "ingress", Verdict.ROUTE_STACK, 3), // another device, PASSED only
      row(5, "ingress", Verdict.ROUTE_FIB_STACK, 1),
      row(5, "ingress", -130, 9), // a drop: untouched
    ];
    expect(sorted(withPathTotals(raw))).toEqual(
      sorted([
        row(4, "ingress", Verdict.FORWARDED, 8, 800),
        row(4, "ingress", Verdict.ROUTE_FAST, 5),
        row(4, "ingress", Verdict.ROUTE_NEIGH, 1),
        row(4, "egress", Verdict.FORWARDED, 7, 700),
        row(4, "egress", Verdict.PEER, 7),
        row(5, "ingress", Verdict.PASSED, 4, 400),
        row(5, "ingress", Verdict.ROUTE_STACK, 3),
        row(5, "ingress", Verdict.ROUTE_FIB_STACK, 1),
        row(5, "ingress", -130, 9),
      ]),
    );
    expect(raw[0].packets).toBe(2n); // the input is not modified
  });
});

const NS = "bftpathcnt";
const LOOPBACK = 1;
const POD_A = { ip: "10.252.1.1", mac: "02:00:00:00:02:01" };

describe("the datapath updates one counter per packet on a path", () => {
  let t: TestDatapath;
  let raw: BpfMap;
  let underlayMac: string;
  /** The map's own rows (no totals added), summed over CPUs. */
  const rawRows = () => raw.keys().map((k) => ({ ...decodeMetricsKey(k), ...sumPerCpuCounters(raw.lookup(k)!) }));

  beforeAll(() => {
    t = loadTestDatapath();
    const underlay = addL3Underlay(NS);
    ip("-n", NS, "route", "add", "unreachable", "10.252.130.0/24");
    underlayMac = underlay.mac;
    t.maps.config.set({ mode: "l3", vni: 0, vxlanIfindex: 0, hostIfindex: 4444, gateway: "10.252.1.254" });
    t.maps.endpoints.set(POD_A.ip, { ifindex: LOOPBACK, endpointId: 16, mac: POD_A.mac, nodeMac: "0a:00:00:00:02:01" });
    for (const cidr of [REMOTE_PREFIX, "10.252.130.0/24"]) t.maps.routes.set(cidr, { ifindex: underlay.ifindex });
    raw = BpfMap.open(join(t.bpffs.dir, "bpfnet_metrics"));
  });

  afterAll(() => {
    raw?.close();
    deleteNetns(NS);
    t?.close();
  });

  beforeEach(() => t.maps.metrics.clear());

  const fromPodA = (dst: string) => icmpEcho({ srcMac: POD_A.mac, dstMac: "02:00:00:00:00:fe", src: POD_A.ip, dst, ttl: 64 });

  test.each([
    ["bpf_lxc, the FIB's next hop resolved", "lxc", () => fromPodA(REMOTE_POD), TcAction.REDIRECT, Verdict.ROUTE_FAST, Verdict.FORWARDED],
    ["bpf_lxc, no route row (the host stack)", "lxc", () => fromPodA("10.252.200.9"), TcAction.OK, Verdict.ROUTE_STACK, Verdict.PASSED],
    ["bpf_lxc, the FIB would not forward (the host stack)", "lxc", () => fromPodA("10.252.130.9"), TcAction.OK, Verdict.ROUTE_FIB_STACK, Verdict.PASSED],
    ["bpf_netdev, delivered by bpf_redirect_peer", "netdev", () => icmpEchoReply({ srcMac: ROUTER_MAC, dstMac: underlayMac, src: REMOTE_POD, dst: POD_A.ip, ttl: 62 }), TcAction.REDIRECT, Verdict.PEER, Verdict.FORWARDED],
  ] as const)("%s: one raw row (the path), read as the path and as the verdict", (_, prog, frame, action, path, verdict) => {
    const packet = frame();
    const r = testRun(t.dp.programs[prog], packet, { netns: NS });
    expect(r.retval).toBe(action);
    const one = { packets: 1n, bytes: BigInt(packet.length) };
    expect(rawRows()).toEqual([{ id: LOOPBACK, direction: "ingress", reason: path, ...one }]);
    expect(t.maps.metrics.get({ id: LOOPBACK, direction: "ingress", reason: path })).toEqual(one);
    expect(t.maps.metrics.get({ id: LOOPBACK, direction: "ingress", reason: verdict })).toEqual(one);
    expect(sorted(t.maps.metrics.entries())).toEqual(sorted([{ id: LOOPBACK, direction: "ingress", reason: path, ...one }, { id: LOOPBACK, direction: "ingress", reason: verdict, ...one }]));
  });

  test("a packet without a path (a local endpoint by bpf_redirect) is counted once, as FORWARDED, as before", () => {
    t.maps.endpoints.set("10.252.1.2", { ifindex: 4242, endpointId: 17, mac: "02:00:00:00:02:02", nodeMac: "0a:00:00:00:02:02" });
    try {
      const packet = fromPodA("10.252.1.2");
      expect(testRun(t.dp.programs.lxc, packet, { netns: NS }).retval).toBe(TcAction.REDIRECT);
      expect(rawRows()).toEqual([{ id: LOOPBACK, direction: "ingress", reason: Verdict.FORWARDED, packets: 1n, bytes: BigInt(packet.length) }]);
    } finally {
      t.maps.endpoints.delete("10.252.1.2");
    }
  });
});
