/* SPDX-License-Identifier: Apache-2.0 */
#ifndef BPFNET_METRICS_H
#define BPFNET_METRICS_H

#include "maps.h"

/*
 * Adds one packet to the (id, direction, reason) counter of this CPU. The
 * first packet of a key races with other CPUs creating it; losing that one
 * count is accepted, as in Cilium, to keep the hot path lock-free.
 */
static __always_inline void metrics_record(__u32 id, __u8 direction, __u8 reason,
					   __u64 bytes)
{
	struct bpfnet_metrics_key key = {
		.id = id,
		.direction = direction,
		.reason = reason,
	};
	struct bpfnet_metrics_value *value;

	value = bpf_map_lookup_elem(&bpfnet_metrics, &key);
	if (value) {
		value->packets += 1;
		value->bytes += bytes;
	} else {
		struct bpfnet_metrics_value first = { .packets = 1, .bytes = bytes };

		bpf_map_update_elem(&bpfnet_metrics, &key, &first, BPF_NOEXIST);
	}
}

#endif /* BPFNET_METRICS_H */
