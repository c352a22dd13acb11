/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* A packet's flow: the 5-tuple that policy and connection tracking key on. */
#ifndef BPFNET_FLOW_H
#define BPFNET_FLOW_H

#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "pkt.h"

#define TCP_FLAG_FIN	0x01
#define TCP_FLAG_SYN	0x02
#define TCP_FLAG_RST	0x04

#define ICMP_ECHOREPLY	0
#define ICMP_ECHO	8

struct flow {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 tcp_flags;		/* TCP only */
	__u8 parsed;		/* filled by flow_get */
};

/*
 * Fills the flow from the IPv4 header and the first L4 bytes. Ports are read
 * with bpf_skb_load_bytes, which leaves the packet pointers valid. Non-first
 * fragments and protocols without ports get ports 0 (so only port-less
 * policy rows can match them); ICMP echo puts its identifier in sport
 * (request) or dport (reply), other ICMP types have none.
 */
static __always_inline int flow_parse(struct __sk_buff *skb, const struct pkt *pkt, struct flow *f)
{
	__u32 l4 = sizeof(struct ethhdr) + pkt->ip4->ihl * 4;
	__u8 buf[14];

	f->saddr = pkt->ip4->saddr;
	f->daddr = pkt->ip4->daddr;
	f->proto = pkt->ip4->protocol;
	f->sport = 0;
	f->dport = 0;
	f->tcp_flags = 0;
	if (pkt->ip4->frag_off & bpf_htons(0x1fff))
		return 0;

	switch (f->proto) {
	case IPPROTO_TCP:
		if (bpf_skb_load_bytes(skb, l4, buf, 14) < 0)
			return DROP_INVALID;
		f->tcp_flags = buf[13];
		/* fall through */
	case IPPROTO_UDP:
		if (f->proto == IPPROTO_UDP && bpf_skb_load_bytes(skb, l4, buf, 4) < 0)
			return DROP_INVALID;
		__builtin_memcpy(&f->sport, buf, 2);
		__builtin_memcpy(&f->dport, buf + 2, 2);
		return 0;
	case IPPROTO_ICMP:
		if (bpf_skb_load_bytes(skb, l4, buf, 6) < 0)
			return DROP_INVALID;
		if (buf[0] == ICMP_ECHO)
			__builtin_memcpy(&f->sport, buf + 4, 2);
		else if (buf[0] == ICMP_ECHOREPLY)
			__builtin_memcpy(&f->dport, buf + 4, 2);
		return 0;
	default:
		return 0;
	}
}

/* The flow, parsed on first use: open endpoints never pay for it. */
static __always_inline int flow_get(struct __sk_buff *skb, const struct pkt *pkt, struct flow *f)
{
	int ret;

	if (f->parsed)
		return 0;
	ret = flow_parse(skb, pkt, f);
	f->parsed = 1;
	return ret;
}

#endif /* BPFNET_FLOW_H */
