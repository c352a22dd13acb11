// What the agent needs to know about a network device (read with `ip -j`), and endpoint veth
// pairs made through netlink from the addon.
import { addrAdd, decodeLink, IfindexRef, linkGet, linkUp, neighPermanent, ownNetnsFd, REPLIED_IFINDEX, routeReplace, RtRequest, rtnetlink, vethAdd } from "../../bpf";
import { ExecResult, tryIp } from "./exec";

export interface LinkInfo {
  name: string;
  ifindex: number;
  mac: string;
  mtu: number;
  up: boolean;
  /** "veth", "vxlan", … (from linkinfo.info_kind) */
  kind?: string;
  /** Kind-specific data, e.g. vxlan's { external, port }. */
  data?: Record<string, unknown>;
  flags: string[];
}

/** Parses one `ip -j -d link show` entry. Pure. */
export function parseLink(entry: Record<string, unknown>): LinkInfo {
  const linkinfo = entry.linkinfo as { info_kind?: string; info_data?: Record<string, unknown> } | undefined;
  const flags = Array.isArray(entry.flags) ? (entry.flags as string[]) : [];
  return {
    name: String(entry.ifname),
    ifindex: Number(entry.ifindex),
    mac: String(entry.address ?? ""),
    mtu: Number(entry.mtu),
    up: flags.includes("UP"),
    ...(linkinfo?.info_kind ? { kind: linkinfo.info_kind } : {}),
    ...(linkinfo?.info_data ? { data: linkinfo.info_data } : {}),
    flags,
  };
}

function fromResult(r: ExecResult): LinkInfo | undefined {
  if (!r.ok) {
    if (/does not exist|Cannot find device/i.test(r.stderr)) return undefined;
    throw new Error(`ip link show failed: ${r.stderr.trim()}`);
  }
  const list = JSON.parse(r.stdout) as Record<string, unknown>[];
  return list.length ? parseLink(list[0]) : undefined;
}

/** The device in the agent's namespace, or undefined when there is none. */
export async function getLink(name: string): Promise<LinkInfo | undefined> {
  return fromResult(await tryIp("-j", "-d", "link", "show", "dev", name));
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
