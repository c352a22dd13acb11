/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * tc ingress on the host's underlay device (l3 mode): a packet from another
 * host for one of this host's endpoints is delivered here, after the
 * endpoint's ingress policy exactly as bpf_host would, but with
 * bpf_redirect_peer straight into the container: no routing pass, no
 * bpfnet_host hop, no veth backlog. Everything else (the host's own traffic,
 * VXLAN's UDP, ARP) goes on to the host stack untouched.
 *
 * No TRUST_PROXY_MARK: packets from the wire never carry a mark we trust.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#define HOOK_DIRECTION METRIC_INGRESS
#define HOOK_PROGRAM BPFNET_HOOK_NETDEV

#include "lib/abi.h"
#include "lib/maps.h"
#include "lib/pkt.h"
#include "lib/forward.h"
#include "lib/verdict.h"

static __always_inline int handle_from_netdev(struct __sk_buff *skb)
{
	const struct bpfnet_endpoint *ep;
	struct flow f = {};
	struct pkt pkt;
	int ret = parse_ipv4(skb, &pkt);

	if (ret == PKT_NOT_IPV4)
		return TC_ACT_OK;
	if (ret < 0)
		return TC_ACT_OK;	/* not ours to judge: the host stack sees what it always saw */
	ep = endpoint_lookup(pkt.ip4->daddr);
	if (!ep)
		return TC_ACT_OK;
	/* This hop routes (the stack would have): the TTL goes down once, as on the host-stack path. */
	return endpoint_deliver(skb, &pkt, &f, ep, DELIVER_DEC_TTL | DELIVER_PEER);	/* source identity: the ipcache */
}

SEC("tc")
int from_netdev(struct __sk_buff *skb)
{
	return bpfnet_exit(skb, HOOK_DIRECTION, handle_from_netdev(skb));
}

char _license[] SEC("license") = "Dual BSD/GPL";
