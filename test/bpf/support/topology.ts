/**
 * Network namespaces standing in for hosts and containers. Every name starts
 * with "bft" (the bpf tests' prefix) so leftovers are easy to find and never
 * collide with other suites.
 */
import { ip, ipQuiet, linkInfo, LinkInfo } from "./netns";

/** The next hop every container routes through; nobody owns it, a permanent neighbour entry points at the host. */
export const GATEWAY = "10.251.0.1";

export function addNetns(name: string): void {
  if (!name.startsWith("bft")) throw new Error(`test netns ${name} must start with bft`);
  ipQuiet("netns", "del", name); // leftover of a crashed run
  ip("netns", "add", name);
  ip("-n", name, "link", "set", "lo", "up");
}

/** Removes namespaces (and the devices in them); never throws, for afterAll. */
export function deleteNetns(...names: string[]): void {
  for (const name of names) ipQuiet("netns", "del", name);
}

export interface Container {
  netns: string;
  ip: string;
  /** Host-side veth, in the host's namespace. */
  hostSide: LinkInfo;
  /** The container's own interface. */
  inside: LinkInfo;
}

/**
 * A container namespace wired to a host namespace by a veth pair, routed
 * Cilium-style: a /32 address, a default route via GATEWAY, and GATEWAY's MAC
 * pinned to the host-side veth so the container never needs ARP answered.
 */
export function addContainer(host: string, netns: string, hostDev: string, dev: string, address: string): Container {
  addNetns(netns);
  ip("link", "add", hostDev, "netns", host, "type", "veth", "peer", "name", dev, "netns", netns);
  ip("-n", host, "link", "set", hostDev, "up");
  ip("-n", netns, "link", "set", dev, "up");
  ip("-n", netns, "addr", "add", `${address}/32`, "dev", dev);
  ip("-n", netns, "route", "add", GATEWAY, "dev", dev, "scope", "link");
  ip("-n", netns, "route", "add", "default", "via", GATEWAY, "dev", dev);
  const hostSide = linkInfo(host, hostDev);
  ip("-n", netns, "neigh", "replace", GATEWAY, "lladdr", hostSide.mac, "dev", dev, "nud", "permanent");
  return { netns, ip: address, hostSide, inside: linkInfo(netns, dev) };
}
