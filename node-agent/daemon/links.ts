// Network devices through netlink from the addon: reading one, and making an endpoint's veth pair.
import { addrAdd, decodeLink, IfindexRef, linkGet, linkUp, neighPermanent, ownNetnsFd, readLink, REPLIED_IFINDEX, routeReplace, RtLink, RtRequest, rtnetlink, vethAdd } from "../../bpf";

/** A device as netlink reports it (name, ifindex, MAC, MTU, up, kind, a VXLAN device's settings). */
export type LinkInfo = RtLink;

/** The device in the agent's namespace, or undefined when there is none (netlink, no process spawned). */
export function getLink(name: string): Promise<LinkInfo | undefined> {
  return readLink(null, name);
}

/** What an endpoint's veth pair is made of (endpoints.ts plans it). */
export interface VethPlan {
  hostIfname: string;
  /** The container end's name inside its namespace. */
  ifname: string;
  ip: string;
  gateway: string;
  mtu: number;
  hostMac: string;
  mac: string;
}

/**
 * The requests, sent inside the container's namespace, that make the pair: created there with
 * the host end moved at birth into the agent's namespace (the fd) and up, then read back for the
 * container end's ifindex and its peer's. Pure.
 */
export function vethCreateRequests(p: VethPlan, agentNetnsFd: number): RtRequest[] {
  return [vethAdd({ name: p.hostIfname, mac: p.hostMac, mtu: p.mtu, netnsFd: agentNetnsFd }, { name: p.ifname, mac: p.mac, mtu: p.mtu }), linkGet(p.ifname)];
}

/**
 * The container end's configuration: a /32 with the gateway on-link and the gateway's MAC pinned
 * to the host end, so the container never needs an ARP answer and bpf_lxc sees every packet it
 * sends. Pure.
 */
export function vethConfigureRequests(p: VethPlan, ifindex: IfindexRef): RtRequest[] {
  return [
    linkUp(LOOPBACK_IFINDEX, "lo"),
    addrAdd(ifindex, p.ip, 32),
    linkUp(ifindex, p.ifname),
    routeReplace({ dst: `${p.gateway}/32`, oif: ifindex }),
    routeReplace({ dst: "default", via: p.gateway, oif: ifindex, mtu: p.mtu }),
    neighPermanent(ifindex, p.gateway, p.hostMac),
  ];
}

/** lo is ifindex 1 in every network namespace. */
const LOOPBACK_IFINDEX = 1;

/**
 * Makes an endpoint's veth pair in ONE netlink call from the addon (one threadpool round trip,
 * no process spawned): created, read back, configured on the ifindex the kernel just reported.
 * Returns the host end's ifindex in the namespace of `hostNetnsFd` (default: the agent's).
 */
export async function plumbVeth(netnsPath: string, p: VethPlan, hostNetnsFd = ownNetnsFd()): Promise<number> {
  const replies = await rtnetlink(netnsPath, [...vethCreateRequests(p, hostNetnsFd), ...vethConfigureRequests(p, REPLIED_IFINDEX)]);
  const end = decodeLink(replies[1][0]);
  if (end.link === undefined) throw new Error(`the kernel did not report ${p.ifname}'s peer in ${netnsPath}`);
  return end.link;
}
