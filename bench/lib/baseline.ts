// The plain-kernel baseline, built beside bpfnet in the same lab hosts: container namespaces on
// veth pairs with static routes and permanent neighbour entries (the same container-side shape
// bpfnet gives its endpoints: a /32, the gateway on-link, the default route with the MTU),
// ip_forward on the hosts, and — in vxlan labs — a kernel VXLAN device per host with a static
// FDB and neighbour entry for the other host. No BPF program anywhere on that path.
import { run, tryRun } from "../../lab/sh";

export interface PlainContainer {
  /** Container namespace (bdpc…). */
  netns: string;
  ip: string;
  gateway: string;
  /** The lab host's namespace and the host end of the veth. */
  hostNetns: string;
  hostIfname: string;
}

const ipIn = (netns: string, ...args: string[]): string => run("ip", ["-n", netns, ...args]);
const sysctlIn = (netns: string, key: string, value: string): void => void run("ip", ["netns", "exec", netns, "sysctl", "-qw", `${key}=${value}`]);
const macOf = (netns: string, dev: string): string => {
  const m = /link\/ether ([0-9a-f:]{17})/.exec(ipIn(netns, "link", "show", "dev", dev));
  if (!m) throw new Error(`no MAC on ${dev} in ${netns}`);
  return m[1];
};

export function addNetns(name: string): void {
  if (!name.startsWith("bdpc")) throw new Error(`container namespace ${name} must start with bdpc`);
  tryRun("ip", ["netns", "del", name]);
  run("ip", ["netns", "add", name]);
}

/** A container namespace wired to `hostNetns` by a veth pair, plain routing only. */
export function addPlainContainer(o: { netns: string; hostNetns: string; hostIfname: string; ip: string; gateway: string; mtu: number }): PlainContainer {
  const mtu = String(o.mtu);
  const tmp = `${o.hostIfname}p`;
  addNetns(o.netns);
  tryRun("ip", ["-n", o.hostNetns, "link", "del", o.hostIfname]);
  ipIn(o.hostNetns, "link", "add", o.hostIfname, "mtu", mtu, "type", "veth", "peer", "name", tmp, "mtu", mtu);
  ipIn(o.hostNetns, "link", "set", tmp, "netns", o.netns);
  ipIn(o.netns, "link", "set", tmp, "name", "eth0");
  ipIn(o.netns, "link", "set", "lo", "up");
  ipIn(o.netns, "addr", "add", `${o.ip}/32`, "dev", "eth0");
  ipIn(o.netns, "link", "set", "eth0", "up");
  ipIn(o.hostNetns, "link", "set", o.hostIfname, "up");
  const hostMac = macOf(o.hostNetns, o.hostIfname);
  const podMac = macOf(o.netns, "eth0");
  ipIn(o.netns, "route", "replace", o.gateway, "dev", "eth0", "scope", "link");
  ipIn(o.netns, "route", "replace", "default", "via", o.gateway, "dev", "eth0", "mtu", mtu);
  ipIn(o.netns, "neigh", "replace", o.gateway, "lladdr", hostMac, "dev", "eth0", "nud", "permanent");
  ipIn(o.hostNetns, "route", "replace", `${o.ip}/32`, "dev", o.hostIfname);
  ipIn(o.hostNetns, "neigh", "replace", o.ip, "lladdr", podMac, "dev", o.hostIfname, "nud", "permanent");
  sysctlIn(o.hostNetns, "net.ipv4.ip_forward", "1");
  sysctlIn(o.hostNetns, `net.ipv4.conf.${o.hostIfname}.rp_filter`, "0");
  return { netns: o.netns, ip: o.ip, gateway: o.gateway, hostNetns: o.hostNetns, hostIfname: o.hostIfname };
}

export interface VxlanPeerPlan {
  hostNetns: string;
  underlayIp: string;
  /** This host's address on the overlay link, e.g. 10.212.70.1 (/24). */
  linkIp: string;
  /** The baseline pod CIDR behind this host. */
  podCidr: string;
}

export const BASELINE_VXLAN_DEVICE = "bdpvx";

/**
 * A kernel VXLAN device (`id` VNI, UDP `port`) on every host, a static all-zero FDB entry and
 * per-peer FDB + permanent neighbour entries (no flooding, no learning, no ARP on the path),
 * and a route to every other host's baseline pod CIDR over it.
 */
export function addPlainVxlan(hosts: VxlanPeerPlan[], o: { vni: number; port: number; mtu: number }): void {
  const dev = BASELINE_VXLAN_DEVICE;
  for (const h of hosts) {
    tryRun("ip", ["-n", h.hostNetns, "link", "del", dev]);
    ipIn(h.hostNetns, "link", "add", dev, "mtu", String(o.mtu), "type", "vxlan", "id", String(o.vni), "dstport", String(o.port), "local", h.underlayIp, "dev", "eth0", "nolearning");
    ipIn(h.hostNetns, "addr", "add", `${h.linkIp}/24`, "dev", dev);
    ipIn(h.hostNetns, "link", "set", dev, "up");
    sysctlIn(h.hostNetns, "net.ipv4.ip_forward", "1");
    sysctlIn(h.hostNetns, `net.ipv4.conf.${dev}.rp_filter`, "0");
  }
  const macs = hosts.map((h) => macOf(h.hostNetns, dev));
  for (const [i, h] of hosts.entries()) {
    for (const [j, peer] of hosts.entries()) {
      if (i === j) continue;
      const bridge = (...args: string[]) => run("ip", ["netns", "exec", h.hostNetns, "bridge", ...args]);
      bridge("fdb", "append", "00:00:00:00:00:00", "dev", dev, "dst", peer.underlayIp);
      bridge("fdb", "replace", macs[j], "dev", dev, "dst", peer.underlayIp, "static");
      ipIn(h.hostNetns, "neigh", "replace", peer.linkIp, "lladdr", macs[j], "dev", dev, "nud", "permanent");
      ipIn(h.hostNetns, "route", "replace", peer.podCidr, "via", peer.linkIp, "dev", dev);
    }
  }
}

/**
 * The l3 baseline's own underlay: a veth pair host ↔ router beside the host's eth0 (the same
 * kind of link), a /30 per host, each baseline pod CIDR routed over it on the router and the
 * other host's baseline CIDR routed over it on the host. bpfnet's bpf_netdev sits on eth0's
 * ingress, so the baseline must not share eth0 to stay free of BPF.
 */
export function addPlainUnderlay(o: { hostNetns: string; routerNetns: string; hostIfname: string; routerIfname: string; hostIp: string; routerIp: string; mtu: number; localPodCidr: string; remotePodCidr: string }): void {
  const mtu = String(o.mtu);
  tryRun("ip", ["-n", o.hostNetns, "link", "del", o.hostIfname]);
  ipIn(o.hostNetns, "link", "add", o.hostIfname, "mtu", mtu, "type", "veth", "peer", "name", o.routerIfname, "mtu", mtu, "netns", `/run/netns/${o.routerNetns}`);
  ipIn(o.hostNetns, "addr", "add", `${o.hostIp}/30`, "dev", o.hostIfname);
  ipIn(o.hostNetns, "link", "set", o.hostIfname, "up");
  ipIn(o.routerNetns, "addr", "add", `${o.routerIp}/30`, "dev", o.routerIfname);
  ipIn(o.routerNetns, "link", "set", o.routerIfname, "up");
  ipIn(o.routerNetns, "route", "replace", o.localPodCidr, "via", o.hostIp);
  ipIn(o.hostNetns, "route", "replace", o.remotePodCidr, "via", o.routerIp);
  sysctlIn(o.hostNetns, `net.ipv4.conf.${o.hostIfname}.rp_filter`, "0");
}

export interface BpfAttachment {
  dev: string;
  /** e.g. "clsact/ingress", "tcx/egress", "xdp driver". */
  kind: string;
  /** The program's name without bpftool's "[id]" suffix. */
  program: string;
}

/** eBPF programs attached to devices (tc, tcx, XDP) in a namespace, from `bpftool net show`. */
export function bpfAttachments(netns: string): BpfAttachment[] {
  const out = run("ip", ["netns", "exec", netns, "bpftool", "-j", "net", "show"]);
  const list: BpfAttachment[] = [];
  for (const block of JSON.parse(out) as Record<string, { devname?: string; kind?: string; name?: string; mode?: string }[]>[]) {
    for (const [kind, entries] of Object.entries(block)) {
      if (kind === "flow_dissector" || kind === "netfilter") continue; // not on a device
      for (const a of entries ?? []) list.push({ dev: a.devname ?? "?", kind: `${kind === "xdp" ? "xdp " : ""}${a.kind ?? a.mode ?? kind}`, program: (a.name ?? "?").replace(/:\[\d+\]$/, "") });
    }
  }
  return list;
}
