// What the agent needs to know about a network device, read with `ip -j`.
import { ExecResult, tryIp, tryIpIn } from "./exec";

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

export async function getLinkIn(netnsPath: string, name: string): Promise<LinkInfo | undefined> {
  return fromResult(await tryIpIn(netnsPath, "-j", "-d", "link", "show", "dev", name));
}

/** Every device of the agent's namespace. */
export async function listLinks(): Promise<LinkInfo[]> {
  const r = await tryIp("-j", "-d", "link", "show");
  if (!r.ok) throw new Error(`ip link show failed: ${r.stderr.trim()}`);
  return (JSON.parse(r.stdout) as Record<string, unknown>[]).map(parseLink);
}

export async function linkIn(netnsPath: string, name: string): Promise<LinkInfo> {
  const l = await getLinkIn(netnsPath, name);
  if (!l) throw new Error(`no device ${name} in ${netnsPath}`);
  return l;
}

