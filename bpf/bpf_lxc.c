/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tc ingress on a container's host-side veth: every packet the container
 * sends. Local endpoints are reached by redirect, other hosts' pods through
 * the tunnel (vxlan mode); everything else goes to the host stack.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "lib/abi.h"
#include "lib/maps.h"
#include "lib/pkt.h"
#include "lib/forward.h"
#include "lib/verdict.h"

static __always_inline int handle_from_container(struct __sk_buff *skb)
{
	struct pkt pkt;
	int ret = parse_ipv4(skb, &pkt);

	if (ret == PKT_NOT_IPV4)
		return TC_ACT_OK;	/* ARP for the gateway etc.: the host stack answers */
	if (ret < 0)
		return ret;
	/* Not a pod: the host, the outside world, or l3 mode, all routed by the host. */
	return forward_to_pod(skb, &pkt, true, TC_ACT_OK);
}

SEC("tc")
int from_container(struct __sk_buff *skb)
{
	return bpfnet_exit(skb, METRIC_INGRESS, handle_from_container(skb));
}

char _license[] SEC("license") = "Apache-2.0";
