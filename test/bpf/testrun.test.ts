/**
 * The three programs on crafted frames through BPF_PROG_TEST_RUN, with the
 * real maps pinned in a private bpffs: verdicts, rewritten packets, counters.
 */
import { readdirSync, readFileSync } from "fs";
import {
  BpfObject,
  DatapathMaps,
  DatapathObjects,
  DropReason,
  TcAction,
  testRun,
  Verdict,
} from "../../bpf";
import type { BpfProgram, Direction, Endpoint } from "../../bpf";
import { TempBpffs } from "./support/bpffs";
import { loadTestDatapath, TestDatapath, tunnelCb as tunnelCbFor } from "./support/datapath";
import { arpRequest, icmpEcho, parseIpv4Frame, udp } from "./support/packets";

const GATEWAY_MAC = "02:00:00:00:00:fe"; // what containers address frames to
const LOOPBACK = 1; // test runs see the packet on lo unless told otherwise
const POD_A = { ip: "10.251.1.1", mac: "02:00:00:00:01:01" };
/** POD_A as an endpoint of this host: its veth is where test runs see packets (lo). */
const POD_A_ENDPOINT: Endpoint = { ifindex: LOOPBACK, endpointId: 6, mac: POD_A.mac, nodeMac: "0a:00:00:00:01:01" };
const POD_B_IP = "10.251.1.2";
const POD_B: Endpoint = {
  ifindex: 4242, // test runs never really redirect, so any ifindex works
  endpointId: 7,
  mac: "02:00:00:00:01:02",
  nodeMac: "0a:00:00:00:01:02",
};
const REMOTE_POD = "10.251.128.5"; // in another host's prefix
const REMOTE_PREFIX = "10.251.128.0/24";
const LOCAL_GATEWAY = "10.251.1.254"; // this host's gateway address (on bpfnet_host)
const VNI = 42;
const PEER_UNDERLAY = "192.0.2.10"; // the member host owning REMOTE_PREFIX
const STRANGER_UNDERLAY = "192.0.2.66"; // on the underlay, not a member

const tunnelCb = (remote: string, vni = VNI) => tunnelCbFor(remote, vni);

let t: TestDatapath;
let bpffs: TempBpffs;
let dp: DatapathObjects;
let maps: DatapathMaps;
let overlayTest: BpfObject;

beforeAll(() => {
  t = loadTestDatapath();
  ({ bpffs, dp, maps, overlayTest } = t);
});

afterAll(() => t?.close());

beforeEach(() => {
  for (const [ip] of maps.endpoints.entries()) maps.endpoints.delete(ip);
  for (const [cidr] of maps.tunnel.entries()) maps.tunnel.delete(cidr);
  for (const [ip] of maps.peers.entries()) maps.peers.delete(ip);
  maps.config.set({ mode: "vxlan", vni: VNI, vxlanIfindex: 4343, hostIfindex: 4444, gateway: LOCAL_GATEWAY });
  maps.endpoints.set(POD_A.ip, POD_A_ENDPOINT);
  maps.endpoints.set(POD_B_IP, POD_B);
  maps.tunnel.set(REMOTE_PREFIX, { remote: PEER_UNDERLAY });
  maps.peers.set(PEER_UNDERLAY);
  maps.metrics.clear();
});

function counted(direction: Direction, reason: number) {
  return maps.metrics.get({ id: LOOPBACK, direction, reason });
}

function fromPodA(dst: string, ttl = 64): Buffer {
  return icmpEcho({ srcMac: POD_A.mac, dstMac: GATEWAY_MAC, src: POD_A.ip, dst, ttl });
}

describe("pinned maps", () => {
  test("all three objects share one instance of each map, pinned under the pin root", () => {
    for (const name of ["bpfnet_endpoints", "bpfnet_tunnel", "bpfnet_peers", "bpfnet_ipcache", "bpfnet_policy", "bpfnet_ct", "bpfnet_verdicts", "bpfnet_config", "bpfnet_metrics"]) {
      const ids = [dp.lxc, dp.overlay, dp.host].map((obj) => {
        const map = obj.map(name);
        try {
          return map.info.id;
        } finally {
          map.close();
        }
      });
      expect(new Set(ids).size).toBe(1);
      expect(dp.lxc.maps().find((m) => m.name === name)?.pinPath).toBe(`${bpffs.dir}/${name}`);
    }
  });

  test("a later load reuses the pinned maps and sees their contents", () => {
    const again = BpfObject.load(dp.lxc.path, { pinRoot: bpffs.dir });
    try {
      const map = again.map("bpfnet_endpoints");
      try {
        expect(map.info.id).toBe(maps.endpoints.raw.info.id);
      } finally {
        map.close();
      }
      const result = testRun(again.program("from_container"), fromPodA(POD_B_IP));
      expect(result.retval).toBe(TcAction.REDIRECT);
    } finally {
      again.close();
    }
  });

  test("the test build of bpf_overlay shares the pinned maps", () => {
    const peers = overlayTest.map("bpfnet_peers");
    try {
      expect(peers.info.id).toBe(maps.peers.raw.info.id);
    } finally {
      peers.close();
    }
  });

  test("typed maps round-trip their entries", () => {
    expect(maps.endpoints.get(POD_B_IP)).toEqual({ ...POD_B, flags: 0 });
    expect(maps.endpoints.entries().map(([ip]) => ip).sort()).toEqual([POD_A.ip, POD_B_IP]);
    expect(maps.peers.entries()).toEqual([[PEER_UNDERLAY, { flags: 0 }]]);
    expect(maps.tunnel.entries()).toEqual([[REMOTE_PREFIX, { remote: "192.0.2.10", flags: 0 }]]);
    expect(maps.config.get()).toEqual({ mode: "vxlan", vni: 42, vxlanIfindex: 4343, hostIfindex: 4444, gateway: LOCAL_GATEWAY, flags: 0, ctLifetimeTcp: 0, ctLifetimeShort: 0 });
    expect(maps.endpoints.delete(POD_B_IP)).toBe(true);
    expect(maps.endpoints.delete(POD_B_IP)).toBe(false);
    expect(maps.endpoints.get(POD_B_IP)).toBeUndefined();
  });

  test("raw map calls check buffer sizes against the map", () => {
    expect(() => maps.endpoints.raw.lookup(Buffer.alloc(3))).toThrow(RangeError);
    expect(() => maps.endpoints.raw.update(Buffer.alloc(4), Buffer.alloc(31))).toThrow(RangeError);
    expect(maps.metrics.raw.info.valueBufferSize).toBe(16 * maps.metrics.raw.info.cpus);
  });
});

describe("bpf_lxc (from_container)", () => {
  let prog: BpfProgram;
  beforeAll(() => (prog = dp.programs.lxc));

  test("local endpoint: redirect, MACs rewritten, TTL decremented with a valid checksum", () => {
    const packet = fromPodA(POD_B_IP);
    const result = testRun(prog, packet);
    expect(result.retval).toBe(TcAction.REDIRECT);

    const out = parseIpv4Frame(result.data);
    expect(out.dstMac).toBe(POD_B.mac);
    expect(out.srcMac).toBe(POD_B.nodeMac);
    expect(out.ttl).toBe(63);
    expect(out.checksumValid).toBe(true);
    expect(result.data.length).toBe(packet.length);
    expect(out.l4).toEqual(parseIpv4Frame(packet).l4);

    expect(counted("ingress", Verdict.FORWARDED)).toEqual({ packets: 1n, bytes: BigInt(packet.length) });
  });

  test("UDP to a local endpoint is delivered the same way", () => {
    const packet = udp({ srcMac: POD_A.mac, dstMac: GATEWAY_MAC, src: POD_A.ip, dst: POD_B_IP, ttl: 2 }, 1000, 53, Buffer.from("hi"));
    const result = testRun(prog, packet);
    expect(result.retval).toBe(TcAction.REDIRECT);
    const out = parseIpv4Frame(result.data);
    expect([out.dstMac, out.ttl, out.checksumValid]).toEqual([POD_B.mac, 1, true]);
  });

  test("TTL that would expire is dropped and counted", () => {
    const result = testRun(prog, fromPodA(POD_B_IP, 1));
    expect(result.retval).toBe(TcAction.SHOT);
    expect(counted("ingress", DropReason.TTL_EXCEEDED).packets).toBe(1n);
    expect(counted("ingress", Verdict.FORWARDED).packets).toBe(0n);
  });

  test("another host's pod in vxlan mode: redirect into the tunnel, packet untouched", () => {
    const packet = fromPodA(REMOTE_POD);
    const result = testRun(prog, packet);
    expect(result.retval).toBe(TcAction.REDIRECT);
    expect(result.data).toEqual(packet);
    expect(counted("ingress", Verdict.FORWARDED).packets).toBe(1n);
  });

  test("a covering prefix routes every address in it; others go to the stack", () => {
    maps.tunnel.set("10.251.0.0/16", { remote: "192.0.2.20" });
    expect(maps.tunnel.get("10.251.0.0/16")).toEqual({ remote: "192.0.2.20", flags: 0 });
    expect(testRun(prog, fromPodA("10.251.7.7")).retval).toBe(TcAction.REDIRECT);
    expect(testRun(prog, fromPodA("10.252.0.1")).retval).toBe(TcAction.OK);
  });

  test("another host's pod in l3 mode goes to the host stack", () => {
    maps.config.set({ mode: "l3", vni: 0, vxlanIfindex: 0, hostIfindex: 4444 });
    const result = testRun(prog, fromPodA(REMOTE_POD));
    expect(result.retval).toBe(TcAction.OK);
    expect(counted("ingress", Verdict.PASSED).packets).toBe(1n);
  });

  test("vxlan mode without a VXLAN device drops with its own reason", () => {
    // The encoder refuses this config, so write the raw bytes the way a buggy agent could.
    const slot = Buffer.alloc(4);
    const cfg = Buffer.alloc(32);
    cfg.writeUInt32LE(1, 0); // BPFNET_MODE_VXLAN, vxlan_ifindex left 0
    maps.config.raw.update(slot, cfg);
    expect(testRun(prog, fromPodA(REMOTE_POD)).retval).toBe(TcAction.SHOT);
    expect(counted("ingress", DropReason.NO_TUNNEL_DEVICE).packets).toBe(1n);
  });

  test("its own host's gateway address goes to the host stack", () => {
    const result = testRun(prog, fromPodA(LOCAL_GATEWAY));
    expect(result.retval).toBe(TcAction.OK);
    expect(counted("ingress", Verdict.PASSED).packets).toBe(1n);
  });

  test("unknown destination goes to the host stack", () => {
    const result = testRun(prog, fromPodA("198.51.100.1"));
    expect(result.retval).toBe(TcAction.OK);
    expect(counted("ingress", Verdict.PASSED).packets).toBe(1n);
  });

  test("ARP goes to the host stack unchanged", () => {
    const arp = arpRequest(POD_A.mac, POD_A.ip, "10.251.1.254");
    const result = testRun(prog, arp);
    expect(result.retval).toBe(TcAction.OK);
    expect(result.data).toEqual(arp);
    expect(counted("ingress", Verdict.PASSED)).toEqual({ packets: 1n, bytes: BigInt(arp.length) });
  });

  test("a malformed IPv4 header is dropped as invalid", () => {
    // (The kernel's test run refuses truncated IPv4 frames itself, so use a bad IHL.)
    const bad = fromPodA(POD_B_IP);
    bad[14] = 0x44; // version 4, IHL 4: shorter than the minimum header
    expect(testRun(prog, bad).retval).toBe(TcAction.SHOT);
    expect(counted("ingress", DropReason.INVALID).packets).toBe(1n);
    expect(counted("ingress", Verdict.FORWARDED).packets).toBe(0n);
  });

  test("counters add up packets and bytes over repeated runs", () => {
    const packet = fromPodA(POD_B_IP);
    testRun(prog, packet, { repeat: 5 });
    testRun(prog, packet);
    expect(counted("ingress", Verdict.FORWARDED)).toEqual({ packets: 6n, bytes: BigInt(6 * packet.length) });
    const entry = maps.metrics.entries().find((e) => e.reason === Verdict.FORWARDED);
    expect(entry).toMatchObject({ id: LOOPBACK, direction: "ingress", packets: 6n });
  });
});

describe("bpf_overlay (from_overlay)", () => {
  // From the member host with the network's VNI unless a test says otherwise.
  let testProg: BpfProgram;
  beforeAll(() => (testProg = overlayTest.program("from_overlay")));
  const run = (packet: Buffer, remote = PEER_UNDERLAY, vni = VNI) => testRun(testProg, packet, { cb: tunnelCb(remote, vni) });
  const fromRemotePod = (dst: string, src = REMOTE_POD) => icmpEcho({ srcMac: "0a:0a:0a:0a:0a:0a", dstMac: "0b:0b:0b:0b:0b:0b", src, dst });

  test("local endpoint: redirect with MAC rewrite and TTL decrement", () => {
    const packet = icmpEcho({ srcMac: "0a:0a:0a:0a:0a:0a", dstMac: "0b:0b:0b:0b:0b:0b", src: REMOTE_POD, dst: POD_B_IP });
    const result = run(packet);
    expect(result.retval).toBe(TcAction.REDIRECT);
    const out = parseIpv4Frame(result.data);
    expect([out.dstMac, out.srcMac, out.ttl, out.checksumValid]).toEqual([POD_B.mac, POD_B.nodeMac, 63, true]);
  });

  test("unknown endpoint: dropped, and the drop counted under its reason", () => {
    const packet = icmpEcho({ srcMac: "0a:0a:0a:0a:0a:0a", dstMac: "0b:0b:0b:0b:0b:0b", src: REMOTE_POD, dst: "10.251.1.99" });
    const before = counted("ingress", DropReason.UNKNOWN_ENDPOINT);
    const result = run(packet);
    expect(result.retval).toBe(TcAction.SHOT);
    expect(counted("ingress", DropReason.UNKNOWN_ENDPOINT)).toEqual({
      packets: before.packets + 1n,
      bytes: before.bytes + BigInt(packet.length),
    });
    expect(counted("ingress", Verdict.FORWARDED).packets).toBe(0n);
  });

  test("this host's gateway address (a reply to a host process): to the host stack, untouched", () => {
    const packet = icmpEcho({ srcMac: "0a:0a:0a:0a:0a:0a", dstMac: "0b:0b:0b:0b:0b:0b", src: REMOTE_POD, dst: LOCAL_GATEWAY, ttl: 63 });
    const result = run(packet);
    expect(result.retval).toBe(TcAction.OK);
    expect(result.data).toEqual(packet); // no TTL decrement, no MAC rewrite: the stack is the last hop
    expect(counted("ingress", Verdict.PASSED)).toEqual({ packets: 1n, bytes: BigInt(packet.length) });
    expect(counted("ingress", DropReason.UNKNOWN_ENDPOINT).packets).toBe(0n);
    expect(counted("ingress", Verdict.FORWARDED).packets).toBe(0n);
  });

  test("another host's gateway, or any address with no gateway configured, is still an unknown endpoint", () => {
    const to = (dst: string) => icmpEcho({ srcMac: "0a:0a:0a:0a:0a:0a", dstMac: "0b:0b:0b:0b:0b:0b", src: REMOTE_POD, dst });
    expect(run(to("10.251.128.1")).retval).toBe(TcAction.SHOT);
    maps.config.set({ mode: "vxlan", vni: 42, vxlanIfindex: 4343, hostIfindex: 4444 }); // gateway unset (0.0.0.0)
    expect(maps.config.get().gateway).toBe("0.0.0.0");
    expect(run(to(LOCAL_GATEWAY)).retval).toBe(TcAction.SHOT);
    expect(run(to("0.0.0.0")).retval).toBe(TcAction.SHOT);
    expect(counted("ingress", DropReason.UNKNOWN_ENDPOINT).packets).toBe(3n);
    expect(counted("ingress", Verdict.PASSED).packets).toBe(0n);
  });

  test("non-IPv4 is passed to the stack", () => {
    expect(run(arpRequest("0a:0a:0a:0a:0a:0a", "10.251.128.5", POD_B_IP)).retval).toBe(TcAction.OK);
  });
});

describe("a closed overlay: only member hosts, only the network's VNI", () => {
  let testProg: BpfProgram;
  beforeAll(() => (testProg = overlayTest.program("from_overlay")));
  const toPodB = () => icmpEcho({ srcMac: "0a:0a:0a:0a:0a:0a", dstMac: "0b:0b:0b:0b:0b:0b", src: REMOTE_POD, dst: POD_B_IP });
  const run = (packet: Buffer, remote: string, vni = VNI) => testRun(testProg, packet, { cb: tunnelCb(remote, vni) });

  test("a non-member sending with the right VNI to a local pod: dropped as unknown-peer", () => {
    const packet = toPodB();
    const result = run(packet, STRANGER_UNDERLAY);
    expect(result.retval).toBe(TcAction.SHOT);
    expect(result.data).toEqual(packet); // not rewritten: dropped before delivery
    expect(counted("ingress", DropReason.UNKNOWN_PEER)).toEqual({ packets: 1n, bytes: BigInt(packet.length) });
    expect(counted("ingress", Verdict.FORWARDED).packets).toBe(0n);
    // Non-IPv4 from a stranger is not handed to the stack either.
    expect(run(arpRequest("0a:0a:0a:0a:0a:0a", REMOTE_POD, POD_B_IP), STRANGER_UNDERLAY).retval).toBe(TcAction.SHOT);
    expect(counted("ingress", DropReason.UNKNOWN_PEER).packets).toBe(2n);
  });

  test("a member with another VNI: dropped as bad-vni", () => {
    for (const vni of [VNI + 1, 0, (1 << 24) - 1]) expect(run(toPodB(), PEER_UNDERLAY, vni).retval).toBe(TcAction.SHOT);
    expect(counted("ingress", DropReason.BAD_VNI).packets).toBe(3n);
    expect(counted("ingress", Verdict.FORWARDED).packets).toBe(0n);
    expect(run(toPodB(), PEER_UNDERLAY, VNI).retval).toBe(TcAction.REDIRECT);
  });

  test("membership follows the peer map: a removed host is refused, an added one admitted", () => {
    expect(run(toPodB(), PEER_UNDERLAY).retval).toBe(TcAction.REDIRECT);
    expect(maps.peers.delete(PEER_UNDERLAY)).toBe(true);
    expect(run(toPodB(), PEER_UNDERLAY).retval).toBe(TcAction.SHOT);
    maps.peers.set(STRANGER_UNDERLAY);
    expect(run(toPodB(), STRANGER_UNDERLAY).retval).toBe(TcAction.REDIRECT);
    expect(counted("ingress", DropReason.UNKNOWN_PEER).packets).toBe(1n);
    expect(counted("ingress", Verdict.FORWARDED).packets).toBe(2n);
  });

  test("no tunnel metadata at all: dropped as no-tunnel-info (the production build in a test run)", () => {
    const result = testRun(dp.programs.overlay, toPodB());
    expect(result.retval).toBe(TcAction.SHOT);
    expect(counted("ingress", DropReason.NO_TUNNEL_INFO).packets).toBe(1n);
    expect(testRun(testProg, toPodB(), { cb: [0, 0, 0] }).retval).toBe(TcAction.SHOT);
    expect(counted("ingress", DropReason.NO_TUNNEL_INFO).packets).toBe(2n);
  });
});

describe("anti-spoofing at bpf_lxc", () => {
  let prog: BpfProgram;
  beforeAll(() => (prog = dp.programs.lxc));
  const from = (src: string, dst = POD_B_IP) => icmpEcho({ srcMac: POD_A.mac, dstMac: GATEWAY_MAC, src, dst });

  test("a container sending with another endpoint's address is dropped as spoofed-source", () => {
    // POD_B's veth is ifindex 4242; this packet arrives on POD_A's (lo).
    for (const dst of [POD_B_IP, REMOTE_POD, "10.252.0.1", LOCAL_GATEWAY]) {
      expect(testRun(prog, from(POD_B_IP, dst)).retval).toBe(TcAction.SHOT);
    }
    expect(counted("ingress", DropReason.SPOOFED_SOURCE).packets).toBe(4n);
    expect(counted("ingress", Verdict.FORWARDED).packets).toBe(0n);
    expect(counted("ingress", Verdict.PASSED).packets).toBe(0n);
  });

  test("an address that is no endpoint at all, or 0.0.0.0, is dropped too", () => {
    expect(testRun(prog, from("10.251.1.77")).retval).toBe(TcAction.SHOT);
    expect(testRun(prog, from("0.0.0.0")).retval).toBe(TcAction.SHOT);
    expect(testRun(prog, from("192.0.2.10", REMOTE_POD)).retval).toBe(TcAction.SHOT); // an underlay address
    expect(counted("ingress", DropReason.SPOOFED_SOURCE).packets).toBe(3n);
  });

  test("the endpoint's own address from its own veth passes; the same address from another veth does not", () => {
    expect(testRun(prog, from(POD_A.ip)).retval).toBe(TcAction.REDIRECT);
    maps.endpoints.set(POD_A.ip, { ...POD_A_ENDPOINT, ifindex: 4343 }); // the endpoint moved to another veth
    expect(testRun(prog, from(POD_A.ip)).retval).toBe(TcAction.SHOT);
    expect(counted("ingress", DropReason.SPOOFED_SOURCE).packets).toBe(1n);
    expect(counted("ingress", Verdict.FORWARDED).packets).toBe(1n);
  });

  test("non-IPv4 (ARP for the gateway) still goes to the host stack", () => {
    expect(testRun(prog, arpRequest(POD_A.mac, POD_B_IP, LOCAL_GATEWAY)).retval).toBe(TcAction.OK);
  });
});

describe("bpf_host (from_host, tc egress)", () => {
  let prog: BpfProgram;
  beforeAll(() => (prog = dp.programs.host));
  const fromHost = (dst: string) =>
    icmpEcho({ srcMac: "0c:00:00:00:00:01", dstMac: "0c:00:00:00:00:01", src: "10.251.255.1", dst, ttl: 64 });

  test("local endpoint: redirect with MAC rewrite, TTL left to the kernel's routing", () => {
    const result = testRun(prog, fromHost(POD_B_IP));
    expect(result.retval).toBe(TcAction.REDIRECT);
    const out = parseIpv4Frame(result.data);
    expect([out.dstMac, out.srcMac, out.ttl, out.checksumValid]).toEqual([POD_B.mac, POD_B.nodeMac, 64, true]);
    expect(counted("egress", Verdict.FORWARDED).packets).toBe(1n);
  });

  test("another host's pod in vxlan mode goes into the tunnel", () => {
    expect(testRun(prog, fromHost(REMOTE_POD)).retval).toBe(TcAction.REDIRECT);
  });

  test("no endpoint and no tunnel: dropped as no-route (also in l3 mode)", () => {
    expect(testRun(prog, fromHost("10.251.200.1")).retval).toBe(TcAction.SHOT);
    maps.config.set({ mode: "l3", vni: 0, vxlanIfindex: 0, hostIfindex: 4444 });
    expect(testRun(prog, fromHost(REMOTE_POD)).retval).toBe(TcAction.SHOT);
    expect(counted("egress", DropReason.NO_ROUTE).packets).toBe(2n);
    expect(testRun(prog, fromHost(POD_B_IP)).retval).toBe(TcAction.REDIRECT);
  });
});

describe("testRun options", () => {
  test("ifindex makes the packet appear on that device, which keys the counters", () => {
    // Any existing device will do: a test run transmits nothing.
    const devices = readdirSync("/sys/class/net").filter((d) => d !== "lo");
    const dev = devices.includes("eth0") ? "eth0" : devices[0];
    expect(dev).toBeDefined();
    const ifindex = Number(readFileSync(`/sys/class/net/${dev}/ifindex`, "utf8"));

    const packet = fromPodA(POD_B_IP);
    maps.endpoints.set(POD_A.ip, { ...POD_A_ENDPOINT, ifindex }); // POD_A's veth is now that device
    expect(testRun(dp.programs.lxc, packet, { ifindex }).retval).toBe(TcAction.REDIRECT);
    expect(maps.metrics.get({ id: ifindex, direction: "ingress", reason: Verdict.FORWARDED }).packets).toBe(1n);
    expect(counted("ingress", Verdict.FORWARDED).packets).toBe(0n);
    expect(() => testRun(dp.programs.lxc, packet, { ifindex: 0x7ffffff0 })).toThrow(expect.objectContaining({ code: "ENODEV" }));
  });

  test("cb presets skb->cb; bad words are refused before the kernel sees them", () => {
    const toPodB = icmpEcho({ srcMac: "0a:0a:0a:0a:0a:0a", dstMac: "0b:0b:0b:0b:0b:0b", src: REMOTE_POD, dst: POD_B_IP });
    expect(testRun(overlayTest.program("from_overlay"), toPodB, { cb: tunnelCb(PEER_UNDERLAY) }).retval).toBe(TcAction.REDIRECT);
    expect(() => testRun(dp.programs.lxc, toPodB, { cb: [1, 2, 3, 4, 5, 6] })).toThrow(RangeError);
    expect(() => testRun(dp.programs.lxc, toPodB, { cb: [-1] })).toThrow(RangeError);
    expect(() => testRun(dp.programs.lxc, toPodB, { cb: [2 ** 32] })).toThrow(RangeError);
  });

  test("reports a duration", () => {
    expect(testRun(dp.programs.lxc, fromPodA(POD_B_IP), { repeat: 100 }).durationNs).toBeGreaterThan(0);
  });
});
