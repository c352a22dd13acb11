/**
 * rtnetlink messages, encoded and decoded in TypeScript (the addon only sends them: netlink.ts).
 * Pure: every function maps values to bytes or bytes to values; names and addresses are checked
 * here, before anything reaches the kernel.
 */
import { isIPv4 } from "net";

// <linux/rtnetlink.h>, <linux/if_link.h>, <linux/neighbour.h>, <linux/veth.h>
const RTM_NEWLINK = 16;
const RTM_DELLINK = 17;
const RTM_GETLINK = 18;
const RTM_NEWADDR = 20;
const RTM_NEWROUTE = 24;
const RTM_NEWNEIGH = 28;
const NLM_F_REPLACE = 0x100;
const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;
const AF_UNSPEC = 0;
const AF_INET = 2;
const IFF_UP = 1;
const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_LINK = 5;
const IFLA_LINKINFO = 18;
const IFLA_NET_NS_FD = 28;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const VETH_INFO_PEER = 1;
const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const RTA_DST = 1;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const RTA_METRICS = 8;
const RTAX_MTU = 2;
const RT_TABLE_MAIN = 254;
const RTPROT_BOOT = 3;
const RT_SCOPE_UNIVERSE = 0;
const RT_SCOPE_LINK = 253;
const RTN_UNICAST = 1;
const NDA_DST = 1;
const NDA_LLADDR = 2;
const NUD_PERMANENT = 0x80;
const NLMSG_HDRLEN = 16;
const IFINFOMSG_LEN = 16;

/** One request and the step it is, for error messages ("create veth pair", …). */
export interface RtRequest {
  step: string;
  message: Buffer;
  /**
   * Byte offsets where the addon writes, before sending, the ifindex of the device the last
   * RTM_NEWLINK reply of the same call described (a request made with REPLIED_IFINDEX).
   */
  ifindexAt?: number[];
}

/**
 * Stands for "the device the last linkGet of this call read back": one call can create a device,
 * read it and configure it, though only the kernel knows its ifindex until then.
 */
export const REPLIED_IFINDEX = "replied";
export type IfindexRef = number | typeof REPLIED_IFINDEX;

/** Where a header's ifindex sits: ifinfomsg, ifaddrmsg and ndmsg all keep it at byte 4. */
const HEADER_IFINDEX_AT = 16 + 4;

const align4 = (n: number) => (n + 3) & ~3;

/** One rtattr (header, payload, padding to 4 bytes); nested attributes are just a payload of attributes. */
function attr(type: number, payload: Buffer): Buffer {
  const out = Buffer.alloc(align4(4 + payload.length));
  out.writeUInt16LE(4 + payload.length, 0);
  out.writeUInt16LE(type, 2);
  payload.copy(out, 4);
  return out;
}

const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
};
const cstring = (s: string) => Buffer.concat([Buffer.from(s, "utf8"), Buffer.alloc(1)]);

function message(type: number, flags: number, header: Buffer, attrs: Buffer[]): Buffer {
  const out = Buffer.concat([Buffer.alloc(NLMSG_HDRLEN), header, ...attrs]);
  out.writeUInt32LE(out.length, 0);
  out.writeUInt16LE(type, 4);
  out.writeUInt16LE(flags, 6); // NLM_F_REQUEST | NLM_F_ACK, seq and pid: set by the addon
  return out;
}

function ifinfomsg(index: number, up: boolean): Buffer {
  const b = Buffer.alloc(IFINFOMSG_LEN);
  b.writeUInt8(AF_UNSPEC, 0);
  b.writeInt32LE(index, 4);
  b.writeUInt32LE(up ? IFF_UP : 0, 8);
  b.writeUInt32LE(up ? IFF_UP : 0, 12); // ifi_change: only IFF_UP is touched
  return b;
}

/**
 * A device name the kernel accepts and no tool misreads: 1-15 bytes of letters, digits, "_",
 * "-", "." (not "." or ".."; no "/", ":", whitespace, quotes or shell syntax). Throws otherwise.
 */
export function checkIfname(name: unknown, what = "interface name"): string {
  if (typeof name !== "string" || !/^[A-Za-z0-9_.-]{1,15}$/.test(name) || name === "." || name === "..") {
    throw new RangeError(`${what} must be 1-15 letters, digits, "_", "-" or ".", got ${JSON.stringify(name)}`);
  }
  return name;
}

function checkIndex(ifindex: IfindexRef): number {
  if (ifindex === REPLIED_IFINDEX) return 0; // written by the addon (ifindexAt)
  if (!Number.isInteger(ifindex) || ifindex <= 0 || ifindex > 0x7fffffff) throw new RangeError(`bad ifindex ${ifindex}`);
  return ifindex;
}

/** The request, with where the replied ifindex goes when `ifindex` refers to it. */
function withIfindex(r: RtRequest, ifindex: IfindexRef, at: number): RtRequest {
  return ifindex === REPLIED_IFINDEX ? { ...r, ifindexAt: [at] } : r;
}

function checkMtu(mtu: number): number {
  if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) throw new RangeError(`bad MTU ${mtu}`);
  return mtu;
}

function ipv4(ip: string): Buffer {
  if (!isIPv4(ip)) throw new RangeError(`not an IPv4 address: ${JSON.stringify(ip)}`);
  return Buffer.from(ip.split(".").map(Number));
}

function mac(m: string): Buffer {
  if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(m)) throw new RangeError(`not a MAC address: ${JSON.stringify(m)}`);
  return Buffer.from(m.split(":").map((x) => parseInt(x, 16)));
}

export interface VethEnd {
  name: string;
  mac: string;
  mtu: number;
}

/**
 * RTM_NEWLINK (create, exclusive) of a veth pair in the namespace the request is sent in: `end`
 * is moved at creation into the namespace of the open fd `netnsFd` and set up there; `peer`
 * stays, down.
 */
export function vethAdd(end: VethEnd & { netnsFd: number }, peer: VethEnd): RtRequest {
  return pairAdd("veth", end, peer, (peerInfo) => attr(VETH_INFO_PEER, peerInfo));
}

// <linux/if_link.h> IFLA_NETKIT_* and its enums (kernel 6.7+)
const IFLA_NETKIT_PEER_INFO = 1;
const IFLA_NETKIT_POLICY = 3;
const IFLA_NETKIT_PEER_POLICY = 4;
const IFLA_NETKIT_MODE = 5;
const NETKIT_PASS = 0;
const NETKIT_L2 = 0;

/**
 * RTM_NEWLINK (create, exclusive) of a netkit pair, as vethAdd: `end` is the PRIMARY device (the
 * host side, where a BPF link attaches the peer's program), moved into the namespace of
 * `netnsFd` when given and set up; `peer` stays, down. L2 mode (Ethernet headers kept, so ARP and
 * the gateway's pinned neighbour work as on a veth); both ends forward (NETKIT_PASS) while no
 * program is attached. A kernel without netkit refuses it with EOPNOTSUPP.
 */
export function netkitAdd(end: VethEnd & { netnsFd?: number }, peer: VethEnd): RtRequest {
  return pairAdd("netkit", end, peer, (peerInfo) =>
    Buffer.concat([attr(IFLA_NETKIT_PEER_INFO, peerInfo), attr(IFLA_NETKIT_MODE, u32(NETKIT_L2)), attr(IFLA_NETKIT_POLICY, u32(NETKIT_PASS)), attr(IFLA_NETKIT_PEER_POLICY, u32(NETKIT_PASS))]),
  );
}

/** A device pair of `kind`; `data` wraps the peer's ifinfomsg + attributes into the kind's IFLA_INFO_DATA. */
function pairAdd(kind: "veth" | "netkit", end: VethEnd & { netnsFd?: number }, peer: VethEnd, data: (peerInfo: Buffer) => Buffer): RtRequest {
  if (end.netnsFd !== undefined && (!Number.isInteger(end.netnsFd) || end.netnsFd < 0)) throw new RangeError(`bad netns fd ${end.netnsFd}`);
  const peerInfo = Buffer.concat([ifinfomsg(0, false), ...linkAttrs(peer, `${kind} peer`)]);
  const linkinfo = Buffer.concat([attr(IFLA_INFO_KIND, cstring(kind)), attr(IFLA_INFO_DATA, data(peerInfo))]);
  return {
    step: `create ${kind} pair ${end.name}/${peer.name}`,
    message: message(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, ifinfomsg(0, true), [
      ...linkAttrs(end, `${kind} name`),
      ...(end.netnsFd !== undefined ? [attr(IFLA_NET_NS_FD, u32(end.netnsFd))] : []),
      attr(IFLA_LINKINFO, linkinfo),
    ]),
  };
}

function linkAttrs(e: VethEnd, what: string): Buffer[] {
  return [attr(IFLA_IFNAME, cstring(checkIfname(e.name, what))), attr(IFLA_MTU, u32(checkMtu(e.mtu))), attr(IFLA_ADDRESS, mac(e.mac))];
}

/** RTM_GETLINK of one device by name (its reply: decodeLink). */
export function linkGet(name: string): RtRequest {
  return { step: `read device ${name}`, message: message(RTM_GETLINK, 0, ifinfomsg(0, false), [attr(IFLA_IFNAME, cstring(checkIfname(name)))]) };
}

/** RTM_DELLINK by name (a veth takes its peer with it). */
export function linkDel(name: string): RtRequest {
  return { step: `delete device ${name}`, message: message(RTM_DELLINK, 0, ifinfomsg(0, false), [attr(IFLA_IFNAME, cstring(checkIfname(name)))]) };
}

/** RTM_NEWLINK on an existing device: administratively up. */
export function linkUp(ifindex: IfindexRef, what: string): RtRequest {
  return withIfindex({ step: `set ${what} up`, message: message(RTM_NEWLINK, 0, ifinfomsg(checkIndex(ifindex), true), []) }, ifindex, HEADER_IFINDEX_AT);
}

/** RTM_NEWADDR (exclusive): ip/prefix on ifindex. */
export function addrAdd(ifindex: IfindexRef, ip: string, prefix: number): RtRequest {
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32) throw new RangeError(`bad prefix length ${prefix}`);
  const h = Buffer.alloc(8);
  h.writeUInt8(AF_INET, 0);
  h.writeUInt8(prefix, 1);
  h.writeUInt32LE(checkIndex(ifindex), 4);
  const r = { step: `add address ${ip}/${prefix}`, message: message(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, h, [attr(IFA_LOCAL, ipv4(ip)), attr(IFA_ADDRESS, ipv4(ip))]) };
  return withIfindex(r, ifindex, HEADER_IFINDEX_AT);
}

export interface RouteSpec {
  /** "default" or an IPv4 address/prefix. */
  dst: string;
  oif: IfindexRef;
  /** Next hop; without it the route is on-link (scope link). */
  via?: string;
  mtu?: number;
}

/** RTM_NEWROUTE (create or replace) in the main table. */
export function routeReplace(r: RouteSpec): RtRequest {
  const [addr, len] = r.dst === "default" ? ["0.0.0.0", 0] : [r.dst.split("/")[0], Number(r.dst.split("/")[1] ?? 32)];
  if (!Number.isInteger(len) || len < 0 || len > 32) throw new RangeError(`bad route destination ${JSON.stringify(r.dst)}`);
  const h = Buffer.alloc(12);
  h.writeUInt8(AF_INET, 0);
  h.writeUInt8(len, 1);
  h.writeUInt8(RT_TABLE_MAIN, 4);
  h.writeUInt8(RTPROT_BOOT, 5);
  h.writeUInt8(r.via ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK, 6);
  h.writeUInt8(RTN_UNICAST, 7);
  const dst = len > 0 ? [attr(RTA_DST, ipv4(addr))] : [];
  const oifAt = NLMSG_HDRLEN + h.length + dst.reduce((n, a) => n + a.length, 0) + 4; // RTA_OIF's payload
  const attrs = [...dst, attr(RTA_OIF, u32(checkIndex(r.oif)))];
  if (r.via) attrs.push(attr(RTA_GATEWAY, ipv4(r.via)));
  if (r.mtu !== undefined) attrs.push(attr(RTA_METRICS, attr(RTAX_MTU, u32(checkMtu(r.mtu)))));
  const req = { step: `route ${r.dst}${r.via ? ` via ${r.via}` : ""}`, message: message(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, h, attrs) };
  return withIfindex(req, r.oif, oifAt);
}

/** RTM_NEWNEIGH (create or replace): a permanent neighbour entry. */
export function neighPermanent(ifindex: IfindexRef, ip: string, lladdr: string): RtRequest {
  const h = Buffer.alloc(12);
  h.writeUInt8(AF_INET, 0);
  h.writeInt32LE(checkIndex(ifindex), 4);
  h.writeUInt16LE(NUD_PERMANENT, 8);
  const r = { step: `neighbour ${ip}`, message: message(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, h, [attr(NDA_DST, ipv4(ip)), attr(NDA_LLADDR, mac(lladdr))]) };
  return withIfindex(r, ifindex, HEADER_IFINDEX_AT);
}

/** A device as an RTM_NEWLINK reply describes it. */
export interface RtLink {
  ifindex: number;
  name: string;
  mac: string;
  mtu: number;
  up: boolean;
  /** IFLA_LINK: for a veth, its peer's ifindex (in the peer's namespace). */
  link?: number;
  /** IFLA_INFO_KIND: "veth", "vxlan", … */
  kind?: string;
  /** A VXLAN device's settings: collect-metadata ("external"), UDP port, bound local address. */
  vxlan?: { external: boolean; port?: number; local?: string };
}

/** The attributes in `b` (type without the nested/byte-order bits → payload). Pure. */
function attrs(b: Buffer): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  for (let off = 0; off + 4 <= b.length; ) {
    const len = b.readUInt16LE(off);
    if (len < 4 || off + len > b.length) break;
    out.set(b.readUInt16LE(off + 2) & 0x3fff, b.subarray(off + 4, off + len));
    off += align4(len);
  }
  return out;
}

// <linux/if_link.h> IFLA_VXLAN_*
const IFLA_VXLAN_LOCAL = 4;
const IFLA_VXLAN_PORT = 15;
const IFLA_VXLAN_COLLECT_METADATA = 25;

function linkinfo(b: Buffer): Pick<RtLink, "kind" | "vxlan"> {
  const info = attrs(b);
  const kind = info.get(IFLA_INFO_KIND)?.toString("utf8").replace(/\0.*$/s, "");
  if (kind !== "vxlan") return kind ? { kind } : {};
  const data = attrs(info.get(IFLA_INFO_DATA) ?? Buffer.alloc(0));
  const local = data.get(IFLA_VXLAN_LOCAL);
  const port = data.get(IFLA_VXLAN_PORT);
  return {
    kind,
    vxlan: {
      external: (data.get(IFLA_VXLAN_COLLECT_METADATA)?.readUInt8(0) ?? 0) === 1,
      ...(port && port.length >= 2 ? { port: port.readUInt16BE(0) } : {}),
      ...(local && local.length === 4 ? { local: [...local].join(".") } : {}),
    },
  };
}

/** Decodes one RTM_NEWLINK message (as RTM_GETLINK answers). */
export function decodeLink(msg: Buffer): RtLink {
  if (msg.length < NLMSG_HDRLEN + IFINFOMSG_LEN || msg.readUInt16LE(4) !== RTM_NEWLINK) throw new Error("not an RTM_NEWLINK message");
  const out: RtLink = { ifindex: msg.readInt32LE(NLMSG_HDRLEN + 4), name: "", mac: "", mtu: 0, up: (msg.readUInt32LE(NLMSG_HDRLEN + 8) & IFF_UP) !== 0 };
  const a = attrs(msg.subarray(NLMSG_HDRLEN + IFINFOMSG_LEN, Math.min(msg.length, msg.readUInt32LE(0))));
  const name = a.get(IFLA_IFNAME);
  const address = a.get(IFLA_ADDRESS);
  const mtu = a.get(IFLA_MTU);
  const link = a.get(IFLA_LINK);
  const info = a.get(IFLA_LINKINFO);
  if (name) out.name = name.toString("utf8").replace(/\0.*$/s, "");
  if (address) out.mac = [...address].map((x) => x.toString(16).padStart(2, "0")).join(":");
  if (mtu && mtu.length >= 4) out.mtu = mtu.readUInt32LE(0);
  if (link && link.length >= 4) out.link = link.readUInt32LE(0);
  return { ...out, ...(info ? linkinfo(info) : {}) };
}
