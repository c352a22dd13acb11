/* SPDX-License-Identifier: Apache-2.0 */
/* The two ways a packet leaves through the datapath: to a local endpoint, or into the tunnel. */
#ifndef BPFNET_FORWARD_H
#define BPFNET_FORWARD_H

#include <stdbool.h>
#include <linux/pkt_cls.h>
#include "enforce.h"
#include "lb.h"
#include "maps.h"
#include "pkt.h"
#include "proxy.h"

/*
 * Delivers to a local endpoint out of its host-side veth: the container sees
 * a frame from its gateway (the veth's MAC) addressed to itself. dec_ttl is
 * false where the kernel already routed the packet (bpf_host), so each hop
 * decrements once.
 */
static __always_inline int local_deliver(struct pkt *pkt, const struct bpfnet_endpoint *ep,
					 bool dec_ttl)
{
	if (dec_ttl) {
		int ret = ipv4_dec_ttl(pkt->ip4);

		if (ret < 0)
			return ret;
	}
	eth_rewrite(pkt->eth, ep->node_mac, ep->mac);
	return bpf_redirect(ep->ifindex, 0);
}

/*
 * Delivers to a local endpoint after its ingress policy: a denied packet is
 * dropped, one redirected to the proxy goes to the proxy's socket instead.
 */
static __always_inline int endpoint_deliver(struct __sk_buff *skb, struct pkt *pkt, struct flow *f,
					    const struct bpfnet_endpoint *ep, bool dec_ttl)
{
	int ret = enforce(skb, pkt, f, ep, BPFNET_POLICY_INGRESS);

	if (ret < 0)
		return ret;
	if (ret == ENFORCE_TO_PROXY)
		return proxy_deliver(skb, f);
	ret = lb_rev_nat(skb, pkt, f);	/* a reply of a service flow: source back to the VIP */
	if (ret < 0)
		return ret;
	return local_deliver(pkt, ep, dec_ttl);
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

/*
 * Sends an IPv4 packet to the pod that owns its destination: a local endpoint
 * by redirect (after its ingress policy), a pod on another host through the tunnel (vxlan mode). Any
 * other destination returns `no_pod`: each attach point decides what that
 * means (the host stack for a container's packets, a drop on bpfnet_host).
 */
static __always_inline int forward_to_pod(struct __sk_buff *skb, struct pkt *pkt, struct flow *f,
					  bool dec_ttl, int no_pod)
{
	const struct bpfnet_endpoint *ep = endpoint_lookup(pkt->ip4->daddr);
	const struct bpfnet_config *cfg;
	const struct bpfnet_tunnel *tun;

	if (ep)
		return endpoint_deliver(skb, pkt, f, ep, dec_ttl);
	cfg = config_get();
	tun = tunnel_route(cfg, pkt->ip4->daddr);
	if (cfg && tun)
		return tunnel_encap(skb, cfg, tun);
	return no_pod;
}

#endif /* BPFNET_FORWARD_H */
