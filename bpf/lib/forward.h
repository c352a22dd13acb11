/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* The ways a packet leaves through the datapath: to a local endpoint, into the tunnel, or (l3) out of the underlay device. */
#ifndef BPFNET_FORWARD_H
#define BPFNET_FORWARD_H

#include <stdbool.h>
#include <linux/if_packet.h>
#include <linux/pkt_cls.h>
#include "enforce.h"
#include "lb.h"
#include "fib.h"
#include "maps.h"
#include "metrics.h"
#include "pkt.h"
#include "proxy.h"

/* How local_deliver hands a packet over (flags). */
#define DELIVER_DEC_TTL	1	/* this hop routes: decrement the TTL (not where the kernel already did, bpf_host) */
#define DELIVER_PEER	2	/* tc ingress only: straight into the container's namespace (bpf_redirect_peer) */

/*
 * Delivers to a local endpoint: the container sees a frame from its gateway
 * (the veth's MAC) addressed to itself. Out of the host-side veth
 * (bpf_redirect), or with DELIVER_PEER into the container end's ingress, which
 * skips the veth's transmit and backlog hop. The peer path keeps the packet
 * type the receiving device gave it, so a frame the VXLAN device marked as
 * for another host is marked for this one, or the container would discard it.
 */
static __always_inline int local_deliver(struct __sk_buff *skb, struct pkt *pkt,
					 const struct bpfnet_endpoint *ep, __u32 how)
{
	if (how & DELIVER_DEC_TTL) {
		int ret = ipv4_dec_ttl(pkt->ip4);

		if (ret < 0)
			return ret;
	}
	eth_rewrite(pkt->eth, ep->node_mac, ep->mac);
	if (how & DELIVER_PEER) {
		if (skb->pkt_type != PACKET_HOST)
			bpf_skb_change_type(skb, PACKET_HOST);
		return path_redirect(skb, HOOK_DIRECTION, REASON_PEER, bpf_redirect_peer(ep->ifindex, 0));
	}
	return bpf_redirect(ep->ifindex, 0);
}

/*
 * Delivers to a local endpoint after its ingress policy: a denied packet is
 * dropped, one redirected to the proxy goes to the proxy's socket instead.
 */
static __always_inline int endpoint_deliver(struct __sk_buff *skb, struct pkt *pkt, struct flow *f,
					    const struct bpfnet_endpoint *ep, __u32 how)
{
	int ret = enforce(skb, pkt, f, ep, BPFNET_POLICY_INGRESS);

	if (ret < 0)
		return ret;
	if (ret == ENFORCE_TO_PROXY)
		return proxy_deliver(skb, f);
	ret = lb_rev_nat(skb, pkt, f);	/* a reply of a service flow: source back to the VIP */
	if (ret < 0)
		return ret;
	return local_deliver(skb, pkt, ep, how);
}

/*
 * Hands the packet to the VXLAN device (external/collect-metadata mode)
 * with the remote host and VNI as tunnel metadata. The receiving host's
 * bpf_overlay does the TTL decrement and MAC rewrite on delivery.
 */
static __always_inline int tunnel_encap(struct __sk_buff *skb, const struct bpfnet_config *cfg,
					const struct bpfnet_tunnel *tun)
{
	struct bpf_tunnel_key key = {};

	if (!cfg->vxlan_ifindex)
		return DROP_NO_TUNNEL_DEVICE;

	key.remote_ipv4 = bpf_ntohl(tun->remote_ip4);
	key.tunnel_id = cfg->vni;
	key.tunnel_ttl = 64;
	if (bpf_skb_set_tunnel_key(skb, &key, sizeof(key), BPF_F_ZERO_CSUM_TX) < 0)
		return DROP_TUNNEL_KEY;
	return bpf_redirect(cfg->vxlan_ifindex, 0);
}

/* The tunnel entry for a destination, or NULL when this host does not tunnel to it. */
static __always_inline const struct bpfnet_tunnel *
tunnel_route(const struct bpfnet_config *cfg, __be32 daddr)
{
	if (!cfg || cfg->mode != BPFNET_MODE_VXLAN)
		return NULL;
	return tunnel_lookup(daddr);
}

/* forward_to_pod's flags besides DELIVER_*: in l3 mode, another host's pod leaves by the underlay device (lib/fib.h). */
#define FORWARD_FIB	4

/*
 * Sends an IPv4 packet to the pod that owns its destination: a local endpoint
 * by redirect (after its ingress policy), a pod on another host through the
 * tunnel (vxlan mode), or with FORWARD_FIB in l3 mode, out of the underlay
 * device when bpfnet_routes knows its pod CIDR. Any other destination returns `no_pod`: each attach point
 * decides what that means (the host stack for a container's packets, a drop
 * on bpfnet_host). `how`: DELIVER_* for a local endpoint, FORWARD_FIB.
 */
static __always_inline int forward_to_pod(struct __sk_buff *skb, struct pkt *pkt, struct flow *f,
					  __u32 how, int no_pod)
{
	const struct bpfnet_endpoint *ep = endpoint_lookup(pkt->ip4->daddr);
	const struct bpfnet_config *cfg;
	const struct bpfnet_tunnel *tun;

	if (ep)
		return endpoint_deliver(skb, pkt, f, ep, how & (DELIVER_DEC_TTL | DELIVER_PEER));
	cfg = config_get();
	tun = tunnel_route(cfg, pkt->ip4->daddr);
	if (cfg && tun)
		return tunnel_encap(skb, cfg, tun);
	if (cfg && cfg->mode == BPFNET_MODE_L3 && (how & FORWARD_FIB))
		return fib_redirect(skb, pkt, HOOK_DIRECTION, no_pod);
	return no_pod;
}

#endif /* BPFNET_FORWARD_H */
