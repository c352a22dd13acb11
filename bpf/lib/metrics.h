/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
#ifndef BPFNET_METRICS_H
#define BPFNET_METRICS_H

#include <linux/pkt_cls.h>
#include "maps.h"

/*
 * Adds one packet to a per-CPU counter of `map` (value: bpfnet_metrics_value).
 * The first packet of a key races with other CPUs creating it; losing that
 * one count is accepted, as in Cilium, to keep the hot path lock-free.
 */
static __always_inline void percpu_count(void *map, const void *key, __u64 bytes)
{
	struct bpfnet_metrics_value *value = bpf_map_lookup_elem(map, key);

	if (value) {
		value->packets += 1;
		value->bytes += bytes;
	} else {
		struct bpfnet_metrics_value first = { .packets = 1, .bytes = bytes };

		bpf_map_update_elem(map, key, &first, BPF_NOEXIST);
	}
}

/* Counts one packet under (id, direction, reason). */
static __always_inline void metrics_record(__u32 id, __u8 direction, __u8 reason,
					   __u64 bytes)
{
	struct bpfnet_metrics_key key = {
		.id = id,
		.direction = direction,
		.reason = reason,
	};

	percpu_count(&bpfnet_metrics, &key, bytes);
}

/*
 * One counter update per packet on the paths that have a path reason
 * (REASON_ROUTE_*, REASON_PEER): the handler returns its action tagged with
 * the path reason, and bpfnet_exit records that reason *instead of* the
 * verdict it implies (FORWARDED for a redirect, PASSED for the host stack).
 * Readers add the path counters to the verdict's (bpf/pathCounters.ts), so
 * both read as before. On a cold vCPU each per-CPU counter lookup costs
 * microseconds (bench/lxcCost.ts): the l3 idle ping paid two per program.
 * An action other than the expected one is returned untagged, its path
 * counted separately as before.
 */
#define PATH_REASON_SHIFT 8

static __always_inline int path_tagged(__u8 reason, long action, long expected, __u32 id, __u8 direction,
				       __u64 bytes)
{
	if (action == expected)
		return (int)(((__u32)reason << PATH_REASON_SHIFT) | (__u32)action);
	metrics_record(id, direction, reason, bytes);
	return (int)action;
}

/* A redirect that went by a path (REASON_ROUTE_FAST, _NEIGH, REASON_PEER): counted once, as that path. */
static __always_inline int path_redirect(struct __sk_buff *skb, __u8 direction, __u8 reason, long action)
{
	return path_tagged(reason, action, TC_ACT_REDIRECT, skb->ifindex, direction, skb->len);
}

/* A packet handed to the host stack by a path decision (REASON_ROUTE_STACK, _FIB_STACK): counted once, as that path. */
static __always_inline int path_pass(struct __sk_buff *skb, __u8 direction, __u8 reason, long action)
{
	return path_tagged(reason, action, TC_ACT_OK, skb->ifindex, direction, skb->len);
}

/* Counts one policy verdict of an endpoint's rule (rule 0: no row matched). */
static __always_inline void verdict_record(__u32 endpoint_id, __u32 rule_id, __u8 direction,
					   __u8 verdict, __u64 bytes)
{
	struct bpfnet_verdict_key key = {
		.endpoint_id = endpoint_id,
		.rule_id = rule_id,
		.direction = direction,
		.verdict = verdict,
	};

	percpu_count(&bpfnet_verdicts, &key, bytes);
}

#endif /* BPFNET_METRICS_H */
