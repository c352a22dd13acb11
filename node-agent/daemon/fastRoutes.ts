// The l3 fast path's routes (bpfnet_routes): each other host's pod CIDR → the underlay device,
// so bpf_lxc sends those packets out of it directly (bpf/lib/fib.h). Only known peers' CIDRs
// get a row: everything else keeps going through the host stack.
import type { Peer } from "./view";

/** The desired map content, by pod CIDR: the underlay ifindex (none in vxlan mode). Pure. */
export function desiredRoutes(mode: "vxlan" | "l3", peers: readonly Peer[], underlayIfindex: number): Map<string, number> {
  const out = new Map<string, number>();
  if (mode !== "l3" || !underlayIfindex) return out;
  for (const p of peers) out.set(p.podCidr, underlayIfindex);
  return out;
}
