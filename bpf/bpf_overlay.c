/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * tc ingress on the VXLAN device: decapsulated packets from other hosts,
 * accepted only from member hosts with the network's VNI. They are for a local endpoint, or for this host itself (its gateway
 * address: replies to host processes that reached another host's pods, which
 * leave with that address as their source); anything else is dropped.
 */
#include <linux/bpf.h>
#include <linux/if_packet.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#define HOOK_DIRECTION METRIC_INGRESS
#define HOOK_PROGRAM BPFNET_HOOK_OVERLAY

#include "lib/abi.h"
#include "lib/maps.h"
#include "lib/pkt.h"
#include "lib/forward.h"
#include "lib/verdict.h"

/*
 * The outer source and VNI the VXLAN device received the packet with. A
 * test build (BPFNET_TEST_TUNNEL_FROM_CB, build/bpf/test/) reads them from
 * skb->cb instead, since BPF_PROG_TEST_RUN cannot attach tunnel metadata:
 * cb[0] != 0 means "has metadata", cb[1] the remote IPv4 (host order), cb[2]
 * the VNI.
 */
static __always_inline int tunnel_source(struct __sk_buff *skb, struct bpf_tunnel_key *key)
{
#ifdef BPFNET_TEST_TUNNEL_FROM_CB
	if (!skb->cb[0])
		return -1;
	key->remote_ipv4 = skb->cb[1];
	key->tunnel_id = skb->cb[2];
	return 0;
#else
	return bpf_skb_get_tunnel_key(skb, key, sizeof(*key), 0);
#endif
}

/*
 * A closed overlay: only the network's member hosts (their underlay
 * addresses in bpfnet_peers) may send into it, and only with the network's
 * VNI. Anyone else on the underlay who can reach the VXLAN port is dropped
 * before the inner packet is looked at.
 */
static __always_inline int overlay_admit(struct __sk_buff *skb, const struct bpfnet_config *cfg)
{
	struct bpf_tunnel_key key = {};

	if (tunnel_source(skb, &key) < 0)
		return DROP_NO_TUNNEL_INFO;
	if (!peer_lookup(bpf_htonl(key.remote_ipv4)))
		return DROP_UNKNOWN_PEER;
	if (!cfg || key.tunnel_id != cfg->vni)
		return DROP_BAD_VNI;
	return 0;
}

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
	struct flow f = {};
	struct pkt pkt;
	int ret;

	cfg = config_get();
	ret = overlay_admit(skb, cfg);
	if (ret < 0)
		return ret;
	ret = parse_ipv4(skb, &pkt);
	if (ret == PKT_NOT_IPV4)
		return TC_ACT_OK;
	if (ret < 0)
		return ret;

	ep = endpoint_lookup(pkt.ip4->daddr);
	if (ep)
		return endpoint_deliver(skb, &pkt, &f, ep, DELIVER_DEC_TTL | DELIVER_PEER);	/* source identity: the ipcache */
	if (cfg && cfg->gateway_ip4 && pkt.ip4->daddr == cfg->gateway_ip4)
		return host_deliver(skb);
	return DROP_UNKNOWN_ENDPOINT;
}

SEC("tc")
int from_overlay(struct __sk_buff *skb)
{
	return bpfnet_exit(skb, HOOK_DIRECTION, handle_from_overlay(skb));
}

char _license[] SEC("license") = "Dual BSD/GPL";
