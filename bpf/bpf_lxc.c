/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * tc ingress on a container's host-side veth: every packet the container
 * sends, from its own address only. Local endpoints are reached by redirect, other hosts' pods through
 * the tunnel (vxlan mode); everything else goes to the host stack.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#define HOOK_DIRECTION METRIC_INGRESS
#define HOOK_PROGRAM BPFNET_HOOK_LXC

#include "lib/abi.h"
#include "lib/maps.h"
#include "lib/pkt.h"
#include "lib/forward.h"
#include "lib/lb.h"
#include "lib/verdict.h"

/*
 * Anti-spoofing: the source address must be an endpoint of this host whose
 * veth is the one the packet came in on, so no container can send with
 * another's address (and, with policy, claim another's identity).
 */
static __always_inline const struct bpfnet_endpoint *source_endpoint(struct __sk_buff *skb,
								     const struct pkt *pkt)
{
	const struct bpfnet_endpoint *ep = endpoint_lookup(pkt->ip4->saddr);

	return ep && ep->ifindex == skb->ifindex ? ep : NULL;
}

static __always_inline int handle_from_container(struct __sk_buff *skb)
{
	const struct bpfnet_endpoint *src;
	struct flow f = {};
	struct pkt pkt;
	int ret = parse_ipv4(skb, &pkt);

	if (ret == PKT_NOT_IPV4)
		return TC_ACT_OK;	/* ARP for the gateway etc.: the host stack answers */
	if (ret < 0)
		return ret;
	src = source_endpoint(skb, &pkt);
	if (!src)
		return DROP_SPOOFED_SOURCE;
	/* A service frontend becomes its flow's backend: policy below judges the backend. */
	ret = lb_translate(skb, &pkt, &f);
	if (ret < 0)
		return ret;
	/* The sender's egress policy, then (for a local destination) the receiver's ingress. */
	ret = enforce(skb, &pkt, &f, src, BPFNET_POLICY_EGRESS);
	if (ret < 0)
		return ret;
	if (ret == ENFORCE_TO_PROXY)
		return proxy_deliver(skb, &f);
	/* Another host's pod in l3 mode: out of the underlay device; anything else: the host stack routes it. */
	return forward_to_pod(skb, &pkt, &f, DELIVER_DEC_TTL | FORWARD_FIB, TC_ACT_OK);
}

SEC("tc")
int from_container(struct __sk_buff *skb)
{
	return bpfnet_exit(skb, HOOK_DIRECTION, handle_from_container(skb));
}

char _license[] SEC("license") = "Dual BSD/GPL";
