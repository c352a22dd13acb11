/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The l3 fast path out: a container's packet for a pod on another host
 * leaves bpf_lxc straight through the underlay device (bpfnet_routes names
 * it per pod CIDR) with bpf_redirect_neigh: the kernel routes it and fills in
 * the next hop's MAC, resolving the neighbour first when it has none (the
 * packet waits in the neighbour queue, as on the stack path). No ip_rcv,
 * netfilter or forwarding pass on the sending host. A destination without a
 * route row (this host, the outside world, an unknown CIDR) goes to the host
 * stack as before. Each packet counts which of the two it took.
 *
 * bpf_fib_lookup would let the datapath see the FIB's answer itself, but it
 * is a GPL-only helper and these programs are Apache-2.0; bpf_redirect_neigh
 * is not.
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

/* `direction`: the calling hook's, for the counters. */
static __always_inline int fib_redirect(struct __sk_buff *skb, struct pkt *pkt, __u8 direction,
					int fallback)
{
	const struct bpfnet_route *route = route_lookup(pkt->ip4->daddr);
	int ret;

	if (!route || !route->ifindex) {
		metrics_record(skb->ifindex, direction, REASON_ROUTE_STACK, skb->len);
		return fallback;
	}
	/* The host stack would decrement it on this hop: so do we. */
	ret = ipv4_dec_ttl(pkt->ip4);
	if (ret < 0)
		return ret;
	metrics_record(skb->ifindex, direction, REASON_ROUTE_FAST, skb->len);
	return bpf_redirect_neigh(route->ifindex, NULL, 0, 0);
}

#endif /* BPFNET_FIB_H */
