// The pure parts of bench/peers.ts (bpfnet against flannel): reading flannel's subnet.env, the
// configurations handed to flanneld and to the bridge plugin, and the goals' verdicts.
import { flannelCniConfig, flannelNetworkConfig, networkOf, parseSubnetEnv } from "../../bench/lib/flannel";
import { PeerSide, peersMissed, peersTable } from "../../bench/lib/peersReport";

const SUBNET_ENV = "FLANNEL_NETWORK=10.200.64.0/18\nFLANNEL_SUBNET=10.200.91.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n";

describe("flannel's files", () => {
  test("subnet.env is read field by field; incomplete or malformed files are not ready yet", () => {
    expect(parseSubnetEnv(SUBNET_ENV)).toEqual({ network: "10.200.64.0/18", subnet: "10.200.91.1/24", mtu: 1450, ipMasq: false });
    expect(parseSubnetEnv("FLANNEL_NETWORK=10.1.0.0/16\nFLANNEL_SUBNET=10.1.2.1/24\n")).toBeUndefined();
    expect(parseSubnetEnv(SUBNET_ENV.replace("1450", "15x0"))).toBeUndefined();
    expect(parseSubnetEnv("")).toBeUndefined();
  });

  test("the plugin's range is FLANNEL_SUBNET as a network, as flannel's plugin parses it", () => {
    expect(networkOf("10.200.91.1/24")).toBe("10.200.91.0/24");
    expect(networkOf("10.200.127.255/18")).toBe("10.200.64.0/18");
    expect(networkOf("192.168.1.77/32")).toBe("192.168.1.77/32");
    expect(networkOf("255.255.255.255/0")).toBe("0.0.0.0/0");
  });

  test("hostile subnet.env values never reach the bridge configuration", () => {
    for (const bad of ["10.1.2.1/24; rm -rf /", "$(reboot)/24", "`id`", "10.1.2.1/24\nFOO=1", "../../etc/passwd", "'10.1.2.1/24'", "10.1.2.300/24", "10.1.2.1/33"]) {
      const env = { network: "10.1.0.0/16", subnet: bad, mtu: 1450, ipMasq: false };
      expect(() => flannelCniConfig(env, "/tmp/ipam")).toThrow(/not an IPv4 CIDR/);
    }
  });

  test("the bridge configuration is the one flannel's plugin delegates: cni0 gateway, host-local, route to the network, MTU, no masquerading", () => {
    const conf = JSON.parse(flannelCniConfig(parseSubnetEnv(SUBNET_ENV)!, "/run/x/ipam")) as Record<string, unknown>;
    expect(conf).toMatchObject({ type: "bridge", bridge: "cni0", isGateway: true, ipMasq: false, mtu: 1450 });
    expect(conf.ipam).toEqual({ type: "host-local", ranges: [[{ subnet: "10.200.91.0/24" }]], routes: [{ dst: "10.200.64.0/18" }], dataDir: "/run/x/ipam" });
  });

  test("flanneld's network config per backend", () => {
    expect(JSON.parse(flannelNetworkConfig("10.9.64.0/18", "vxlan", 4789))).toEqual({ Network: "10.9.64.0/18", SubnetLen: 24, Backend: { Type: "vxlan", Port: 4789 } });
    expect(JSON.parse(flannelNetworkConfig("10.9.64.0/18", "host-gw", 4789))).toEqual({ Network: "10.9.64.0/18", SubnetLen: 24, Backend: { Type: "host-gw" } });
  });
});

describe("goals: bpfnet at least as good as flannel on every figure", () => {
  const side = (gbps: number, rtt: number, join: number, add: number): PeerSide => ({
    throughput: [gbps, gbps, gbps].map((g) => ({ gbps: g, retransmits: 0, senderCpu: 50, receiverCpu: 50 })),
    rr: [rtt, rtt, rtt * 2],
    ping: [rtt / 1000, rtt / 1000],
    pingFast: [0.01],
    add: [add, add],
    addFailures: 0,
    join: [join],
    joinAfterReady: [join / 2],
    joinFailures: 0,
  });

  test("better or equal everywhere: nothing missed, every goal row says met", () => {
    const b = side(11, 80, 100, 5);
    expect(peersMissed("vxlan", b, side(10, 90, 200, 30))).toEqual([]);
    expect(peersMissed("vxlan", b, b)).toEqual([]);
    const table = peersTable(b, side(10, 90, 200, 30));
    expect(table.match(/\| met /g)).toHaveLength(6);
    expect(table).not.toContain("missed");
  });

  test("each worse figure is named once, lower throughput included", () => {
    const missed = peersMissed("l3", side(9, 100, 900, 5), side(10, 90, 100, 30));
    expect(missed.map((m) => m.split(":")[1].trim())).toEqual([
      "TCP throughput, iperf3 median of 3",
      "TCP request/response p50 (3 RT)",
      "TCP request/response mean",
      "idle ping p50, one every 10 ms (2)",
      "new host joins → every host answers its container, median of 1",
    ]);
    expect(missed.every((m) => m.startsWith("l3: "))).toBe(true);
  });

  test("no samples or failed adds and joins count as missed", () => {
    const b = { ...side(11, 80, 100, 5), join: [], joinFailures: 1 };
    const missed = peersMissed("vxlan", b, side(10, 90, 200, 30));
    expect(missed.some((m) => m.includes("new host joins"))).toBe(true);
    expect(missed.some((m) => m.includes("bpfnet: 0 endpoint adds and 1 joins never answered"))).toBe(true);
  });
});
