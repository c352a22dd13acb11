/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An empty tc program (every packet to the stack): bench/datapath.ts puts it where bpf_lxc was,
 * to tell what a program on the veth costs apart from what bpf_lxc does in it.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

SEC("tc")
int pass(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}

char _license[] SEC("license") = "Apache-2.0";
