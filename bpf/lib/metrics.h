/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
#ifndef BPFNET_METRICS_H
#define BPFNET_METRICS_H

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
