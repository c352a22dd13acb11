/** Crafted Ethernet frames for BPF_PROG_TEST_RUN, and a parser for what comes back. */

const ETH_HLEN = 14;
const ETH_P_IP = 0x0800;
const ETH_P_ARP = 0x0806;

function mac(text: string): Buffer {
  return Buffer.from(text.split(":").map((h) => parseInt(h, 16)));
}

function ip(text: string): Buffer {
  return Buffer.from(text.split(".").map(Number));
}

function ethernet(dstMac: string, srcMac: string, ethertype: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(ETH_HLEN);
  mac(dstMac).copy(header, 0);
  mac(srcMac).copy(header, 6);
  header.writeUInt16BE(ethertype, 12);
  return Buffer.concat([header, payload]);
}

/** RFC 1071 one's complement sum, folded; over a header with a correct checksum it is 0xffff. */
export function onesComplementSum(buf: Buffer): number {
  let sum = 0;
  for (let i = 0; i + 1 < buf.length; i += 2) sum += buf.readUInt16BE(i);
  if (buf.length % 2) sum += buf[buf.length - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

function checksum(buf: Buffer): number {
  return ~onesComplementSum(buf) & 0xffff;
}

export interface Ipv4FrameSpec {
  srcMac: string;
  dstMac: string;
  src: string;
  dst: string;
  ttl?: number;
}

function ipv4(spec: Ipv4FrameSpec, protocol: number, l4: Buffer): Buffer {
  const header = Buffer.alloc(20);
  header[0] = 0x45;
  header.writeUInt16BE(20 + l4.length, 2);
  header.writeUInt16BE(0x1234, 4); // id
  header.writeUInt16BE(0x4000, 6); // DF
  header[8] = spec.ttl ?? 64;
  header[9] = protocol;
  ip(spec.src).copy(header, 12);
  ip(spec.dst).copy(header, 16);
  header.writeUInt16BE(checksum(header), 10);
  return ethernet(spec.dstMac, spec.srcMac, ETH_P_IP, Buffer.concat([header, l4]));
}

/** ICMP echo request with a 32-byte payload. */
export function icmpEcho(spec: Ipv4FrameSpec): Buffer {
  const icmp = Buffer.alloc(8 + 32);
  icmp[0] = 8; // echo request
  icmp.writeUInt16BE(0x4242, 4);
  icmp.writeUInt16BE(1, 6);
  for (let i = 8; i < icmp.length; i++) icmp[i] = i;
  icmp.writeUInt16BE(checksum(icmp), 2);
  return ipv4(spec, 1, icmp);
}

/** UDP datagram (checksum 0: allowed for IPv4). */
export function udp(spec: Ipv4FrameSpec, srcPort: number, dstPort: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt16BE(srcPort, 0);
  header.writeUInt16BE(dstPort, 2);
  header.writeUInt16BE(8 + payload.length, 4);
  return ipv4(spec, 17, Buffer.concat([header, payload]));
}

export const TCP_FLAGS = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10 } as const;

/** TCP segment without options (checksum left 0: test runs and the datapath do not verify it). */
export function tcp(spec: Ipv4FrameSpec, srcPort: number, dstPort: number, flags: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(20);
  header.writeUInt16BE(srcPort, 0);
  header.writeUInt16BE(dstPort, 2);
  header.writeUInt32BE(1, 4); // seq
  header[12] = 5 << 4; // data offset: 5 words
  header[13] = flags;
  header.writeUInt16BE(65535, 14); // window
  return ipv4(spec, 6, Buffer.concat([header, payload]));
}

/** ICMP echo reply (type 0) with the identifier icmpEcho uses (0x4242). */
export function icmpEchoReply(spec: Ipv4FrameSpec): Buffer {
  const icmp = Buffer.alloc(8 + 32);
  icmp[0] = 0;
  icmp.writeUInt16BE(0x4242, 4);
  icmp.writeUInt16BE(1, 6);
  icmp.writeUInt16BE(checksum(icmp), 2);
  return ipv4(spec, 1, icmp);
}

/** Broadcast ARP who-has targetIp. */
export function arpRequest(srcMac: string, senderIp: string, targetIp: string): Buffer {
  const arp = Buffer.alloc(28);
  arp.writeUInt16BE(1, 0); // Ethernet
  arp.writeUInt16BE(ETH_P_IP, 2);
  arp[4] = 6;
  arp[5] = 4;
  arp.writeUInt16BE(1, 6); // request
  mac(srcMac).copy(arp, 8);
  ip(senderIp).copy(arp, 14);
  ip(targetIp).copy(arp, 24);
  return ethernet("ff:ff:ff:ff:ff:ff", srcMac, ETH_P_ARP, arp);
}

export interface ParsedFrame {
  dstMac: string;
  srcMac: string;
  ethertype: number;
  ttl: number;
  src: string;
  dst: string;
  /** The 20-byte IPv4 header's checksum verifies. */
  checksumValid: boolean;
  /** Everything after the IPv4 header. */
  l4: Buffer;
}

export function parseIpv4Frame(frame: Buffer): ParsedFrame {
  const hex = (b: Buffer) => [...b].map((x) => x.toString(16).padStart(2, "0")).join(":");
  const iph = frame.subarray(ETH_HLEN, ETH_HLEN + 20);
  return {
    dstMac: hex(frame.subarray(0, 6)),
    srcMac: hex(frame.subarray(6, 12)),
    ethertype: frame.readUInt16BE(12),
    ttl: iph[8],
    src: [...iph.subarray(12, 16)].join("."),
    dst: [...iph.subarray(16, 20)].join("."),
    checksumValid: onesComplementSum(iph) === 0xffff,
    l4: frame.subarray(ETH_HLEN + 20),
  };
}

/** The TCP/UDP checksum field's offset in the segment (no IPv4 options). */
function l4ChecksumOffset(protocol: number): number {
  if (protocol === 6) return 16;
  if (protocol === 17) return 6;
  throw new RangeError(`no L4 checksum for protocol ${protocol}`);
}

/** The pseudo-header (RFC 793/768) and segment of an IPv4 TCP/UDP frame without options. */
function pseudoAndSegment(frame: Buffer): { protocol: number; bytes: Buffer } {
  const iph = frame.subarray(ETH_HLEN, ETH_HLEN + 20);
  const segment = frame.subarray(ETH_HLEN + 20, ETH_HLEN + iph.readUInt16BE(2));
  const pseudo = Buffer.alloc(12);
  iph.copy(pseudo, 0, 12, 20);
  pseudo[9] = iph[9];
  pseudo.writeUInt16BE(segment.length, 10);
  return { protocol: iph[9], bytes: Buffer.concat([pseudo, segment]) };
}

/** A copy of a TCP/UDP frame with its L4 checksum computed from scratch. */
export function withL4Checksum(frame: Buffer): Buffer {
  const out = Buffer.from(frame);
  const { protocol } = pseudoAndSegment(out);
  const at = ETH_HLEN + 20 + l4ChecksumOffset(protocol);
  out.writeUInt16BE(0, at);
  const sum = checksum(pseudoAndSegment(out).bytes);
  out.writeUInt16BE(protocol === 17 && sum === 0 ? 0xffff : sum, at);
  return out;
}

/** Whether a TCP/UDP frame's L4 checksum verifies (recomputed over pseudo-header and segment). */
export function l4ChecksumValid(frame: Buffer): boolean {
  return onesComplementSum(pseudoAndSegment(frame).bytes) === 0xffff;
}

/** The TCP/UDP ports of an IPv4 frame without options. */
export function l4Ports(frame: Buffer): { sport: number; dport: number } {
  return { sport: frame.readUInt16BE(ETH_HLEN + 20), dport: frame.readUInt16BE(ETH_HLEN + 22) };
}

/** An ICMP error (e.g. type 3 unreachable, 11 time exceeded) quoting `quoted` (an IPv4 header and the start of its payload). */
export function icmpError(spec: Ipv4FrameSpec, type: number, code: number, quoted: Buffer): Buffer {
  const icmp = Buffer.concat([Buffer.alloc(8), quoted]);
  icmp[0] = type;
  icmp[1] = code;
  icmp.writeUInt16BE(checksum(icmp), 2);
  return ipv4(spec, 1, icmp);
}

/** Whether an IPv4 frame's ICMP message checksum verifies. */
export function icmpChecksumValid(frame: Buffer): boolean {
  return onesComplementSum(frame.subarray(ETH_HLEN + 20, ETH_HLEN + frame.readUInt16BE(ETH_HLEN + 2))) === 0xffff;
}
