// A namespace standing in for an l3 host's underlay, for BPF_PROG_TEST_RUN runs whose
// bpf_fib_lookup must find a route: ul0 (10.253.0.1/24, its peer ul1) with a resolved next hop
// (NEXT_HOP at ROUTER_MAC) for REMOTE_PREFIX, forwarding on. Used by test/bpf/pathCounters.test.ts
// and bench/lxcCost.ts.
import { execInNetns, ip, linkInfo, LinkInfo } from "./netns";
import { addNetns } from "./topology";

export const REMOTE_PREFIX = "10.252.128.0/24";
export const REMOTE_POD = "10.252.128.5";
export const NEXT_HOP = "10.253.0.2";
export const ROUTER_MAC = "02:00:00:00:0f:01";

/** Makes the namespace (a leftover of that name is replaced); returns ul0, the underlay device. */
export function addL3Underlay(netns: string): LinkInfo {
  addNetns(netns);
  ip("-n", netns, "link", "add", "ul0", "type", "veth", "peer", "name", "ul1");
  for (const dev of ["ul0", "ul1"]) ip("-n", netns, "link", "set", dev, "up");
  ip("-n", netns, "addr", "add", "10.253.0.1/24", "dev", "ul0");
  ip("-n", netns, "route", "add", REMOTE_PREFIX, "via", NEXT_HOP, "dev", "ul0");
  ip("-n", netns, "neigh", "replace", NEXT_HOP, "lladdr", ROUTER_MAC, "dev", "ul0", "nud", "permanent");
  if (execInNetns(netns, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]) !== 0) throw new Error(`cannot turn forwarding on in ${netns}`);
  return linkInfo(netns, "ul0");
}
