/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The datapath's maps. Every object includes this header, and every map is
 * pinned by name: loading an object with a pin root (bpf_object_open_opts
 * .pin_root_path) reuses the maps already pinned there, so bpf_lxc.o,
 * bpf_overlay.o and bpf_host.o share one set of maps per host, and the maps
 * (with the forwarding state in them) outlive an agent restart.
 */
#ifndef BPFNET_MAPS_H
#define BPFNET_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "abi.h"

/* Local endpoints by IPv4 address. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct bpfnet_endpoint_key);
	__type(value, struct bpfnet_endpoint);
	__uint(max_entries, BPFNET_ENDPOINTS_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bpfnet_endpoints SEC(".maps");

/* Other hosts' pod prefixes → their underlay address. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct bpfnet_tunnel_key);
	__type(value, struct bpfnet_tunnel);
	__uint(max_entries, BPFNET_TUNNEL_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);	/* required for LPM tries */
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bpfnet_tunnel SEC(".maps");

/* l3 mode: other hosts' pod CIDRs → the underlay device bpf_lxc sends them out of (lib/fib.h). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct bpfnet_tunnel_key);
	__type(value, struct bpfnet_route);
	__uint(max_entries, BPFNET_ROUTES_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bpfnet_routes SEC(".maps");

/* Underlay addresses of the network's other hosts (the agent fills it from their registrations). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct bpfnet_peer_key);
	__type(value, struct bpfnet_peer);
	__uint(max_entries, BPFNET_PEERS_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bpfnet_peers SEC(".maps");

/* Address → security identity, for every endpoint of the network, host addresses and CIDR rules. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct bpfnet_ipcache_key);
	__type(value, struct bpfnet_ipcache_entry);
	__uint(max_entries, BPFNET_IPCACHE_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bpfnet_ipcache SEC(".maps");

/* Every local endpoint's policy rows, keyed by endpoint id: one map, a bounded lookup order. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct bpfnet_policy_key);
	__type(value, struct bpfnet_policy_value);
	__uint(max_entries, BPFNET_POLICY_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bpfnet_policy SEC(".maps");

/* Connection tracking, global (to be shared with service load balancing). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct bpfnet_ct_key);
	__type(value, struct bpfnet_ct_entry);
	__uint(max_entries, BPFNET_CT_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bpfnet_ct SEC(".maps");

/* Policy verdict counters (per CPU, like bpfnet_metrics; same value layout). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, struct bpfnet_verdict_key);
	__type(value, struct bpfnet_metrics_value);
	__uint(max_entries, BPFNET_VERDICTS_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bpfnet_verdicts SEC(".maps");

/* A single slot: the host's datapath settings. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct bpfnet_config);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bpfnet_config SEC(".maps");

/* Per-CPU so the hot path never contends; userspace sums the CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, struct bpfnet_metrics_key);
	__type(value, struct bpfnet_metrics_value);
	__uint(max_entries, BPFNET_METRICS_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bpfnet_metrics SEC(".maps");

static __always_inline const struct bpfnet_config *config_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&bpfnet_config, &zero);
}

static __always_inline const struct bpfnet_endpoint *endpoint_lookup(__be32 ip4)
{
	struct bpfnet_endpoint_key key = { .ip4 = ip4 };

	return bpf_map_lookup_elem(&bpfnet_endpoints, &key);
}

static __always_inline const struct bpfnet_tunnel *tunnel_lookup(__be32 ip4)
{
	struct bpfnet_tunnel_key key = { .prefixlen = 32, .ip4 = ip4 };

	return bpf_map_lookup_elem(&bpfnet_tunnel, &key);
}

static __always_inline const struct bpfnet_route *route_lookup(__be32 ip4)
{
	struct bpfnet_tunnel_key key = { .prefixlen = 32, .ip4 = ip4 };

	return bpf_map_lookup_elem(&bpfnet_routes, &key);
}

static __always_inline const struct bpfnet_peer *peer_lookup(__be32 ip4)
{
	struct bpfnet_peer_key key = { .ip4 = ip4 };

	return bpf_map_lookup_elem(&bpfnet_peers, &key);
}

/* --- Service load balancing (contract: bpf/README.md, "Service load balancing") --- */

/* Services: slot 0 = the row (count, rev_nat_index, flags), slots 1..count = backend ids. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct bpfnet_lb_svc_key);
	__type(value, struct bpfnet_lb_svc);
	__uint(max_entries, BPFNET_LB_SVC_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);	/* written by the agent only */
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bpfnet_lb_svc SEC(".maps");

/* Backends by id (host-local numbering, shared by the services that list them). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct bpfnet_lb_be);
	__uint(max_entries, BPFNET_LB_BE_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bpfnet_lb_be SEC(".maps");

/* rev_nat_index → frontend, for replies. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct bpfnet_lb_rnat);
	__uint(max_entries, BPFNET_LB_RNAT_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bpfnet_lb_rnat SEC(".maps");

/* rev_nat_index → Maglev table (computed by the agent). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct bpfnet_lb_mglv);
	__uint(max_entries, BPFNET_LB_MGLV_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bpfnet_lb_mglv SEC(".maps");

/* clientIP session affinity. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct bpfnet_lb_aff_key);
	__type(value, struct bpfnet_lb_aff);
	__uint(max_entries, BPFNET_LB_AFF_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bpfnet_lb_aff SEC(".maps");

/* Socket hooks: (socket, backend) → the VIP the application asked for. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct bpfnet_lb_sknat_key);
	__type(value, struct bpfnet_lb_sknat);
	__uint(max_entries, BPFNET_LB_SKNAT_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bpfnet_lb_sknat SEC(".maps");

/* Per-service drops for want of a backend (per CPU, like bpfnet_metrics). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, struct bpfnet_lb_nobe_key);
	__type(value, struct bpfnet_metrics_value);
	__uint(max_entries, BPFNET_LB_NOBE_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bpfnet_lb_nobe SEC(".maps");

/* A single slot: the socket hooks' namespace (all hosts' hooks share the root cgroup). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct bpfnet_sock_cfg);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bpfnet_sock_cfg SEC(".maps");

#endif /* BPFNET_MAPS_H */
