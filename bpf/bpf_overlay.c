/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tc ingress on the VXLAN device: decapsulated packets from other hosts.
 * They are for a local endpoint, or for this host itself (its gateway
 * address: replies to host processes that reached another host's pods, which
 * leave with that address as their source); anything else is dropped.
 */
#include <linux/bpf.h>
#include <linux/if_packet.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "lib/abi.h"
#include "lib/maps.h"
#include "lib/pkt.h"
#include "lib/forward.h"
#include "lib/verdict.h"

/*
 * Hands a packet for this host to its stack. The inner destination MAC is
 * whatever the sender's side had (a veth MAC there), not the VXLAN device's,
 * so the device marked the frame PACKET_OTHERHOST and ip_rcv would discard
 * it: mark it for this host. No TTL decrement: this is the last hop.
 */
static __always_inline int host_deliver(struct __sk_buff *skb)
{
	if (skb->pkt_type != PACKET_HOST)
		bpf_skb_change_type(skb, PACKET_HOST);
	return TC_ACT_OK;
}

static __always_inline int handle_from_overlay(struct __sk_buff *skb)
{
	const struct bpfnet_endpoint *ep;
	const struct bpfnet_config *cfg;
	struct pkt pkt;
	int ret;

	ret = parse_ipv4(skb, &pkt);
	if (ret == PKT_NOT_IPV4)
		return TC_ACT_OK;
	if (ret < 0)
		return ret;

	ep = endpoint_lookup(pkt.ip4->daddr);
	if (ep)
		return local_deliver(&pkt, ep, true);
	cfg = config_get();
	if (cfg && cfg->gateway_ip4 && pkt.ip4->daddr == cfg->gateway_ip4)
		return host_deliver(skb);
	return DROP_UNKNOWN_ENDPOINT;
}

SEC("tc")
int from_overlay(struct __sk_buff *skb)
{
	return bpfnet_exit(skb, METRIC_INGRESS, handle_from_overlay(skb));
}

char _license[] SEC("license") = "Apache-2.0";
