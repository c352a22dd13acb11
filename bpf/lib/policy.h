/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The policy map lookup: a fixed order of at most six hash lookups, from the
 * most specific row to the catch-all, whatever the number of rules.
 */
#ifndef BPFNET_POLICY_H
#define BPFNET_POLICY_H

#include "maps.h"

static __always_inline const struct bpfnet_policy_value *
policy_row(__u32 endpoint_id, __u32 identity, __be16 dport, __u8 proto, __u8 direction)
{
	struct bpfnet_policy_key key = {
		.endpoint_id = endpoint_id,
		.identity = identity,
		.dport = dport,
		.proto = proto,
		.direction = direction,
	};

	return bpf_map_lookup_elem(&bpfnet_policy, &key);
}

/*
 * The row deciding a packet, or NULL (no row: a deny when enforcing). First
 * hit wins: (id, port, proto) → (id, 0, proto) → (id, 0, 0) → (any, port,
 * proto) → (any, 0, proto) → (any, 0, 0). A key holds one action, so "deny
 * beats allow at the same level" is the agent's merge; here a more specific
 * row decides before a wildcard one.
 */
static __always_inline const struct bpfnet_policy_value *
policy_lookup(__u32 endpoint_id, __u32 identity, __be16 dport, __u8 proto, __u8 direction)
{
	const struct bpfnet_policy_value *v;

	if (dport && (v = policy_row(endpoint_id, identity, dport, proto, direction)))
		return v;
	if ((v = policy_row(endpoint_id, identity, 0, proto, direction)))
		return v;
	if (proto && (v = policy_row(endpoint_id, identity, 0, 0, direction)))
		return v;
	if (dport && (v = policy_row(endpoint_id, BPFNET_ID_ANY, dport, proto, direction)))
		return v;
	if ((v = policy_row(endpoint_id, BPFNET_ID_ANY, 0, proto, direction)))
		return v;
	if (proto)
		return policy_row(endpoint_id, BPFNET_ID_ANY, 0, 0, direction);
	return NULL;
}

#endif /* BPFNET_POLICY_H */
