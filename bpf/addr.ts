/** Parsing and formatting of the address types the maps store. Strict: bad input throws. */

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/** "10.0.0.1" → 4 bytes in network order. */
export function parseIPv4(text: string): Buffer {
  const match = IPV4.exec(text);
  const octets = match ? match.slice(1).map(Number) : [];
  if (!match || octets.some((o) => o > 255)) throw new TypeError(`not an IPv4 address: ${JSON.stringify(text)}`);
  return Buffer.from(octets);
}

export function formatIPv4(buf: Buffer, offset = 0): string {
  return `${buf[offset]}.${buf[offset + 1]}.${buf[offset + 2]}.${buf[offset + 3]}`;
}

/** "02:00:00:00:00:01" → 6 bytes. */
export function parseMac(text: string): Buffer {
  if (!MAC.test(text)) throw new TypeError(`not a MAC address: ${JSON.stringify(text)}`);
  return Buffer.from(text.split(":").map((h) => parseInt(h, 16)));
}

export function formatMac(buf: Buffer, offset = 0): string {
  return [...buf.subarray(offset, offset + 6)].map((b) => b.toString(16).padStart(2, "0")).join(":");
}

export interface Cidr {
  addr: Buffer;
  prefixLen: number;
}

/**
 * "10.1.0.0/24" → address and prefix length. Host bits must be zero: the LPM
 * trie would keep them in the key, and a later delete with other host bits
 * would miss the entry.
 */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf("/");
  const prefixText = slash < 0 ? "" : text.slice(slash + 1);
  if (!/^\d{1,2}$/.test(prefixText) || Number(prefixText) > 32) {
    throw new TypeError(`not an IPv4 CIDR: ${JSON.stringify(text)}`);
  }
  const addr = parseIPv4(text.slice(0, slash));
  const prefixLen = Number(prefixText);
  const value = addr.readUInt32BE(0);
  const mask = prefixLen === 0 ? 0 : (0xffffffff << (32 - prefixLen)) >>> 0;
  if ((value & ~mask) >>> 0 !== 0) throw new TypeError(`host bits set in CIDR ${text}`);
  return { addr, prefixLen };
}

export function formatCidr(addr: Buffer, prefixLen: number, offset = 0): string {
  return `${formatIPv4(addr, offset)}/${prefixLen}`;
}
