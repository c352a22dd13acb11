/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The l3 fast path out: a container's packet for a pod on another host
 * leaves bpf_lxc straight through the underlay device, with no ip_rcv,
 * netfilter or forwarding pass on the sending host. bpfnet_routes says which
 * destinations may (other hosts' pod CIDRs: the agent writes one row per
 * peer); the kernel's FIB says how, as it would for the stack:
 *
 *   no route row          → host stack                    (ROUTE_STACK)
 *   FIB: next hop + MACs  → MACs rewritten, bpf_redirect  (ROUTE_FAST: no
 *                           neighbour-subsystem pass, no second route lookup)
 *   FIB: no neighbour     → bpf_redirect_neigh to the FIB's next hop: the
 *                           kernel resolves it, the packet waits in the
 *                           neighbour queue as on the stack path, and the
 *                           next one goes FAST                (ROUTE_NEIGH)
 *   FIB: anything else    → host stack, which answers it as before (ICMP
 *                           unreachable, fragmentation …)   (ROUTE_FIB_STACK)
 *
 * The FIB is asked as for a packet arriving on the container's veth (its
 * rules and forwarding setting apply), without the skb's mark. tot_len is
 * left 0 so the kernel checks the skb itself against the device's MTU (a GSO
 * packet is forwardable whole). A neighbour entry the FIB reports valid
 * (also STALE) is used as is, as by Cilium: packets sent this way do not
 * refresh it; the host's own traffic to its next hop does.
 */
#ifndef BPFNET_FIB_H
#define BPFNET_FIB_H

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "abi.h"
#include "maps.h"
#include "metrics.h"
#include "pkt.h"

#ifndef AF_INET
#define AF_INET 2
#endif

/* `direction`: the calling hook's, for the counters; `fallback`: the host stack's verdict. */
static __always_inline int fib_redirect(struct __sk_buff *skb, struct pkt *pkt, __u8 direction,
					int fallback)
{
	const struct bpfnet_route *route = route_lookup(pkt->ip4->daddr);
	struct bpf_fib_lookup fib = {};
	struct bpf_redir_neigh nh = {};
	long rc;
	int ret;

	if (!route || !route->ifindex)
		return path_pass(skb, direction, REASON_ROUTE_STACK, fallback);
	fib.family = AF_INET;
	fib.tos = pkt->ip4->tos;
	fib.ipv4_src = pkt->ip4->saddr;
	fib.ipv4_dst = pkt->ip4->daddr;
	fib.ifindex = skb->ifindex;
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return path_pass(skb, direction, REASON_ROUTE_FIB_STACK, fallback);
	/* The host stack would decrement it on this hop: so do we. */
	ret = ipv4_dec_ttl(pkt->ip4);
	if (ret < 0)
		return ret;
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		/* fib.ipv4_dst is now the next hop (the gateway, or the destination on-link). */
		nh.nh_family = AF_INET;
		nh.ipv4_nh = fib.ipv4_dst;
		return path_redirect(skb, direction, REASON_ROUTE_NEIGH, bpf_redirect_neigh(fib.ifindex, &nh, sizeof(nh), 0));
	}
	eth_rewrite(pkt->eth, fib.smac, fib.dmac);
	return path_redirect(skb, direction, REASON_ROUTE_FAST, bpf_redirect(fib.ifindex, 0));
}

#endif /* BPFNET_FIB_H */
