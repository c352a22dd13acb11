/**
 * Mirror of bpf/lib/abi.h: constants, struct layouts, and the encoders that
 * turn typed values into the exact bytes the maps hold. test/bpf/abi.test.ts
 * checks every layout against the objects' BTF and every constant against
 * the C header, so the two cannot drift silently.
 */
import { endianness } from "os";
import { formatCidr, formatIPv4, formatMac, parseCidr, parseIPv4, parseMac } from "./addr";

/** Every #define of abi.h that userspace needs, under its C name. */
export const ABI_CONSTANTS = {
  BPFNET_MODE_VXLAN: 1,
  BPFNET_MODE_L3: 2,
  METRIC_INGRESS: 1,
  METRIC_EGRESS: 2,
  REASON_FORWARDED: 0,
  REASON_PASSED: 1,
  REASON_POLICY_AUDIT: 2,
  DROP_INVALID: -130,
  DROP_UNKNOWN_ENDPOINT: -131,
  DROP_NO_ROUTE: -132,
  DROP_TTL_EXCEEDED: -133,
  DROP_TUNNEL_KEY: -134,
  DROP_NO_TUNNEL_DEVICE: -135,
  DROP_UNSPEC: -136,
  DROP_SPOOFED_SOURCE: -137,
  DROP_UNKNOWN_PEER: -138,
  DROP_BAD_VNI: -139,
  DROP_NO_TUNNEL_INFO: -140,
  DROP_POLICY_DENIED: -141,
  DROP_CT_FULL: -142,
  DROP_NO_PROXY: -143,
  BPFNET_EP_ENFORCE_INGRESS: 1,
  BPFNET_EP_ENFORCE_EGRESS: 2,
  BPFNET_EP_AUDIT_INGRESS: 4,
  BPFNET_EP_AUDIT_EGRESS: 8,
  BPFNET_ID_ANY: 0,
  BPFNET_ID_HOST: 1,
  BPFNET_ID_WORLD: 2,
  BPFNET_ID_HEALTH: 4,
  BPFNET_ID_REMOTE_NODE: 6,
  BPFNET_POLICY_INGRESS: 1,
  BPFNET_POLICY_EGRESS: 2,
  BPFNET_ACTION_ALLOW: 1,
  BPFNET_ACTION_DENY: 2,
  BPFNET_ACTION_REDIRECT: 3,
  BPFNET_MARK_TO_PROXY: 0x0b9f,
  BPFNET_MARK_FROM_PROXY: 0x0a9f,
  BPFNET_VERDICT_ALLOW: 1,
  BPFNET_VERDICT_DENY: 2,
  BPFNET_VERDICT_REDIRECT: 3,
  BPFNET_VERDICT_AUDIT: 4,
  BPFNET_CT_EGRESS: 0,
  BPFNET_CT_INGRESS: 1,
  BPFNET_CT_SEEN_REPLY: 1,
  BPFNET_CT_CLOSING: 2,
  BPFNET_CT_LIFETIME_TCP_DEFAULT: 21600,
  BPFNET_CT_LIFETIME_SHORT_DEFAULT: 60,
  BPFNET_ENDPOINTS_MAX: 16384,
  BPFNET_TUNNEL_MAX: 4096,
  BPFNET_METRICS_MAX: 8192,
  BPFNET_PEERS_MAX: 4096,
  BPFNET_IPCACHE_MAX: 65536,
  BPFNET_POLICY_MAX: 65536,
  BPFNET_CT_MAX: 65536,
  BPFNET_VERDICTS_MAX: 16384,
  // Service load balancing
  DROP_NO_SERVICE_BACKEND: -144,
  DROP_LB_NAT: -145,
  BPFNET_LB_AFFINITY: 1,
  BPFNET_LB_MAGLEV: 2,
  BPFNET_LB_BE_TERMINATING: 1,
  BPFNET_CT_SERVICE: 2,
  BPFNET_CT_REVNAT: 3,
  BPFNET_MAGLEV_M: 251,
  BPFNET_LB_SVC_MAX: 65536,
  BPFNET_LB_BE_MAX: 65536,
  BPFNET_LB_RNAT_MAX: 65536,
  BPFNET_LB_MGLV_MAX: 16384,
  BPFNET_LB_AFF_MAX: 65536,
  BPFNET_LB_SKNAT_MAX: 65536,
  BPFNET_LB_NOBE_MAX: 16384,
  BPFNET_LB_ACTIVE: 1,
  // Node monitor events
  BPFNET_EP_TRACE: 16,
  BPFNET_CFG_EVENTS_OFF: 1,
  BPFNET_CFG_TRACE_ENDPOINTS: 2,
  BPFNET_CFG_TRACE_SAMPLE_SHIFT: 16,
  BPFNET_EVENT_DROP: 1,
  BPFNET_EVENT_VERDICT: 2,
  BPFNET_EVENT_TRACE: 3,
  BPFNET_HOOK_LXC: 1,
  BPFNET_HOOK_OVERLAY: 2,
  BPFNET_HOOK_HOST: 3,
  BPFNET_EVENTS_RING_SIZE: 256 * 1024,
  // The fast path (lib/fib.h, bpf_netdev.c).
  REASON_ROUTE_FAST: 3,
  REASON_ROUTE_STACK: 4,
  REASON_PEER: 5,
  REASON_ROUTE_NEIGH: 6,
  REASON_ROUTE_FIB_STACK: 7,
  BPFNET_HOOK_NETDEV: 4,
  BPFNET_ROUTES_MAX: 4096,
} as const;

/** Drop reasons (negative, as the datapath returns them). */
export const DropReason = {
  INVALID: ABI_CONSTANTS.DROP_INVALID,
  UNKNOWN_ENDPOINT: ABI_CONSTANTS.DROP_UNKNOWN_ENDPOINT,
  NO_ROUTE: ABI_CONSTANTS.DROP_NO_ROUTE,
  TTL_EXCEEDED: ABI_CONSTANTS.DROP_TTL_EXCEEDED,
  TUNNEL_KEY: ABI_CONSTANTS.DROP_TUNNEL_KEY,
  NO_TUNNEL_DEVICE: ABI_CONSTANTS.DROP_NO_TUNNEL_DEVICE,
  UNSPEC: ABI_CONSTANTS.DROP_UNSPEC,
  /** bpf_lxc: the source address is not the sending endpoint's own. */
  SPOOFED_SOURCE: ABI_CONSTANTS.DROP_SPOOFED_SOURCE,
  /** bpf_overlay: the outer source is no member host's underlay address. */
  UNKNOWN_PEER: ABI_CONSTANTS.DROP_UNKNOWN_PEER,
  /** bpf_overlay: the VNI is not the network's. */
  BAD_VNI: ABI_CONSTANTS.DROP_BAD_VNI,
  /** bpf_overlay: no tunnel metadata (the device is not in external mode). */
  NO_TUNNEL_INFO: ABI_CONSTANTS.DROP_NO_TUNNEL_INFO,
  /** An enforcing endpoint's policy has no allow for the packet (either direction). */
  POLICY_DENIED: ABI_CONSTANTS.DROP_POLICY_DENIED,
  /** A connection-tracking entry could not be created: dropped rather than let through untracked. */
  CT_FULL: ABI_CONSTANTS.DROP_CT_FULL,
  /** A packet redirected to the L7 proxy that no proxy socket took. */
  NO_PROXY: ABI_CONSTANTS.DROP_NO_PROXY,
  /** A service (VIP, port, protocol) with no usable backend. */
  NO_SERVICE_BACKEND: ABI_CONSTANTS.DROP_NO_SERVICE_BACKEND,
  /** Rewriting a packet for a service (address, port, checksums) failed. */
  LB_NAT: ABI_CONSTANTS.DROP_LB_NAT,
} as const;

/** Metric reasons of packets that were not dropped. */
export const Verdict = {
  FORWARDED: ABI_CONSTANTS.REASON_FORWARDED,
  PASSED: ABI_CONSTANTS.REASON_PASSED,
  /** A policy deny let through by audit mode; counted besides the packet's own verdict. */
  POLICY_AUDIT: ABI_CONSTANTS.REASON_POLICY_AUDIT,
  /** l3 fast path (the datapath counts it in place of FORWARDED; MetricsMap reads it into both: pathCounters.ts): bpf_fib_lookup gave the next hop and its MACs; bpf_lxc sent it out of that device (bpf_redirect). */
  ROUTE_FAST: ABI_CONSTANTS.REASON_ROUTE_FAST,
  /** No fast route for it (a local address, the outside world, …): bpf_lxc handed it to the host stack. */
  ROUTE_STACK: ABI_CONSTANTS.REASON_ROUTE_STACK,
  /** Delivered straight into the container's namespace with bpf_redirect_peer. */
  PEER: ABI_CONSTANTS.REASON_PEER,
  /** l3 fast path: the FIB's next hop had no resolved neighbour; sent with bpf_redirect_neigh (the kernel resolves it). */
  ROUTE_NEIGH: ABI_CONSTANTS.REASON_ROUTE_NEIGH,
  /** l3 fast path: a route row, but bpf_fib_lookup would not forward it (no route, unreachable, …): the host stack got it. */
  ROUTE_FIB_STACK: ABI_CONSTANTS.REASON_ROUTE_FIB_STACK,
} as const;

/** bpfnet_endpoint.flags: policy enforcement per direction (no bit: the endpoint is open). */
export const EndpointFlags = {
  ENFORCE_INGRESS: ABI_CONSTANTS.BPFNET_EP_ENFORCE_INGRESS,
  ENFORCE_EGRESS: ABI_CONSTANTS.BPFNET_EP_ENFORCE_EGRESS,
  AUDIT_INGRESS: ABI_CONSTANTS.BPFNET_EP_AUDIT_INGRESS,
  AUDIT_EGRESS: ABI_CONSTANTS.BPFNET_EP_AUDIT_EGRESS,
  /** Trace events for every packet the endpoint sends or receives (the node monitor). */
  TRACE: ABI_CONSTANTS.BPFNET_EP_TRACE,
} as const;

/** Reserved security identities (Cilium's numbering). Endpoint identities are 256 .. 2^24-1. */
export const Identity = {
  /** Policy keys only: any peer. */
  ANY: ABI_CONSTANTS.BPFNET_ID_ANY,
  HOST: ABI_CONSTANTS.BPFNET_ID_HOST,
  /** What an address without an ipcache row is. */
  WORLD: ABI_CONSTANTS.BPFNET_ID_WORLD,
  HEALTH: ABI_CONSTANTS.BPFNET_ID_HEALTH,
  REMOTE_NODE: ABI_CONSTANTS.BPFNET_ID_REMOTE_NODE,
} as const;

/** tc return codes (linux/pkt_cls.h) seen in test runs. */
export const TcAction = { OK: 0, SHOT: 2, REDIRECT: 7 } as const;

/** "forwarded", "passed", "policy-audit", "route-fast", …, or the drop reason's name in kebab case ("unknown-endpoint"). */
export function reasonName(reason: number): string {
  const verdict = Object.entries(Verdict).find(([, code]) => code === reason);
  if (verdict) return verdict[0].toLowerCase().replace(/_/g, "-");
  const entry = Object.entries(DropReason).find(([, code]) => code === reason);
  return entry ? entry[0].toLowerCase().replace(/_/g, "-") : `drop-${-reason}`;
}

export interface FieldLayout {
  offset: number;
  size: number;
}

export interface StructLayout {
  /** The C struct name, as BTF knows it. */
  name: string;
  size: number;
  /** Keyed by C member name. */
  fields: Record<string, FieldLayout>;
}

function layout(name: string, size: number, fields: Record<string, [number, number]>): StructLayout {
  const out: Record<string, FieldLayout> = {};
  for (const [field, [offset, bytes]] of Object.entries(fields)) out[field] = { offset, size: bytes };
  return { name, size, fields: out };
}

export const LAYOUTS = {
  endpointKey: layout("bpfnet_endpoint_key", 4, { ip4: [0, 4] }),
  endpoint: layout("bpfnet_endpoint", 32, {
    ifindex: [0, 4],
    endpoint_id: [4, 4],
    mac: [8, 6],
    node_mac: [14, 6],
    flags: [20, 4],
    pad: [24, 8],
  }),
  tunnelKey: layout("bpfnet_tunnel_key", 8, { prefixlen: [0, 4], ip4: [4, 4] }),
  tunnel: layout("bpfnet_tunnel", 8, { remote_ip4: [0, 4], flags: [4, 4] }),
  /** bpfnet_routes' value (its key is bpfnet_tunnel_key). */
  route: layout("bpfnet_route", 8, { ifindex: [0, 4], flags: [4, 4] }),
  config: layout("bpfnet_config", 32, {
    mode: [0, 4],
    vni: [4, 4],
    vxlan_ifindex: [8, 4],
    host_ifindex: [12, 4],
    flags: [16, 4],
    gateway_ip4: [20, 4],
    ct_lifetime_tcp: [24, 4],
    ct_lifetime_short: [28, 4],
  }),
  peerKey: layout("bpfnet_peer_key", 4, { ip4: [0, 4] }),
  peer: layout("bpfnet_peer", 8, { flags: [0, 4], pad: [4, 4] }),
  ipcacheKey: layout("bpfnet_ipcache_key", 8, { prefixlen: [0, 4], ip4: [4, 4] }),
  ipcacheEntry: layout("bpfnet_ipcache_entry", 8, { identity: [0, 4], flags: [4, 4] }),
  policyKey: layout("bpfnet_policy_key", 12, { endpoint_id: [0, 4], identity: [4, 4], dport: [8, 2], proto: [10, 1], direction: [11, 1] }),
  policyValue: layout("bpfnet_policy_value", 8, { action: [0, 1], pad: [1, 1], proxy_port: [2, 2], rule_id: [4, 4] }),
  ctKey: layout("bpfnet_ct_key", 16, { saddr: [0, 4], daddr: [4, 4], sport: [8, 2], dport: [10, 2], proto: [12, 1], flags: [13, 1], pad: [14, 2] }),
  ctEntry: layout("bpfnet_ct_entry", 24, {
    expires: [0, 8],
    src_identity: [8, 4],
    rev_nat_index: [12, 2],
    proxy_port: [14, 2],
    backend_id: [16, 4],
    tcp_flags: [20, 1],
    flags: [21, 1],
    pad: [22, 2],
  }),
  verdictKey: layout("bpfnet_verdict_key", 12, { endpoint_id: [0, 4], rule_id: [4, 4], direction: [8, 1], verdict: [9, 1], pad: [10, 2] }),
  metricsKey: layout("bpfnet_metrics_key", 8, { id: [0, 4], direction: [4, 1], reason: [5, 1], pad: [6, 2] }),
  metricsValue: layout("bpfnet_metrics_value", 16, { packets: [0, 8], bytes: [8, 8] }),
  // Service load balancing
  lbSvcKey: layout("bpfnet_lb_svc_key", 12, { vip: [0, 4], port: [4, 2], slot: [6, 2], proto: [8, 1], pad: [9, 3] }),
  lbSvc: layout("bpfnet_lb_svc", 12, {
    backend_id: [0, 4],
    count: [4, 2],
    rev_nat_index: [6, 2],
    flags: [8, 1],
    pad: [9, 1],
    affinity_timeout_s: [10, 2],
  }),
  lbBackend: layout("bpfnet_lb_be", 8, { addr: [0, 4], port: [4, 2], proto: [6, 1], flags: [7, 1] }),
  lbRevNat: layout("bpfnet_lb_rnat", 8, { vip: [0, 4], port: [4, 2], pad: [6, 2] }),
  lbMaglev: layout("bpfnet_lb_mglv", 4 * 251, { backend_ids: [0, 4 * 251] }),
  lbAffinityKey: layout("bpfnet_lb_aff_key", 8, { client_ip: [0, 4], rev_nat_index: [4, 4] }),
  lbAffinity: layout("bpfnet_lb_aff", 16, { last_used_ns: [0, 8], backend_id: [8, 4], pad: [12, 4] }),
  lbSockNatKey: layout("bpfnet_lb_sknat_key", 16, { cookie: [0, 8], addr: [8, 4], port: [12, 2], pad: [14, 2] }),
  lbSockNat: layout("bpfnet_lb_sknat", 8, { vip: [0, 4], port: [4, 2], rev_nat_index: [6, 2] }),
  lbNoBackendKey: layout("bpfnet_lb_nobe_key", 4, { rev_nat_index: [0, 4] }),
  sockConfig: layout("bpfnet_sock_cfg", 16, { netns_cookie: [0, 8], flags: [8, 4], pad: [12, 4] }),
  // Node monitor events
  event: layout("bpfnet_event", 56, {
    time_ns: [0, 8],
    ifindex: [8, 4],
    to_ifindex: [12, 4],
    saddr: [16, 4],
    daddr: [20, 4],
    sport: [24, 2],
    dport: [26, 2],
    proto: [28, 1],
    type: [29, 1],
    direction: [30, 1],
    hook: [31, 1],
    reason: [32, 1],
    verdict: [33, 1],
    pad: [34, 2],
    src_identity: [36, 4],
    dst_identity: [40, 4],
    endpoint_id: [44, 4],
    rule_id: [48, 4],
    len: [52, 4],
  }),
} as const;

// Host-order fields use the CPU's byte order, as the kernel does.
const LE = endianness() === "LE";

function u32(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new RangeError(`${what} must be a u32, got ${value}`);
  return value;
}

function writeU32(buf: Buffer, field: FieldLayout, value: number, what: string): void {
  if (LE) buf.writeUInt32LE(u32(value, what), field.offset);
  else buf.writeUInt32BE(u32(value, what), field.offset);
}

function readU32(buf: Buffer, field: FieldLayout): number {
  return LE ? buf.readUInt32LE(field.offset) : buf.readUInt32BE(field.offset);
}

function readU64(buf: Buffer, offset: number): bigint {
  return LE ? buf.readBigUInt64LE(offset) : buf.readBigUInt64BE(offset);
}

function expectSize(buf: Buffer, struct: StructLayout): void {
  if (buf.length !== struct.size) throw new RangeError(`${struct.name} is ${struct.size} bytes, got ${buf.length}`);
}

// --- bpfnet_endpoints -------------------------------------------------------

export interface Endpoint {
  /** Host-side veth: where packets for this endpoint are redirected. */
  ifindex: number;
  endpointId: number;
  /** The container's MAC (destination of delivered frames). */
  mac: string;
  /** The host-side veth's MAC (source of delivered frames; the container's gateway MAC). */
  nodeMac: string;
  flags?: number;
}

export function encodeEndpointKey(ip: string): Buffer {
  const key = Buffer.alloc(LAYOUTS.endpointKey.size);
  parseIPv4(ip).copy(key, LAYOUTS.endpointKey.fields.ip4.offset);
  return key;
}

export function decodeEndpointKey(key: Buffer): string {
  expectSize(key, LAYOUTS.endpointKey);
  return formatIPv4(key, LAYOUTS.endpointKey.fields.ip4.offset);
}

export function encodeEndpoint(ep: Endpoint): Buffer {
  const f = LAYOUTS.endpoint.fields;
  const buf = Buffer.alloc(LAYOUTS.endpoint.size);
  if (ep.ifindex === 0) throw new RangeError("endpoint ifindex must not be 0");
  writeU32(buf, f.ifindex, ep.ifindex, "ifindex");
  writeU32(buf, f.endpoint_id, ep.endpointId, "endpointId");
  parseMac(ep.mac).copy(buf, f.mac.offset);
  parseMac(ep.nodeMac).copy(buf, f.node_mac.offset);
  writeU32(buf, f.flags, ep.flags ?? 0, "flags");
  return buf;
}

export function decodeEndpoint(buf: Buffer): Endpoint {
  expectSize(buf, LAYOUTS.endpoint);
  const f = LAYOUTS.endpoint.fields;
  return {
    ifindex: readU32(buf, f.ifindex),
    endpointId: readU32(buf, f.endpoint_id),
    mac: formatMac(buf, f.mac.offset),
    nodeMac: formatMac(buf, f.node_mac.offset),
    flags: readU32(buf, f.flags),
  };
}

// --- bpfnet_tunnel ----------------------------------------------------------

export interface TunnelEntry {
  /** Underlay IPv4 of the host that owns the prefix. */
  remote: string;
  flags?: number;
}

export function encodeTunnelKey(cidr: string): Buffer {
  const f = LAYOUTS.tunnelKey.fields;
  const { addr, prefixLen } = parseCidr(cidr);
  const key = Buffer.alloc(LAYOUTS.tunnelKey.size);
  writeU32(key, f.prefixlen, prefixLen, "prefixlen");
  addr.copy(key, f.ip4.offset);
  return key;
}

export function decodeTunnelKey(key: Buffer): string {
  expectSize(key, LAYOUTS.tunnelKey);
  const f = LAYOUTS.tunnelKey.fields;
  return formatCidr(key, readU32(key, f.prefixlen), f.ip4.offset);
}

export function encodeTunnel(entry: TunnelEntry): Buffer {
  const f = LAYOUTS.tunnel.fields;
  const buf = Buffer.alloc(LAYOUTS.tunnel.size);
  parseIPv4(entry.remote).copy(buf, f.remote_ip4.offset);
  writeU32(buf, f.flags, entry.flags ?? 0, "flags");
  return buf;
}

export function decodeTunnel(buf: Buffer): TunnelEntry {
  expectSize(buf, LAYOUTS.tunnel);
  const f = LAYOUTS.tunnel.fields;
  return { remote: formatIPv4(buf, f.remote_ip4.offset), flags: readU32(buf, f.flags) };
}

// --- bpfnet_routes (l3 fast path; keys as bpfnet_tunnel's) --------------------

export interface RouteEntry {
  /** The underlay device that reaches the pod CIDR. */
  ifindex: number;
  flags?: number;
}

export function encodeRoute(entry: RouteEntry): Buffer {
  const f = LAYOUTS.route.fields;
  const buf = Buffer.alloc(LAYOUTS.route.size);
  writeU32(buf, f.ifindex, entry.ifindex, "ifindex");
  writeU32(buf, f.flags, entry.flags ?? 0, "flags");
  return buf;
}

export function decodeRoute(buf: Buffer): RouteEntry {
  expectSize(buf, LAYOUTS.route);
  const f = LAYOUTS.route.fields;
  return { ifindex: readU32(buf, f.ifindex), flags: readU32(buf, f.flags) };
}

// --- bpfnet_peers -----------------------------------------------------------

export interface PeerEntry {
  flags?: number;
}

export function encodePeerKey(ip: string): Buffer {
  const key = Buffer.alloc(LAYOUTS.peerKey.size);
  parseIPv4(ip).copy(key, LAYOUTS.peerKey.fields.ip4.offset);
  return key;
}

export function decodePeerKey(key: Buffer): string {
  expectSize(key, LAYOUTS.peerKey);
  return formatIPv4(key, LAYOUTS.peerKey.fields.ip4.offset);
}

export function encodePeer(entry: PeerEntry): Buffer {
  const buf = Buffer.alloc(LAYOUTS.peer.size);
  writeU32(buf, LAYOUTS.peer.fields.flags, entry.flags ?? 0, "flags");
  return buf;
}

export function decodePeer(buf: Buffer): PeerEntry {
  expectSize(buf, LAYOUTS.peer);
  return { flags: readU32(buf, LAYOUTS.peer.fields.flags) };
}

// --- bpfnet_config ----------------------------------------------------------

/** "none" is the zeroed slot before the agent configures the host: no tunnelling. */
export type DatapathMode = "vxlan" | "l3" | "none";

export interface DatapathConfig {
  mode: DatapathMode;
  /** VXLAN network identifier (24 bits). */
  vni: number;
  /** The VXLAN device (external mode); required in vxlan mode. */
  vxlanIfindex: number;
  /** bpfnet_host. */
  hostIfindex: number;
  /**
   * This host's gateway address (on bpfnet_host, the source of host traffic to pods): tunnelled
   * packets to it go to the host stack. Absent or "0.0.0.0": unset.
   */
  gateway?: string;
  flags?: number;
  /** Connection-tracking lifetime of established TCP flows, seconds; 0/absent: 21600 (6 h). */
  ctLifetimeTcp?: number;
  /** Lifetime of TCP flows before a reply or after FIN/RST, and of non-TCP flows, seconds; 0/absent: 60. */
  ctLifetimeShort?: number;
}

const MODE_CODES: Record<DatapathMode, number> = {
  none: 0,
  vxlan: ABI_CONSTANTS.BPFNET_MODE_VXLAN,
  l3: ABI_CONSTANTS.BPFNET_MODE_L3,
};

export function encodeConfig(cfg: DatapathConfig): Buffer {
  const f = LAYOUTS.config.fields;
  if (!(cfg.mode in MODE_CODES)) throw new TypeError(`unknown datapath mode ${JSON.stringify(cfg.mode)}`);
  if (!Number.isInteger(cfg.vni) || cfg.vni < 0 || cfg.vni >= 1 << 24) throw new RangeError(`VNI must fit 24 bits, got ${cfg.vni}`);
  if (cfg.mode === "vxlan" && !cfg.vxlanIfindex) throw new RangeError("vxlan mode needs vxlanIfindex");
  const buf = Buffer.alloc(LAYOUTS.config.size);
  writeU32(buf, f.mode, MODE_CODES[cfg.mode], "mode");
  writeU32(buf, f.vni, cfg.vni, "vni");
  writeU32(buf, f.vxlan_ifindex, cfg.vxlanIfindex, "vxlanIfindex");
  writeU32(buf, f.host_ifindex, cfg.hostIfindex, "hostIfindex");
  parseIPv4(cfg.gateway ?? "0.0.0.0").copy(buf, f.gateway_ip4.offset);
  writeU32(buf, f.flags, cfg.flags ?? 0, "flags");
  writeU32(buf, f.ct_lifetime_tcp, cfg.ctLifetimeTcp ?? 0, "ctLifetimeTcp");
  writeU32(buf, f.ct_lifetime_short, cfg.ctLifetimeShort ?? 0, "ctLifetimeShort");
  return buf;
}

export function decodeConfig(buf: Buffer): DatapathConfig {
  expectSize(buf, LAYOUTS.config);
  const f = LAYOUTS.config.fields;
  const code = readU32(buf, f.mode);
  const mode = (Object.keys(MODE_CODES) as DatapathMode[]).find((m) => MODE_CODES[m] === code);
  if (!mode) throw new RangeError(`bpfnet_config holds unknown mode ${code}`);
  return {
    mode,
    vni: readU32(buf, f.vni),
    vxlanIfindex: readU32(buf, f.vxlan_ifindex),
    hostIfindex: readU32(buf, f.host_ifindex),
    gateway: formatIPv4(buf, f.gateway_ip4.offset),
    flags: readU32(buf, f.flags),
    ctLifetimeTcp: readU32(buf, f.ct_lifetime_tcp),
    ctLifetimeShort: readU32(buf, f.ct_lifetime_short),
  };
}

// --- bpfnet_metrics ---------------------------------------------------------

export type Direction = "ingress" | "egress";

export interface MetricsKey {
  /** ifindex the packet was seen on. */
  id: number;
  direction: Direction;
  /** Verdict.FORWARDED, Verdict.PASSED, or a (negative) DropReason. */
  reason: number;
}

export interface Counters {
  packets: bigint;
  bytes: bigint;
}

const DIRECTION_CODES: Record<Direction, number> = {
  ingress: ABI_CONSTANTS.METRIC_INGRESS,
  egress: ABI_CONSTANTS.METRIC_EGRESS,
};

export function encodeMetricsKey(key: MetricsKey): Buffer {
  const f = LAYOUTS.metricsKey.fields;
  const reasonByte = key.reason < 0 ? -key.reason : key.reason;
  if (!Number.isInteger(reasonByte) || reasonByte > 255) throw new RangeError(`reason out of range: ${key.reason}`);
  if (!(key.direction in DIRECTION_CODES)) throw new TypeError(`unknown direction ${JSON.stringify(key.direction)}`);
  const buf = Buffer.alloc(LAYOUTS.metricsKey.size);
  writeU32(buf, f.id, key.id, "id");
  buf.writeUInt8(DIRECTION_CODES[key.direction], f.direction.offset);
  buf.writeUInt8(reasonByte, f.reason.offset);
  return buf;
}

export function decodeMetricsKey(buf: Buffer): MetricsKey {
  expectSize(buf, LAYOUTS.metricsKey);
  const f = LAYOUTS.metricsKey.fields;
  const dirCode = buf.readUInt8(f.direction.offset);
  const direction = (Object.keys(DIRECTION_CODES) as Direction[]).find((d) => DIRECTION_CODES[d] === dirCode);
  if (!direction) throw new RangeError(`bpfnet_metrics key has unknown direction ${dirCode}`);
  const reasonByte = buf.readUInt8(f.reason.offset);
  // Drop reasons are stored as their absolute value (130..255); the non-drop codes are below 128.
  const reason = reasonByte < 128 ? reasonByte : -reasonByte;
  return { id: readU32(buf, f.id), direction, reason };
}

/**
 * Sums a per-CPU value buffer: one bpfnet_metrics_value per possible CPU,
 * each slot padded to 8 bytes (already a multiple here).
 */
export function sumPerCpuCounters(buf: Buffer): Counters {
  const slot = Math.ceil(LAYOUTS.metricsValue.size / 8) * 8;
  if (buf.length === 0 || buf.length % slot !== 0) throw new RangeError(`per-CPU buffer of ${buf.length} bytes`);
  const f = LAYOUTS.metricsValue.fields;
  let packets = 0n;
  let bytes = 0n;
  for (let off = 0; off < buf.length; off += slot) {
    packets += readU64(buf, off + f.packets.offset);
    bytes += readU64(buf, off + f.bytes.offset);
  }
  return { packets, bytes };
}

// --- bpfnet_ipcache ---------------------------------------------------------

export function encodeIpcacheKey(cidr: string): Buffer {
  const f = LAYOUTS.ipcacheKey.fields;
  const { addr, prefixLen } = parseCidr(cidr);
  const key = Buffer.alloc(LAYOUTS.ipcacheKey.size);
  writeU32(key, f.prefixlen, prefixLen, "prefixlen");
  addr.copy(key, f.ip4.offset);
  return key;
}

export function decodeIpcacheKey(key: Buffer): string {
  expectSize(key, LAYOUTS.ipcacheKey);
  const f = LAYOUTS.ipcacheKey.fields;
  return formatCidr(key, readU32(key, f.prefixlen), f.ip4.offset);
}

/** Identities are u32 in the map; 0 is "any" and never an address's identity. */
export function encodeIpcacheEntry(identity: number): Buffer {
  if (!Number.isInteger(identity) || identity <= 0 || identity > 0xffffffff) throw new RangeError(`identity must be a u32 above 0, got ${identity}`);
  const buf = Buffer.alloc(LAYOUTS.ipcacheEntry.size);
  writeU32(buf, LAYOUTS.ipcacheEntry.fields.identity, identity, "identity");
  return buf;
}

export function decodeIpcacheEntry(buf: Buffer): number {
  expectSize(buf, LAYOUTS.ipcacheEntry);
  return readU32(buf, LAYOUTS.ipcacheEntry.fields.identity);
}

// --- bpfnet_policy ----------------------------------------------------------

/** bpfnet_policy_key.direction codes. */
export const PolicyDirection = { INGRESS: ABI_CONSTANTS.BPFNET_POLICY_INGRESS, EGRESS: ABI_CONSTANTS.BPFNET_POLICY_EGRESS } as const;
/** bpfnet_policy_value.action codes. */
export const PolicyAction = {
  ALLOW: ABI_CONSTANTS.BPFNET_ACTION_ALLOW,
  DENY: ABI_CONSTANTS.BPFNET_ACTION_DENY,
  REDIRECT: ABI_CONSTANTS.BPFNET_ACTION_REDIRECT,
} as const;

export interface PolicyKey {
  /** The local endpoint's bpfnet_endpoint.endpointId. */
  endpointId: number;
  /** The peer's identity; Identity.ANY (0) = any. */
  identity: number;
  /** Destination port; 0 = any. */
  dport: number;
  /** IP protocol (6 TCP, 17 UDP, 1 ICMP); 0 = any. */
  proto: number;
  /** PolicyDirection: 1 ingress (into the endpoint), 2 egress (out of it). */
  direction: number;
}

export interface PolicyValue {
  /** PolicyAction: 1 allow, 2 deny, 3 redirect to the proxy. */
  action: number;
  /** The proxy's port (redirect); 0 otherwise. */
  proxyPort: number;
  /** The agent's number of the rule that produced the row. */
  ruleId: number;
}

/** One row: the key and value fields together (the shape the agent computes). */
export interface PolicyRow extends PolicyKey, PolicyValue {}

function checkRange(value: number, max: number, what: string): number {
  if (!Number.isInteger(value) || value < 0 || value > max) throw new RangeError(`${what} must be an integer in 0..${max}, got ${value}`);
  return value;
}

export function encodePolicyKey(key: PolicyKey): Buffer {
  const f = LAYOUTS.policyKey.fields;
  if (key.direction !== PolicyDirection.INGRESS && key.direction !== PolicyDirection.EGRESS) {
    throw new RangeError(`policy direction must be 1 (ingress) or 2 (egress), got ${key.direction}`);
  }
  const buf = Buffer.alloc(LAYOUTS.policyKey.size);
  writeU32(buf, f.endpoint_id, key.endpointId, "endpointId");
  writeU32(buf, f.identity, key.identity, "identity");
  buf.writeUInt16BE(checkRange(key.dport, 0xffff, "dport"), f.dport.offset);
  buf.writeUInt8(checkRange(key.proto, 0xff, "proto"), f.proto.offset);
  buf.writeUInt8(key.direction, f.direction.offset);
  return buf;
}

export function decodePolicyKey(buf: Buffer): PolicyKey {
  expectSize(buf, LAYOUTS.policyKey);
  const f = LAYOUTS.policyKey.fields;
  return {
    endpointId: readU32(buf, f.endpoint_id),
    identity: readU32(buf, f.identity),
    dport: buf.readUInt16BE(f.dport.offset),
    proto: buf.readUInt8(f.proto.offset),
    direction: buf.readUInt8(f.direction.offset),
  };
}

export function encodePolicyValue(value: PolicyValue): Buffer {
  const f = LAYOUTS.policyValue.fields;
  if (!(Object.values(PolicyAction) as number[]).includes(value.action)) throw new RangeError(`policy action must be 1, 2 or 3, got ${value.action}`);
  if (value.action === PolicyAction.REDIRECT && !value.proxyPort) throw new RangeError("a redirect row needs a proxyPort");
  const buf = Buffer.alloc(LAYOUTS.policyValue.size);
  buf.writeUInt8(value.action, f.action.offset);
  buf.writeUInt16BE(checkRange(value.proxyPort, 0xffff, "proxyPort"), f.proxy_port.offset);
  writeU32(buf, f.rule_id, value.ruleId, "ruleId");
  return buf;
}

export function decodePolicyValue(buf: Buffer): PolicyValue {
  expectSize(buf, LAYOUTS.policyValue);
  const f = LAYOUTS.policyValue.fields;
  return { action: buf.readUInt8(f.action.offset), proxyPort: buf.readUInt16BE(f.proxy_port.offset), ruleId: readU32(buf, f.rule_id) };
}

// --- bpfnet_ct --------------------------------------------------------------

/**
 * Which hook made a CT entry: egress out of the source endpoint, ingress into the destination;
 * service: a client's flow to a VIP as sent, pinning its backend (revNatIndex, backendId);
 * revnat: the same flow as translated (to the backend), so replies find their revNatIndex.
 */
export type CtHook = "egress" | "ingress" | "service" | "revnat";
const CT_HOOK_CODES: Record<CtHook, number> = {
  egress: ABI_CONSTANTS.BPFNET_CT_EGRESS,
  ingress: ABI_CONSTANTS.BPFNET_CT_INGRESS,
  service: ABI_CONSTANTS.BPFNET_CT_SERVICE,
  revnat: ABI_CONSTANTS.BPFNET_CT_REVNAT,
};

export interface CtKey {
  saddr: string;
  daddr: string;
  sport: number;
  dport: number;
  proto: number;
  hook: CtHook;
}

export interface CtValue {
  /** Deadline on CLOCK_MONOTONIC (bpf_ktime_get_ns; monotonicNowNs() in the same clock). */
  expiresNs: bigint;
  /** The peer's identity when the entry was made (0 when the direction was not enforced). */
  srcIdentity: number;
  revNatIndex: number;
  proxyPort: number;
  backendId: number;
  /** Union of the TCP flags seen. */
  tcpFlags: number;
  /** A reply passed (TCP: established). */
  seenReply: boolean;
  /** FIN or RST seen. */
  closing: boolean;
}

export interface CtEntry extends CtKey, CtValue {}

export function encodeCtKey(key: CtKey): Buffer {
  const f = LAYOUTS.ctKey.fields;
  if (!(key.hook in CT_HOOK_CODES)) throw new TypeError(`unknown CT hook ${JSON.stringify(key.hook)}`);
  const buf = Buffer.alloc(LAYOUTS.ctKey.size);
  parseIPv4(key.saddr).copy(buf, f.saddr.offset);
  parseIPv4(key.daddr).copy(buf, f.daddr.offset);
  buf.writeUInt16BE(checkRange(key.sport, 0xffff, "sport"), f.sport.offset);
  buf.writeUInt16BE(checkRange(key.dport, 0xffff, "dport"), f.dport.offset);
  buf.writeUInt8(checkRange(key.proto, 0xff, "proto"), f.proto.offset);
  buf.writeUInt8(CT_HOOK_CODES[key.hook], f.flags.offset);
  return buf;
}

export function decodeCtKey(buf: Buffer): CtKey {
  expectSize(buf, LAYOUTS.ctKey);
  const f = LAYOUTS.ctKey.fields;
  const code = buf.readUInt8(f.flags.offset);
  return {
    saddr: formatIPv4(buf, f.saddr.offset),
    daddr: formatIPv4(buf, f.daddr.offset),
    sport: buf.readUInt16BE(f.sport.offset),
    dport: buf.readUInt16BE(f.dport.offset),
    proto: buf.readUInt8(f.proto.offset),
    hook: (Object.keys(CT_HOOK_CODES) as CtHook[]).find((h) => CT_HOOK_CODES[h] === code) ?? "egress",
  };
}

export function decodeCtValue(buf: Buffer): CtValue {
  expectSize(buf, LAYOUTS.ctEntry);
  const f = LAYOUTS.ctEntry.fields;
  const flags = buf.readUInt8(f.flags.offset);
  const u16 = (field: FieldLayout) => (LE ? buf.readUInt16LE(field.offset) : buf.readUInt16BE(field.offset));
  return {
    expiresNs: readU64(buf, f.expires.offset),
    srcIdentity: readU32(buf, f.src_identity),
    revNatIndex: u16(f.rev_nat_index),
    proxyPort: buf.readUInt16BE(f.proxy_port.offset),
    backendId: readU32(buf, f.backend_id),
    tcpFlags: buf.readUInt8(f.tcp_flags.offset),
    seenReply: (flags & ABI_CONSTANTS.BPFNET_CT_SEEN_REPLY) !== 0,
    closing: (flags & ABI_CONSTANTS.BPFNET_CT_CLOSING) !== 0,
  };
}

/** Now on the clock CT deadlines use (CLOCK_MONOTONIC, as bpf_ktime_get_ns). */
export function monotonicNowNs(): bigint {
  return process.hrtime.bigint();
}

// --- bpfnet_verdicts --------------------------------------------------------

export type PolicyVerdict = "allow" | "deny" | "redirect" | "audit";
const VERDICT_CODES: Record<PolicyVerdict, number> = {
  allow: ABI_CONSTANTS.BPFNET_VERDICT_ALLOW,
  deny: ABI_CONSTANTS.BPFNET_VERDICT_DENY,
  redirect: ABI_CONSTANTS.BPFNET_VERDICT_REDIRECT,
  audit: ABI_CONSTANTS.BPFNET_VERDICT_AUDIT,
};

export interface VerdictKey {
  endpointId: number;
  /** The matching row's ruleId; 0 when no row matched (a default deny). */
  ruleId: number;
  /** PolicyDirection: 1 ingress, 2 egress. */
  direction: number;
  verdict: PolicyVerdict;
}

export function encodeVerdictKey(key: VerdictKey): Buffer {
  const f = LAYOUTS.verdictKey.fields;
  if (!(key.verdict in VERDICT_CODES)) throw new TypeError(`unknown verdict ${JSON.stringify(key.verdict)}`);
  const buf = Buffer.alloc(LAYOUTS.verdictKey.size);
  writeU32(buf, f.endpoint_id, key.endpointId, "endpointId");
  writeU32(buf, f.rule_id, key.ruleId, "ruleId");
  buf.writeUInt8(checkRange(key.direction, 0xff, "direction"), f.direction.offset);
  buf.writeUInt8(VERDICT_CODES[key.verdict], f.verdict.offset);
  return buf;
}

export function decodeVerdictKey(buf: Buffer): VerdictKey {
  expectSize(buf, LAYOUTS.verdictKey);
  const f = LAYOUTS.verdictKey.fields;
  const code = buf.readUInt8(f.verdict.offset);
  const verdict = (Object.keys(VERDICT_CODES) as PolicyVerdict[]).find((v) => VERDICT_CODES[v] === code);
  if (!verdict) throw new RangeError(`bpfnet_verdicts key has unknown verdict ${code}`);
  return { endpointId: readU32(buf, f.endpoint_id), ruleId: readU32(buf, f.rule_id), direction: buf.readUInt8(f.direction.offset), verdict };
}

// --- bpfnet_events (the node monitor's ring buffer) -------------------------

export type EventType = "drop" | "verdict" | "trace";
const EVENT_TYPE_CODES: Record<EventType, number> = {
  drop: ABI_CONSTANTS.BPFNET_EVENT_DROP,
  verdict: ABI_CONSTANTS.BPFNET_EVENT_VERDICT,
  trace: ABI_CONSTANTS.BPFNET_EVENT_TRACE,
};

/** The program that emitted an event. */
export type EventHook = "lxc" | "overlay" | "host" | "netdev" | "unknown";
const HOOK_CODES: Record<Exclude<EventHook, "unknown">, number> = {
  lxc: ABI_CONSTANTS.BPFNET_HOOK_LXC,
  overlay: ABI_CONSTANTS.BPFNET_HOOK_OVERLAY,
  host: ABI_CONSTANTS.BPFNET_HOOK_HOST,
  netdev: ABI_CONSTANTS.BPFNET_HOOK_NETDEV,
};

/** One bpfnet_event record, decoded. Identities are 0 where the datapath did not know them. */
export interface DatapathEvent {
  type: EventType;
  /** bpf_ktime_get_ns() (CLOCK_MONOTONIC) when the event was made. */
  timeNs: bigint;
  hook: EventHook;
  /** Device the packet was seen on. */
  ifindex: number;
  /** trace of a redirected packet: the device it was sent to; 0: the host stack. */
  toIfindex: number;
  /** drop and trace: the tc hook's side; verdict: the policy direction. */
  direction: Direction;
  /** drop: the DropReason (negative); trace: Verdict.FORWARDED or PASSED; verdict: 0. */
  reason: number;
  /** verdict events only. */
  verdict?: PolicyVerdict;
  proto: number;
  saddr: string;
  daddr: string;
  sport: number;
  dport: number;
  srcIdentity: number;
  dstIdentity: number;
  /** The local endpoint concerned; 0: none. */
  endpointId: number;
  /** verdict: the policy row's rule; 0: no row matched. */
  ruleId: number;
  /** Packet length in bytes. */
  length: number;
}

function codeName<T extends string>(codes: Record<T, number>, code: number): T | undefined {
  return (Object.keys(codes) as T[]).find((name) => codes[name] === code);
}

/** Decodes one ring record (exactly LAYOUTS.event.size bytes). */
export function decodeEvent(buf: Buffer): DatapathEvent {
  expectSize(buf, LAYOUTS.event);
  const f = LAYOUTS.event.fields;
  const typeCode = buf.readUInt8(f.type.offset);
  const type = codeName(EVENT_TYPE_CODES, typeCode);
  if (!type) throw new RangeError(`bpfnet_event has unknown type ${typeCode}`);
  // Verdicts carry the policy direction (1 ingress, 2 egress), drops and traces the hook's: the same codes.
  const direction: Direction = buf.readUInt8(f.direction.offset) === ABI_CONSTANTS.METRIC_EGRESS ? "egress" : "ingress";
  const reasonByte = buf.readUInt8(f.reason.offset);
  const verdict = codeName(VERDICT_CODES, buf.readUInt8(f.verdict.offset));
  const event: DatapathEvent = {
    type,
    timeNs: readU64(buf, f.time_ns.offset),
    hook: codeName(HOOK_CODES, buf.readUInt8(f.hook.offset)) ?? "unknown",
    ifindex: readU32(buf, f.ifindex),
    toIfindex: readU32(buf, f.to_ifindex),
    direction,
    reason: type === "drop" ? -reasonByte : type === "trace" ? reasonByte : 0,
    proto: buf.readUInt8(f.proto.offset),
    saddr: formatIPv4(buf, f.saddr.offset),
    daddr: formatIPv4(buf, f.daddr.offset),
    sport: buf.readUInt16BE(f.sport.offset),
    dport: buf.readUInt16BE(f.dport.offset),
    srcIdentity: readU32(buf, f.src_identity),
    dstIdentity: readU32(buf, f.dst_identity),
    endpointId: readU32(buf, f.endpoint_id),
    ruleId: readU32(buf, f.rule_id),
    length: readU32(buf, f.len),
  };
  if (type === "verdict" && verdict) event.verdict = verdict;
  return event;
}

/** What the node monitor's bits of bpfnet_config.flags say. */
export interface MonitorSettings {
  /** No events at all (the counters stay). */
  eventsOff?: boolean;
  /** Some endpoint has EndpointFlags.TRACE: the exit path looks packets' endpoints up. */
  traceEndpoints?: boolean;
  /** Trace 1 in N forwarded packets; 0/absent: no sampling. At most 65535. */
  traceSampleEvery?: number;
}

const MONITOR_FLAG_MASK =
  ABI_CONSTANTS.BPFNET_CFG_EVENTS_OFF | ABI_CONSTANTS.BPFNET_CFG_TRACE_ENDPOINTS | (0xffff << ABI_CONSTANTS.BPFNET_CFG_TRACE_SAMPLE_SHIFT);

/** bpfnet_config.flags with the monitor's bits set from `settings` (other bits kept). */
export function withMonitorFlags(flags: number, settings: MonitorSettings): number {
  const every = settings.traceSampleEvery ?? 0;
  if (!Number.isInteger(every) || every < 0 || every > 0xffff) throw new RangeError(`trace sampling must be 0..65535, got ${every}`);
  let out = (flags & ~MONITOR_FLAG_MASK) | (every << ABI_CONSTANTS.BPFNET_CFG_TRACE_SAMPLE_SHIFT);
  if (settings.eventsOff) out |= ABI_CONSTANTS.BPFNET_CFG_EVENTS_OFF;
  if (settings.traceEndpoints) out |= ABI_CONSTANTS.BPFNET_CFG_TRACE_ENDPOINTS;
  return out >>> 0;
}

/** The monitor's bits of bpfnet_config.flags. */
export function monitorSettings(flags: number): Required<MonitorSettings> {
  return {
    eventsOff: (flags & ABI_CONSTANTS.BPFNET_CFG_EVENTS_OFF) !== 0,
    traceEndpoints: (flags & ABI_CONSTANTS.BPFNET_CFG_TRACE_ENDPOINTS) !== 0,
    traceSampleEvery: (flags >>> ABI_CONSTANTS.BPFNET_CFG_TRACE_SAMPLE_SHIFT) & 0xffff,
  };
}

// --- Service load balancing (bpfnet_lb_*, bpfnet_sock_cfg) ------------------

/** bpfnet_lb_svc.flags of a service row. */
export const LbServiceFlags = {
  /** sessionAffinity clientIP: a client's new flows go to its last backend within the timeout. */
  AFFINITY: ABI_CONSTANTS.BPFNET_LB_AFFINITY,
  /** Select through the service's Maglev table (bpfnet_lb_mglv) instead of at random. */
  MAGLEV: ABI_CONSTANTS.BPFNET_LB_MAGLEV,
} as const;

/** bpfnet_lb_be.flags. */
export const LbBackendFlags = {
  /** No new flows; flows pinned in CT (and sockets already connected) continue. */
  TERMINATING: ABI_CONSTANTS.BPFNET_LB_BE_TERMINATING,
} as const;

/** Size of a service's Maglev table (prime); the datapath uses entry lbFlowHash(tuple) % MAGLEV_M. */
export const MAGLEV_M = ABI_CONSTANTS.BPFNET_MAGLEV_M;

/** IP protocols a service port may have. */
export const LbProto = { TCP: 6, UDP: 17 } as const;

/** A service frontend: VIP, port and protocol (LbProto). */
export interface LbServiceKey {
  vip: string;
  port: number;
  /** 6 (TCP) or 17 (UDP). */
  proto: number;
}

/** One bpfnet_lb_svc value: a row (slot 0) or a backend slot (1..count). */
export interface LbServiceValue {
  /** Slots 1..count: the backend; 0 in the row. */
  backendId: number;
  /** Row: active slots. */
  count: number;
  /** Row: the service's cluster-wide number (1..65535), the key of bpfnet_lb_rnat and bpfnet_lb_mglv. */
  revNatIndex: number;
  /** Row: LbServiceFlags. */
  flags: number;
  /** Row: clientIP affinity lifetime in seconds. */
  affinityTimeoutS: number;
}

/** A backend: where a service's flow is translated to. */
export interface LbBackend {
  addr: string;
  port: number;
  /** 6 (TCP) or 17 (UDP). */
  proto: number;
  /** LbBackendFlags. */
  flags?: number;
}

/** A reverse-NAT entry: the frontend replies are rewritten to. */
export interface LbRevNat {
  vip: string;
  port: number;
}

/** bpfnet_lb_aff key: a client (tc: its address; socket hook: 0.0.0.0, the host) and a service. */
export interface LbAffinityKey {
  clientIp: string;
  revNatIndex: number;
}

export interface LbAffinity {
  /** CLOCK_MONOTONIC ns of the last new flow that used it (monotonicNowNs()). */
  lastUsedNs: bigint;
  backendId: number;
}

/** What a socket hook translated: (socket cookie, backend) → the VIP shown to the application. */
export interface LbSockNatEntry {
  cookie: bigint;
  addr: string;
  port: number;
  vip: string;
  vipPort: number;
  revNatIndex: number;
}

/** bpfnet_sock_cfg.flags. */
export const SockConfigFlags = {
  /** A service has been written here: the tc datapath looks for service flows (unset: it costs nothing). */
  LB_ACTIVE: ABI_CONSTANTS.BPFNET_LB_ACTIVE,
} as const;

/** bpfnet_sock_cfg: the network namespace whose sockets the socket hooks translate, and SockConfigFlags. */
export interface SockConfig {
  /** SO_NETNS_COOKIE of the host's namespace; 0n: the hooks translate nothing. */
  netnsCookie: bigint;
  flags?: number;
}

function writeU16(buf: Buffer, field: FieldLayout, value: number, what: string): void {
  checkRange(value, 0xffff, what);
  if (LE) buf.writeUInt16LE(value, field.offset);
  else buf.writeUInt16BE(value, field.offset);
}

function readU16(buf: Buffer, field: FieldLayout): number {
  return LE ? buf.readUInt16LE(field.offset) : buf.readUInt16BE(field.offset);
}

function writeU64(buf: Buffer, offset: number, value: bigint): void {
  if (value < 0n || value > 0xffffffffffffffffn) throw new RangeError(`u64 out of range: ${value}`);
  if (LE) buf.writeBigUInt64LE(value, offset);
  else buf.writeBigUInt64BE(value, offset);
}

function lbProto(proto: number): number {
  if (proto !== LbProto.TCP && proto !== LbProto.UDP) throw new RangeError(`service protocol must be 6 (TCP) or 17 (UDP), got ${proto}`);
  return proto;
}

function lbPort(port: number, what: string): number {
  if (!Number.isInteger(port) || port < 1 || port > 0xffff) throw new RangeError(`${what} must be a port in 1..65535, got ${port}`);
  return port;
}

/** rev_nat_index: 1..65535 (0 means "no service" in CT entries). */
export function checkRevNatIndex(index: number): number {
  if (!Number.isInteger(index) || index < 1 || index > 0xffff) throw new RangeError(`revNatIndex must be in 1..65535, got ${index}`);
  return index;
}

/** Backend ids: 1..2^32-1 (0 is "none" in service rows and CT entries). */
export function checkBackendId(id: number): number {
  if (!Number.isInteger(id) || id < 1 || id > 0xffffffff) throw new RangeError(`backend id must be in 1..4294967295, got ${id}`);
  return id;
}

/** Keys that are a bare u32 (backend id, rev_nat_index). */
export function encodeU32Key(value: number, what: string): Buffer {
  const buf = Buffer.alloc(4);
  writeU32(buf, { offset: 0, size: 4 }, value, what);
  return buf;
}

export function decodeU32Key(buf: Buffer): number {
  if (buf.length !== 4) throw new RangeError(`u32 key is 4 bytes, got ${buf.length}`);
  return readU32(buf, { offset: 0, size: 4 });
}

export function encodeLbSvcKey(key: LbServiceKey, slot: number): Buffer {
  const f = LAYOUTS.lbSvcKey.fields;
  const buf = Buffer.alloc(LAYOUTS.lbSvcKey.size);
  parseIPv4(key.vip).copy(buf, f.vip.offset);
  buf.writeUInt16BE(lbPort(key.port, "service port"), f.port.offset);
  writeU16(buf, f.slot, slot, "slot");
  buf.writeUInt8(lbProto(key.proto), f.proto.offset);
  return buf;
}

export function decodeLbSvcKey(buf: Buffer): LbServiceKey & { slot: number } {
  expectSize(buf, LAYOUTS.lbSvcKey);
  const f = LAYOUTS.lbSvcKey.fields;
  return { vip: formatIPv4(buf, f.vip.offset), port: buf.readUInt16BE(f.port.offset), proto: buf.readUInt8(f.proto.offset), slot: readU16(buf, f.slot) };
}

export function encodeLbSvc(value: LbServiceValue): Buffer {
  const f = LAYOUTS.lbSvc.fields;
  const buf = Buffer.alloc(LAYOUTS.lbSvc.size);
  writeU32(buf, f.backend_id, value.backendId, "backendId");
  writeU16(buf, f.count, value.count, "count");
  writeU16(buf, f.rev_nat_index, value.revNatIndex, "revNatIndex");
  buf.writeUInt8(checkRange(value.flags, 0xff, "flags"), f.flags.offset);
  writeU16(buf, f.affinity_timeout_s, value.affinityTimeoutS, "affinityTimeoutS");
  return buf;
}

export function decodeLbSvc(buf: Buffer): LbServiceValue {
  expectSize(buf, LAYOUTS.lbSvc);
  const f = LAYOUTS.lbSvc.fields;
  return {
    backendId: readU32(buf, f.backend_id),
    count: readU16(buf, f.count),
    revNatIndex: readU16(buf, f.rev_nat_index),
    flags: buf.readUInt8(f.flags.offset),
    affinityTimeoutS: readU16(buf, f.affinity_timeout_s),
  };
}

export function encodeLbBackend(be: LbBackend): Buffer {
  const f = LAYOUTS.lbBackend.fields;
  const buf = Buffer.alloc(LAYOUTS.lbBackend.size);
  parseIPv4(be.addr).copy(buf, f.addr.offset);
  buf.writeUInt16BE(lbPort(be.port, "backend port"), f.port.offset);
  buf.writeUInt8(lbProto(be.proto), f.proto.offset);
  buf.writeUInt8(checkRange(be.flags ?? 0, 0xff, "flags"), f.flags.offset);
  return buf;
}

export function decodeLbBackend(buf: Buffer): LbBackend {
  expectSize(buf, LAYOUTS.lbBackend);
  const f = LAYOUTS.lbBackend.fields;
  return { addr: formatIPv4(buf, f.addr.offset), port: buf.readUInt16BE(f.port.offset), proto: buf.readUInt8(f.proto.offset), flags: buf.readUInt8(f.flags.offset) };
}

export function encodeLbRevNat(entry: LbRevNat): Buffer {
  const f = LAYOUTS.lbRevNat.fields;
  const buf = Buffer.alloc(LAYOUTS.lbRevNat.size);
  parseIPv4(entry.vip).copy(buf, f.vip.offset);
  buf.writeUInt16BE(lbPort(entry.port, "service port"), f.port.offset);
  return buf;
}

export function decodeLbRevNat(buf: Buffer): LbRevNat {
  expectSize(buf, LAYOUTS.lbRevNat);
  const f = LAYOUTS.lbRevNat.fields;
  return { vip: formatIPv4(buf, f.vip.offset), port: buf.readUInt16BE(f.port.offset) };
}

/** A Maglev table: exactly MAGLEV_M backend ids, each >= 1. */
export function encodeLbMaglev(backendIds: readonly number[]): Buffer {
  if (backendIds.length !== MAGLEV_M) throw new RangeError(`a Maglev table has ${MAGLEV_M} entries, got ${backendIds.length}`);
  const buf = Buffer.alloc(LAYOUTS.lbMaglev.size);
  backendIds.forEach((id, i) => writeU32(buf, { offset: 4 * i, size: 4 }, checkBackendId(id), `maglev[${i}]`));
  return buf;
}

export function decodeLbMaglev(buf: Buffer): number[] {
  expectSize(buf, LAYOUTS.lbMaglev);
  return Array.from({ length: MAGLEV_M }, (_, i) => readU32(buf, { offset: 4 * i, size: 4 }));
}

export function encodeLbAffinityKey(key: LbAffinityKey): Buffer {
  const f = LAYOUTS.lbAffinityKey.fields;
  const buf = Buffer.alloc(LAYOUTS.lbAffinityKey.size);
  parseIPv4(key.clientIp).copy(buf, f.client_ip.offset);
  writeU32(buf, f.rev_nat_index, checkRevNatIndex(key.revNatIndex), "revNatIndex");
  return buf;
}

export function decodeLbAffinityKey(buf: Buffer): LbAffinityKey {
  expectSize(buf, LAYOUTS.lbAffinityKey);
  const f = LAYOUTS.lbAffinityKey.fields;
  return { clientIp: formatIPv4(buf, f.client_ip.offset), revNatIndex: readU32(buf, f.rev_nat_index) };
}

export function encodeLbAffinity(value: LbAffinity): Buffer {
  const f = LAYOUTS.lbAffinity.fields;
  const buf = Buffer.alloc(LAYOUTS.lbAffinity.size);
  writeU64(buf, f.last_used_ns.offset, value.lastUsedNs);
  writeU32(buf, f.backend_id, checkBackendId(value.backendId), "backendId");
  return buf;
}

export function decodeLbAffinity(buf: Buffer): LbAffinity {
  expectSize(buf, LAYOUTS.lbAffinity);
  const f = LAYOUTS.lbAffinity.fields;
  return { lastUsedNs: readU64(buf, f.last_used_ns.offset), backendId: readU32(buf, f.backend_id) };
}

export function decodeLbSockNat(key: Buffer, value: Buffer): LbSockNatEntry {
  expectSize(key, LAYOUTS.lbSockNatKey);
  expectSize(value, LAYOUTS.lbSockNat);
  const k = LAYOUTS.lbSockNatKey.fields;
  const v = LAYOUTS.lbSockNat.fields;
  return {
    cookie: readU64(key, k.cookie.offset),
    addr: formatIPv4(key, k.addr.offset),
    port: key.readUInt16BE(k.port.offset),
    vip: formatIPv4(value, v.vip.offset),
    vipPort: value.readUInt16BE(v.port.offset),
    revNatIndex: readU16(value, v.rev_nat_index),
  };
}

export function encodeLbNoBackendKey(revNatIndex: number): Buffer {
  const buf = Buffer.alloc(LAYOUTS.lbNoBackendKey.size);
  writeU32(buf, LAYOUTS.lbNoBackendKey.fields.rev_nat_index, revNatIndex, "revNatIndex");
  return buf;
}

export function decodeLbNoBackendKey(buf: Buffer): number {
  expectSize(buf, LAYOUTS.lbNoBackendKey);
  return readU32(buf, LAYOUTS.lbNoBackendKey.fields.rev_nat_index);
}

export function encodeSockConfig(cfg: SockConfig): Buffer {
  const f = LAYOUTS.sockConfig.fields;
  const buf = Buffer.alloc(LAYOUTS.sockConfig.size);
  writeU64(buf, f.netns_cookie.offset, cfg.netnsCookie);
  writeU32(buf, f.flags, cfg.flags ?? 0, "flags");
  return buf;
}

export function decodeSockConfig(buf: Buffer): SockConfig {
  expectSize(buf, LAYOUTS.sockConfig);
  const f = LAYOUTS.sockConfig.fields;
  return { netnsCookie: readU64(buf, f.netns_cookie.offset), flags: readU32(buf, f.flags) };
}

/** The tuple lbFlowHash mixes: addresses dotted, ports and protocol as numbers. */
export interface LbFlowTuple {
  saddr: string;
  daddr: string;
  sport: number;
  dport: number;
  proto: number;
}

function fmix32(x: number): number {
  x = (x ^ (x >>> 16)) >>> 0;
  x = Math.imul(x, 0x85ebca6b) >>> 0;
  x = (x ^ (x >>> 13)) >>> 0;
  x = Math.imul(x, 0xc2b2ae35) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

/**
 * The datapath's flow hash (lib/lb.h lb_flow_hash), over the tuple as the client sent it (to the
 * VIP). A Maglev service's flow takes table entry lbFlowHash(tuple) % MAGLEV_M.
 */
export function lbFlowHash(t: LbFlowTuple): number {
  const word = (ip: string) => parseIPv4(ip).readUInt32BE(0);
  let h = (0x9e3779b9 ^ t.proto) >>> 0;
  h = fmix32((h ^ word(t.saddr)) >>> 0);
  h = fmix32((h ^ word(t.daddr)) >>> 0);
  return fmix32((h ^ (((t.sport << 16) | t.dport) >>> 0)) >>> 0);
}
