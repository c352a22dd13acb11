/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Connection tracking. Each end that enforces keeps its own entry for a flow,
 * keyed by the flow's tuple as it first passed and by the hook that saw it
 * (egress out of the source endpoint, ingress into the destination one). A
 * packet whose reversed tuple has the other hook's entry is a reply: it
 * skips policy. Lifetimes come from bpfnet_config; the agent deletes
 * expired entries, and an expired entry is never taken for a live one.
 */
#ifndef BPFNET_CT_H
#define BPFNET_CT_H

#include <linux/in.h>
#include "flow.h"
#include "maps.h"

#define NSEC_PER_SEC 1000000000ULL

static __always_inline __u64 ct_lifetime_ns(const struct bpfnet_config *cfg, __u8 proto, __u8 flags)
{
	__u64 tcp = cfg && cfg->ct_lifetime_tcp ? cfg->ct_lifetime_tcp : BPFNET_CT_LIFETIME_TCP_DEFAULT;
	__u64 other = cfg && cfg->ct_lifetime_short ? cfg->ct_lifetime_short : BPFNET_CT_LIFETIME_SHORT_DEFAULT;

	if (proto == IPPROTO_TCP && (flags & BPFNET_CT_SEEN_REPLY) && !(flags & BPFNET_CT_CLOSING))
		return tcp * NSEC_PER_SEC;
	return other * NSEC_PER_SEC;
}

/* Notes the packet's TCP flags and moves the deadline. Entries are shared by CPUs: racing writers store equivalent values. */
static __always_inline void ct_refresh(struct bpfnet_ct_entry *e, const struct bpfnet_config *cfg,
				       const struct flow *f, __u8 set_flags, __u64 now)
{
	__u8 flags = e->flags | set_flags;

	if (f->tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST))
		flags |= BPFNET_CT_CLOSING;
	if (flags != e->flags)
		e->flags = flags;
	if ((e->tcp_flags | f->tcp_flags) != e->tcp_flags)
		e->tcp_flags |= f->tcp_flags;
	e->expires = now + ct_lifetime_ns(cfg, f->proto, flags);
}

/*
 * Whether the packet answers a live flow the other hook of this end made
 * (`hook` is this packet's hook: BPFNET_CT_EGRESS or BPFNET_CT_INGRESS).
 */
static __always_inline bool ct_is_reply(const struct flow *f, __u8 hook, const struct bpfnet_config *cfg, __u64 now)
{
	struct bpfnet_ct_key key = {
		.saddr = f->daddr,
		.daddr = f->saddr,
		.sport = f->dport,
		.dport = f->sport,
		.proto = f->proto,
		.flags = hook == BPFNET_CT_EGRESS ? BPFNET_CT_INGRESS : BPFNET_CT_EGRESS,
	};
	struct bpfnet_ct_entry *e = bpf_map_lookup_elem(&bpfnet_ct, &key);

	if (!e || e->expires <= now)
		return false;
	ct_refresh(e, cfg, f, BPFNET_CT_SEEN_REPLY, now);
	return true;
}

/*
 * Creates or refreshes this end's entry for a forward packet the policy let
 * through: 1 when it made a new entry (a new flow), 0 when it refreshed one.
 */
static __always_inline int ct_track(const struct flow *f, __u8 hook, const struct bpfnet_config *cfg, __u64 now,
				    __u32 peer_identity, __be16 proxy_port)
{
	struct bpfnet_ct_key key = {
		.saddr = f->saddr,
		.daddr = f->daddr,
		.sport = f->sport,
		.dport = f->dport,
		.proto = f->proto,
		.flags = hook,
	};
	struct bpfnet_ct_entry *e = bpf_map_lookup_elem(&bpfnet_ct, &key);
	struct bpfnet_ct_entry fresh = {};

	if (e && e->expires > now) {
		ct_refresh(e, cfg, f, 0, now);
		return 0;
	}
	fresh.src_identity = peer_identity;
	fresh.proxy_port = proxy_port;
	ct_refresh(&fresh, cfg, f, 0, now);
	if (bpf_map_update_elem(&bpfnet_ct, &key, &fresh, BPF_ANY) < 0)
		return DROP_CT_FULL;
	return 1;
}

#endif /* BPFNET_CT_H */
