/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* Address → security identity. */
#ifndef BPFNET_IPCACHE_H
#define BPFNET_IPCACHE_H

#include "maps.h"

/* The identity of an address: the longest matching ipcache row, else world (never "any"). */
static __always_inline __u32 ipcache_identity(__be32 ip4)
{
	struct bpfnet_ipcache_key key = { .prefixlen = 32, .ip4 = ip4 };
	const struct bpfnet_ipcache_entry *e = bpf_map_lookup_elem(&bpfnet_ipcache, &key);

	return e && e->identity != BPFNET_ID_ANY ? e->identity : BPFNET_ID_WORLD;
}

#endif /* BPFNET_IPCACHE_H */
