// Pure IPv4 and CIDR arithmetic for the IPAM and the network spec checks. No I/O.
// Addresses are unsigned 32-bit integers held in JS numbers; sizes use multiplication,
// not shifts, because a /0 holds 2^32 addresses and `1 << 32` is 1 in JS.

export interface Cidr {
  /** Network address as an unsigned 32-bit integer. */
  base: number;
  /** Prefix length, 0..32. */
  prefix: number;
}

/**
 * Parses dotted-quad IPv4; leading zeros are refused (they mean octal to some tools). One pass
 * over the characters, no regex or split: every agent runs it for each ipcache row of each
 * reconcile pass (tens of thousands of rows at thousands of hosts: docs/scale.md).
 */
export function parseIpv4(text: string): number | undefined {
  if (typeof text !== "string" || text.length < 7 || text.length > 15) return undefined;
  let n = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : 46; // the end closes the last octet like a dot
    if (c === 46) {
      // An empty octet, or a leading zero ("010"), is refused.
      if (digits === 0 || (digits > 1 && text.charCodeAt(i - digits) === 48) || octet > 255) return undefined;
      n = n * 256 + octet;
      if (i < text.length && ++dots > 3) return undefined;
      octet = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57 && digits < 3) {
      octet = octet * 10 + (c - 48);
      digits++;
    } else return undefined;
  }
  return dots === 3 ? n : undefined;
}

export function formatIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

/** Number of addresses in a block of this prefix length. */
export function blockSize(prefix: number): number {
  return 2 ** (32 - prefix);
}

/** Parses "a.b.c.d/len" without judging alignment; `hostBitsSet` tells whether it was aligned. */
export function parseCidrLoose(text: string): (Cidr & { address: number; hostBitsSet: boolean }) | undefined {
  if (typeof text !== "string") return undefined;
  const slash = text.indexOf("/");
  if (slash < 0) return undefined;
  const address = parseIpv4(text.slice(0, slash));
  const lenText = text.slice(slash + 1);
  if (address === undefined || !/^(0|[1-9][0-9]?)$/.test(lenText)) return undefined;
  const prefix = Number(lenText);
  if (prefix > 32) return undefined;
  const size = blockSize(prefix);
  const base = address - (address % size);
  return { base, prefix, address, hostBitsSet: base !== address };
}

/** Strict parse: well-formed and aligned, else undefined. */
export function parseCidr(text: string): Cidr | undefined {
  const c = parseCidrLoose(text);
  return c && !c.hostBitsSet ? { base: c.base, prefix: c.prefix } : undefined;
}

export function formatCidr(c: Cidr): string {
  return `${formatIpv4(c.base)}/${c.prefix}`;
}

/** Last address of the block. */
export function lastAddress(c: Cidr): number {
  return c.base + blockSize(c.prefix) - 1;
}

export function containsAddress(c: Cidr, address: number): boolean {
  return address >= c.base && address <= lastAddress(c);
}

export function containsCidr(outer: Cidr, inner: Cidr): boolean {
  return inner.prefix >= outer.prefix && containsAddress(outer, inner.base);
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  return a.base <= lastAddress(b) && b.base <= lastAddress(a);
}

/** How many host subnets of `hostPrefix` the pool holds. */
export function subnetCount(pool: Cidr, hostPrefix: number): number {
  return 2 ** (hostPrefix - pool.prefix);
}

/** The i-th host subnet of the pool (0-based). */
export function nthSubnet(pool: Cidr, hostPrefix: number, i: number): Cidr {
  return { base: pool.base + i * blockSize(hostPrefix), prefix: hostPrefix };
}

/** Index of `sub` in the pool, or undefined when it is not one of the pool's host subnets. */
export function subnetIndex(pool: Cidr, hostPrefix: number, sub: Cidr): number | undefined {
  if (sub.prefix !== hostPrefix || !containsCidr(pool, sub)) return undefined;
  const offset = sub.base - pool.base;
  return offset % blockSize(hostPrefix) === 0 ? offset / blockSize(hostPrefix) : undefined;
}

/** The pod gateway (router) address: the first usable address of the pod CIDR. */
export function gatewayIp(c: Cidr): string {
  return formatIpv4(c.base + 1);
}

/** Canonical text of a CIDR string, or undefined if it is malformed or misaligned. */
export function canonicalCidr(text: string): string | undefined {
  const c = parseCidr(text);
  return c ? formatCidr(c) : undefined;
}
