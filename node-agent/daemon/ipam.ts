// Addresses inside this host's pod CIDR. Pure: the endpoint manager records every address in
// its durable state before using it, so "used" is always the state's view.
import { blockSize, formatIpv4, parseCidr, parseIpv4 } from "../../provider/ipam/cidr";

export interface PodNetwork {
  cidr: string;
  /** Network address (never handed out). */
  network: string;
  /** First usable address: on bpfnet_host, and every container's default gateway. */
  gateway: string;
  /** Last address (never handed out). */
  broadcast: string;
  prefixLength: number;
  /** How many addresses containers can get. */
  capacity: number;
}

export function podNetwork(cidr: string): PodNetwork {
  const c = parseCidr(cidr);
  if (!c) throw new TypeError(`pod CIDR ${JSON.stringify(cidr)} is not an aligned IPv4 CIDR`);
  if (c.prefix > 30) throw new RangeError(`pod CIDR ${cidr} is too small: it needs a network, a gateway, one address and a broadcast address (/30 or larger)`);
  const size = blockSize(c.prefix);
  return {
    cidr,
    network: formatIpv4(c.base),
    gateway: formatIpv4(c.base + 1),
    broadcast: formatIpv4(c.base + size - 1),
    prefixLength: c.prefix,
    capacity: size - 3,
  };
}

/** Whether `ip` is one containers may get: inside the CIDR, not network, gateway or broadcast. */
export function isAssignable(pod: PodNetwork, ip: string): boolean {
  const n = parseIpv4(ip);
  const base = parseIpv4(pod.network)!;
  return n !== undefined && n >= base + 2 && n <= base + blockSize(pod.prefixLength) - 2;
}

/**
 * The next free address after `after` (round robin, like CNI's host-local): a released
 * address is only handed out again once the others were, so a stale peer of the old owner
 * (conntrack, ARP caches elsewhere) has time to forget it. Undefined when the pool is full.
 */
export function nextFreeIp(pod: PodNetwork, used: ReadonlySet<string>, after?: string): string | undefined {
  const first = parseIpv4(pod.network)! + 2;
  const count = pod.capacity;
  const afterN = after !== undefined && isAssignable(pod, after) ? parseIpv4(after)! : first - 1;
  for (let i = 1; i <= count; i++) {
    const candidate = formatIpv4(first + ((afterN - first + i) % count + count) % count);
    if (!used.has(candidate)) return candidate;
  }
  return undefined;
}
