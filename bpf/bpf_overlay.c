/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tc ingress on the VXLAN device: decapsulated packets from other hosts.
 * They can only be for a local endpoint; anything else is dropped.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "lib/abi.h"
#include "lib/maps.h"
#include "lib/pkt.h"
#include "lib/forward.h"
#include "lib/verdict.h"

static __always_inline int handle_from_overlay(struct __sk_buff *skb)
{
	const struct bpfnet_endpoint *ep;
	struct pkt pkt;
	int ret;

	ret = parse_ipv4(skb, &pkt);
	if (ret == PKT_NOT_IPV4)
		return TC_ACT_OK;
	if (ret < 0)
		return ret;

	ep = endpoint_lookup(pkt.ip4->daddr);
	if (!ep)
		return DROP_UNKNOWN_ENDPOINT;
	return local_deliver(&pkt, ep, true);
}

SEC("tc")
int from_overlay(struct __sk_buff *skb)
{
	return bpfnet_exit(skb, METRIC_INGRESS, handle_from_overlay(skb));
}

char _license[] SEC("license") = "Apache-2.0";
