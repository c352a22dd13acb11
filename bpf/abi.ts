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
  BPFNET_ENDPOINTS_MAX: 16384,
  BPFNET_TUNNEL_MAX: 4096,
  BPFNET_METRICS_MAX: 8192,
  BPFNET_PEERS_MAX: 4096,
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
} as const;

/** Metric reasons of packets that were not dropped. */
export const Verdict = {
  FORWARDED: ABI_CONSTANTS.REASON_FORWARDED,
  PASSED: ABI_CONSTANTS.REASON_PASSED,
} as const;

/** tc return codes (linux/pkt_cls.h) seen in test runs. */
export const TcAction = { OK: 0, SHOT: 2, REDIRECT: 7 } as const;

/** "forwarded", "passed", or the drop reason's name in kebab case ("unknown-endpoint"). */
export function reasonName(reason: number): string {
  if (reason === Verdict.FORWARDED) return "forwarded";
  if (reason === Verdict.PASSED) return "passed";
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
  config: layout("bpfnet_config", 32, {
    mode: [0, 4],
    vni: [4, 4],
    vxlan_ifindex: [8, 4],
    host_ifindex: [12, 4],
    flags: [16, 4],
    gateway_ip4: [20, 4],
    pad: [24, 8],
  }),
  peerKey: layout("bpfnet_peer_key", 4, { ip4: [0, 4] }),
  peer: layout("bpfnet_peer", 8, { flags: [0, 4], pad: [4, 4] }),
  metricsKey: layout("bpfnet_metrics_key", 8, { id: [0, 4], direction: [4, 1], reason: [5, 1], pad: [6, 2] }),
  metricsValue: layout("bpfnet_metrics_value", 16, { packets: [0, 8], bytes: [8, 8] }),
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
  // Drop reasons are stored as their absolute value; the two non-drop codes are small.
  const reason = reasonByte <= Verdict.PASSED ? reasonByte : -reasonByte;
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
