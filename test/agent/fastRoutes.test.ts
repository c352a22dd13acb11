// The l3 fast path's route rows (pure): which pod CIDRs bpf_lxc may send straight out.
import { desiredRoutes } from "../../node-agent/daemon/fastRoutes";

const peers = [
  { host: "h2", podCidr: "10.1.2.0/24", underlayIp: "10.0.2.1" },
  { host: "h3", podCidr: "10.1.3.0/24", underlayIp: "10.0.3.1" },
];

describe("fast path routes", () => {
  test("l3: every peer's pod CIDR → the underlay device", () => {
    expect(desiredRoutes("l3", peers, 7)).toEqual(new Map([["10.1.2.0/24", 7], ["10.1.3.0/24", 7]]));
  });

  test("none in vxlan mode, without peers, or without an underlay device", () => {
    expect(desiredRoutes("vxlan", peers, 7).size).toBe(0);
    expect(desiredRoutes("l3", [], 7).size).toBe(0);
    expect(desiredRoutes("l3", peers, 0).size).toBe(0);
  });
});
