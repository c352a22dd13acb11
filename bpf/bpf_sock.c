/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Service load balancing for clients in the host's own network namespace, at
 * the socket: cgroup sock_addr hooks on the cgroup-v2 root. connect4 and
 * sendmsg4 replace a frontend with a backend before the kernel routes, so the
 * socket talks to the backend itself (no per-packet NAT); recvmsg4 and
 * getpeername4 show the application the frontend again.
 *
 * Every process of the machine passes through the root cgroup's hooks, and
 * every lab host attaches its own: each acts only on sockets of the network
 * namespace whose cookie the agent wrote into bpfnet_sock_cfg.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lib/abi.h"
#include "lib/maps.h"
#include "lib/lb.h"

#define SOCK_ALLOW	1
#define SOCK_REFUSE	0	/* the system call fails with EPERM */

static __always_inline bool sock_in_host_netns(struct bpf_sock_addr *ctx)
{
	__u32 zero = 0;
	const struct bpfnet_sock_cfg *cfg = bpf_map_lookup_elem(&bpfnet_sock_cfg, &zero);

	return cfg && cfg->netns_cookie && bpf_get_netns_cookie(ctx) == cfg->netns_cookie;
}

/*
 * A frontend becomes a backend (connect4, sendmsg4): TCP picks at random, UDP
 * by the socket's cookie so one socket keeps one backend; Maglev hashes
 * (cookie, VIP, port). No backend: refused and counted.
 */
static __always_inline int sock_translate(struct bpf_sock_addr *ctx)
{
	const struct bpfnet_lb_svc *svc;
	const struct bpfnet_lb_be *be;
	__be32 vip = ctx->user_ip4;
	__be16 port = (__be16)ctx->user_port;
	__u8 proto = (__u8)ctx->protocol;
	__u64 cookie;
	__u32 hash, id;

	if ((proto != IPPROTO_TCP && proto != IPPROTO_UDP) || !sock_in_host_netns(ctx))
		return SOCK_ALLOW;
	svc = lb_service(vip, port, proto);
	if (!svc)
		return SOCK_ALLOW;
	cookie = bpf_get_socket_cookie(ctx);
	if (svc->flags & BPFNET_LB_MAGLEV)
		hash = lb_flow_hash((__be32)cookie, vip, (__be16)(cookie >> 32), port, proto);
	else if (proto == IPPROTO_UDP)
		hash = lb_fmix32((__u32)cookie ^ (__u32)(cookie >> 32));
	else
		hash = bpf_get_prandom_u32();
	id = lb_select(vip, port, proto, svc, 0, hash, bpf_ktime_get_ns());
	be = id ? lb_backend(id) : NULL;
	if (!be) {
		lb_count_no_backend(svc->rev_nat_index, 0);
		return SOCK_REFUSE;
	}

	struct bpfnet_lb_sknat_key key = { .cookie = cookie, .addr = be->addr, .port = be->port };
	struct bpfnet_lb_sknat rev = { .vip = vip, .port = port, .rev_nat_index = svc->rev_nat_index };

	/* Best effort: without it only the addresses recvmsg/getpeername report differ. */
	bpf_map_update_elem(&bpfnet_lb_sknat, &key, &rev, BPF_ANY);
	ctx->user_ip4 = be->addr;
	ctx->user_port = (__u32)be->port;
	return SOCK_ALLOW;
}

/* A backend's address shown to the application as the frontend it asked for (recvmsg4, getpeername4). */
static __always_inline int sock_rev_translate(struct bpf_sock_addr *ctx)
{
	struct bpfnet_lb_sknat_key key = {};
	const struct bpfnet_lb_sknat *rev;

	if (!sock_in_host_netns(ctx))
		return SOCK_ALLOW;
	key.cookie = bpf_get_socket_cookie(ctx);
	key.addr = ctx->user_ip4;
	key.port = (__be16)ctx->user_port;
	rev = bpf_map_lookup_elem(&bpfnet_lb_sknat, &key);
	if (rev) {
		ctx->user_ip4 = rev->vip;
		ctx->user_port = (__u32)rev->port;
	}
	return SOCK_ALLOW;
}

SEC("cgroup/connect4")
int sock_connect4(struct bpf_sock_addr *ctx)
{
	return sock_translate(ctx);
}

SEC("cgroup/sendmsg4")
int sock_sendmsg4(struct bpf_sock_addr *ctx)
{
	return sock_translate(ctx);
}

SEC("cgroup/recvmsg4")
int sock_recvmsg4(struct bpf_sock_addr *ctx)
{
	return sock_rev_translate(ctx);
}

SEC("cgroup/getpeername4")
int sock_getpeername4(struct bpf_sock_addr *ctx)
{
	return sock_rev_translate(ctx);
}

char _license[] SEC("license") = "Dual BSD/GPL";
