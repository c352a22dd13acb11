/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* Packet access: header parsing with the bounds checks the verifier needs, and L2/L3 rewrites. */
#ifndef BPFNET_PKT_H
#define BPFNET_PKT_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "abi.h"

#define PKT_NOT_IPV4 1	/* parse_ipv4: a valid frame, but not IPv4 */

struct pkt {
	struct ethhdr *eth;
	struct iphdr *ip4;
};

/*
 * Points pkt at the Ethernet and IPv4 headers. Returns 0 for IPv4,
 * PKT_NOT_IPV4 for other EtherTypes (ARP, IPv6, ...), DROP_INVALID for a
 * truncated or malformed frame. Headers outside the linear area are pulled
 * in first, so a non-linear skb is not mistaken for a short one.
 */
static __always_inline int parse_ipv4(struct __sk_buff *skb, struct pkt *pkt)
{
	const __u32 need = sizeof(struct ethhdr) + sizeof(struct iphdr);
	void *data, *data_end;

	if ((__u64)skb->data + need > (__u64)skb->data_end && skb->len >= need)
		bpf_skb_pull_data(skb, need);

	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;

	pkt->eth = data;
	if ((void *)(pkt->eth + 1) > data_end)
		return DROP_INVALID;
	if (pkt->eth->h_proto != bpf_htons(ETH_P_IP))
		return PKT_NOT_IPV4;

	pkt->ip4 = (void *)(pkt->eth + 1);
	if ((void *)(pkt->ip4 + 1) > data_end)
		return DROP_INVALID;
	if (pkt->ip4->version != 4 || pkt->ip4->ihl < 5)
		return DROP_INVALID;
	return 0;
}

static __always_inline void eth_rewrite(struct ethhdr *eth, const __u8 *src, const __u8 *dst)
{
	__builtin_memcpy(eth->h_source, src, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, dst, ETH_ALEN);
}

/*
 * Forwarding hop: decrement the TTL and patch the header checksum
 * incrementally (RFC 1624), as the kernel's ip_decrease_ttl does.
 */
static __always_inline int ipv4_dec_ttl(struct iphdr *ip4)
{
	__u32 check;

	if (ip4->ttl <= 1)
		return DROP_TTL_EXCEEDED;

	check = ip4->check;
	check += bpf_htons(0x0100);
	ip4->check = (__sum16)(check + (check >= 0xffff));
	ip4->ttl--;
	return 0;
}

#endif /* BPFNET_PKT_H */
