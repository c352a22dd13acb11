/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Delivery of a packet redirected to the agent's L7 proxy (enforce() set
 * skb->mark = BPFNET_MARK_TO_PROXY | port << 16): the packet is assigned to
 * a socket of the proxy, the connection's own once it exists, else the
 * listener on 127.0.0.1:port, and handed to the host stack, whose policy
 * route (fwmark 0x0b9f/0xffff → local table) delivers it locally with the
 * client's address and the original destination intact. bpf_sk_assign works
 * at tc ingress only (bpf_lxc, bpf_overlay); elsewhere the packet is dropped
 * (fail closed), never passed to the pod unjudged.
 */
#ifndef BPFNET_PROXY_H
#define BPFNET_PROXY_H

#include <linux/bpf.h>
#include <linux/if_packet.h>
#include <bpf/bpf_endian.h>
#include "abi.h"
#include "flow.h"

static __always_inline int proxy_deliver(struct __sk_buff *skb, const struct flow *f)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;
	long ret;

	t.ipv4.saddr = f->saddr;
	t.ipv4.daddr = f->daddr;
	t.ipv4.sport = f->sport;
	t.ipv4.dport = f->dport;
	sk = bpf_skc_lookup_tcp(skb, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
	if (sk && sk->state == BPF_TCP_LISTEN) {
		/* A host listener on the pod's port is not the proxy. */
		bpf_sk_release(sk);
		sk = NULL;
	}
	if (!sk) {
		t.ipv4.daddr = bpf_htonl(0x7f000001);
		t.ipv4.dport = bpf_htons((__u16)(skb->mark >> 16));
		sk = bpf_skc_lookup_tcp(skb, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
		if (!sk)
			return DROP_NO_PROXY;
	}
	ret = bpf_sk_assign(skb, sk, 0);
	bpf_sk_release(sk);
	if (ret)
		return DROP_NO_PROXY;
	/* From the tunnel the inner frame still has the sender's MAC: ip_rcv would discard it. */
	if (skb->pkt_type != PACKET_HOST)
		bpf_skb_change_type(skb, PACKET_HOST);
	return TC_ACT_OK;
}

#endif /* BPFNET_PROXY_H */
