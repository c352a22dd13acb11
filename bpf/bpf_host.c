/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * tc egress on bpfnet_host, the NOARP device the host routes the cluster
 * CIDR to: packets from host processes, and in l3 mode packets the host
 * forwarded from the underlay. The kernel has already routed (and
 * decremented the TTL of) these packets, so delivery only rewrites MACs.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#define HOOK_DIRECTION METRIC_EGRESS
#define HOOK_PROGRAM BPFNET_HOOK_HOST
/* Host-stack packets carrying the L7 proxy's upstream mark were judged by the proxy (enforce.h). */
#define TRUST_PROXY_MARK 1

#include "lib/abi.h"
#include "lib/maps.h"
#include "lib/pkt.h"
#include "lib/forward.h"
#include "lib/verdict.h"

static __always_inline int handle_from_host(struct __sk_buff *skb)
{
	struct flow f = {};
	struct pkt pkt;
	int ret = parse_ipv4(skb, &pkt);

	if (ret == PKT_NOT_IPV4)
		return TC_ACT_OK;
	if (ret < 0)
		return ret;
	/* A local endpoint's ingress policy sees the sender's identity from the ipcache (the host: 1). */
	return forward_to_pod(skb, &pkt, &f, 0, DROP_NO_ROUTE);	/* bpfnet_host leads nowhere else */
}

SEC("tc")
int from_host(struct __sk_buff *skb)
{
	return bpfnet_exit(skb, HOOK_DIRECTION, handle_from_host(skb));
}

char _license[] SEC("license") = "Dual BSD/GPL";
