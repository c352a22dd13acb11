/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Service load balancing: a (VIP, port, proto) frontend translated to one of
 * its backends. The contract with the agent is in bpf/README.md ("Service
 * load balancing"). Selection is shared by the tc path (bpf_lxc, per packet,
 * pinned in CT) and the socket hooks (bpf_sock.c, once per connect).
 */
#ifndef BPFNET_LB_H
#define BPFNET_LB_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "abi.h"
#include "ct.h"
#include "flow.h"
#include "maps.h"
#include "pkt.h"

/* murmur3's finaliser: every input bit moves every output bit. */
static __always_inline __u32 lb_fmix32(__u32 x)
{
	x ^= x >> 16;
	x *= 0x85ebca6b;
	x ^= x >> 13;
	x *= 0xc2b2ae35;
	return x ^ (x >> 16);
}

/* The flow hash Maglev indexes by (mirrored by lbFlowHash in bpf/abi.ts). */
static __always_inline __u32 lb_flow_hash(__be32 saddr, __be32 daddr, __be16 sport, __be16 dport, __u8 proto)
{
	__u32 h = 0x9e3779b9 ^ proto;

	h = lb_fmix32(h ^ bpf_ntohl(saddr));
	h = lb_fmix32(h ^ bpf_ntohl(daddr));
	return lb_fmix32(h ^ ((__u32)bpf_ntohs(sport) << 16 | bpf_ntohs(dport)));
}

/* The service row (slot 0) of a frontend, or NULL. */
static __always_inline const struct bpfnet_lb_svc *lb_service(__be32 vip, __be16 port, __u8 proto)
{
	struct bpfnet_lb_svc_key key = { .vip = vip, .port = port, .slot = 0, .proto = proto };

	return bpf_map_lookup_elem(&bpfnet_lb_svc, &key);
}

static __always_inline const struct bpfnet_lb_be *lb_backend(__u32 id)
{
	return bpf_map_lookup_elem(&bpfnet_lb_be, &id);
}

/* Whether this host has services at all (LbServiceMap sets the flag with the first one). */
static __always_inline bool lb_active(void)
{
	__u32 zero = 0;
	const struct bpfnet_sock_cfg *cfg = bpf_map_lookup_elem(&bpfnet_sock_cfg, &zero);

	return cfg && (cfg->flags & BPFNET_LB_ACTIVE);
}

/* A backend a new flow may take: present and not terminating. */
static __always_inline bool lb_backend_open(__u32 id)
{
	const struct bpfnet_lb_be *be = id ? lb_backend(id) : NULL;

	return be && !(be->flags & BPFNET_LB_BE_TERMINATING);
}

/* Counts a packet or connect refused for want of a backend, per service. */
static __always_inline void lb_count_no_backend(__u16 rev_nat_index, __u32 len)
{
	struct bpfnet_lb_nobe_key key = { .rev_nat_index = rev_nat_index };
	struct bpfnet_metrics_value *v = bpf_map_lookup_elem(&bpfnet_lb_nobe, &key);
	struct bpfnet_metrics_value init = { .packets = 1, .bytes = len };

	if (v) {
		v->packets++;
		v->bytes += len;
		return;
	}
	bpf_map_update_elem(&bpfnet_lb_nobe, &key, &init, BPF_NOEXIST);
}

/*
 * The backend for a new flow of a service: the client's affinity entry,
 * else the Maglev entry for `hash`, else slot hash % count + 1. 0 when there
 * is none a new flow may take.
 */
static __always_inline __u32 lb_select(__be32 vip, __be16 port, __u8 proto, const struct bpfnet_lb_svc *svc,
				       __be32 client, __u32 hash, __u64 now)
{
	struct bpfnet_lb_aff_key aff_key = { .client_ip = client, .rev_nat_index = svc->rev_nat_index };
	const struct bpfnet_lb_mglv *table = NULL;
	struct bpfnet_lb_aff *aff;
	__u32 index = svc->rev_nat_index;
	__u32 id = 0;

	if (!svc->count)
		return 0;
	if (svc->flags & BPFNET_LB_AFFINITY) {
		aff = bpf_map_lookup_elem(&bpfnet_lb_aff, &aff_key);
		if (aff && now - aff->last_used_ns <= (__u64)svc->affinity_timeout_s * NSEC_PER_SEC &&
		    lb_backend_open(aff->backend_id)) {
			aff->last_used_ns = now;
			return aff->backend_id;
		}
	}
	if (svc->flags & BPFNET_LB_MAGLEV)
		table = bpf_map_lookup_elem(&bpfnet_lb_mglv, &index);
	if (table) {
		__u32 i = hash % BPFNET_MAGLEV_M;

		/* Keeps the bound check the compiler would drop: the verifier needs it. */
		asm volatile("" : "+r"(i));
		if (i < BPFNET_MAGLEV_M)
			id = table->backend_ids[i];
	} else {
		struct bpfnet_lb_svc_key key = { .vip = vip, .port = port, .proto = proto };
		const struct bpfnet_lb_svc *slot;

		key.slot = (__u16)(hash % svc->count + 1);
		slot = bpf_map_lookup_elem(&bpfnet_lb_svc, &key);
		if (slot)
			id = slot->backend_id;
	}
	if (!lb_backend_open(id))
		return 0;
	if (svc->flags & BPFNET_LB_AFFINITY) {
		struct bpfnet_lb_aff fresh = { .last_used_ns = now, .backend_id = id };

		bpf_map_update_elem(&bpfnet_lb_aff, &aff_key, &fresh, BPF_ANY);
	}
	return id;
}

/* --- The per-packet half (tc programs) --- */

/* 1 with f parsed when this host has services, 0 when it has none (nothing to look at), or a drop reason. */
static __always_inline int lb_flow(struct __sk_buff *skb, const struct pkt *pkt, struct flow *f)
{
	int ret;

	if (!lb_active())
		return 0;
	ret = flow_get(skb, pkt, f);
	return ret < 0 ? ret : 1;
}

/* Checksum offsets in the TCP and UDP headers (linux/tcp.h's flag names clash with flow.h's). */
#define L4_TCP_CHECK_OFF	16
#define L4_UDP_CHECK_OFF	6

/* One address and port of a TCP/UDP packet rewritten, checksums patched; packet pointers invalid after. */
static __always_inline int lb_nat_one(struct __sk_buff *skb, __u32 l4, __u8 proto, bool dst,
				      __be32 old_addr, __be32 addr, __be16 old_port, __be16 port)
{
	const __u32 check_off = l4 + (proto == IPPROTO_TCP ? L4_TCP_CHECK_OFF : L4_UDP_CHECK_OFF);
	const __u64 mangled = proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
	__u32 addr_off = sizeof(struct ethhdr) + (dst ? offsetof(struct iphdr, daddr) : offsetof(struct iphdr, saddr));
	__u32 port_off = l4 + (dst ? 2 : 0);	/* TCP and UDP: source port, then destination port */

	if (old_addr != addr) {
		if (bpf_l4_csum_replace(skb, check_off, old_addr, addr, mangled | BPF_F_PSEUDO_HDR | sizeof(addr)) < 0 ||
		    bpf_l3_csum_replace(skb, sizeof(struct ethhdr) + offsetof(struct iphdr, check), old_addr, addr,
					sizeof(addr)) < 0 ||
		    bpf_skb_store_bytes(skb, addr_off, &addr, sizeof(addr), 0) < 0)
			return DROP_LB_NAT;
	}
	if (old_port != port) {
		if (bpf_l4_csum_replace(skb, check_off, old_port, port, mangled | sizeof(port)) < 0 ||
		    bpf_skb_store_bytes(skb, port_off, &port, sizeof(port), 0) < 0)
			return DROP_LB_NAT;
	}
	return 0;
}

/*
 * Rewrites a TCP/UDP packet's source and destination (address and port; an
 * unchanged one costs nothing) with incremental IPv4 and L4 checksum updates
 * (a UDP checksum of 0 stays 0), then re-points pkt at the headers and
 * updates f.
 */
static __always_inline int lb_nat(struct __sk_buff *skb, struct pkt *pkt, struct flow *f,
				  __be32 saddr, __be16 sport, __be32 daddr, __be16 dport)
{
	const __u32 l4 = sizeof(struct ethhdr) + pkt->ip4->ihl * 4;
	int ret = lb_nat_one(skb, l4, f->proto, true, f->daddr, daddr, f->dport, dport);

	if (ret < 0)
		return ret;
	ret = lb_nat_one(skb, l4, f->proto, false, f->saddr, saddr, f->sport, sport);
	if (ret < 0)
		return ret;
	f->saddr = saddr;
	f->sport = sport;
	f->daddr = daddr;
	f->dport = dport;
	/* The helpers invalidated the packet pointers. */
	return parse_ipv4(skb, pkt) == 0 ? 0 : DROP_LB_NAT;
}

/* The live CT entry under key, or NULL. */
static __always_inline struct bpfnet_ct_entry *lb_ct_live(const struct bpfnet_ct_key *key, __u64 now)
{
	struct bpfnet_ct_entry *e = bpf_map_lookup_elem(&bpfnet_ct, key);

	return e && e->expires > now ? e : NULL;
}

/* Creates a service/revnat CT entry; DROP_CT_FULL when it cannot (fail closed). */
static __always_inline int lb_ct_create(const struct bpfnet_ct_key *key, const struct bpfnet_config *cfg,
					const struct flow *f, __u16 rev_nat_index, __u32 backend_id, __u8 flags,
					__u64 now)
{
	struct bpfnet_ct_entry fresh = { .rev_nat_index = rev_nat_index, .backend_id = backend_id };

	ct_refresh(&fresh, cfg, f, flags, now);
	return bpf_map_update_elem(&bpfnet_ct, key, &fresh, BPF_ANY) < 0 ? DROP_CT_FULL : 0;
}

/* ICMP errors that quote the offending packet (RFC 792): unreachable, time exceeded, parameter problem. */
#define ICMP_DEST_UNREACH	3
#define ICMP_TIME_EXCEEDED	11
#define ICMP_PARAMETERPROB	12
#define ICMP_HDR_LEN		8

/* Where an ICMP error's quoted TCP/UDP packet is, and its header and ports. */
struct lb_icmp_quote {
	__u32 icmp;		/* offset of the ICMP header */
	__u32 inner;		/* of the quoted IPv4 header */
	__u32 l4;		/* of the quoted ports */
	struct iphdr in;
	__be16 ports[2];	/* source, destination */
};

/* 1 when the packet is an ICMP error quoting a TCP/UDP packet (q filled), else 0. */
static __always_inline int lb_icmp_quote(struct __sk_buff *skb, const struct pkt *pkt, struct lb_icmp_quote *q)
{
	__u8 type;

	q->icmp = sizeof(struct ethhdr) + pkt->ip4->ihl * 4;
	q->inner = q->icmp + ICMP_HDR_LEN;
	if (bpf_skb_load_bytes(skb, q->icmp, &type, 1) < 0)
		return 0;
	if (type != ICMP_DEST_UNREACH && type != ICMP_TIME_EXCEEDED && type != ICMP_PARAMETERPROB)
		return 0;
	if (bpf_skb_load_bytes(skb, q->inner, &q->in, sizeof(q->in)) < 0 || q->in.ihl < 5 ||
	    (q->in.protocol != IPPROTO_TCP && q->in.protocol != IPPROTO_UDP))
		return 0;
	q->l4 = q->inner + q->in.ihl * 4;
	return bpf_skb_load_bytes(skb, q->l4, q->ports, sizeof(q->ports)) < 0 ? 0 : 1;
}

/*
 * Rewrites one address of an ICMP error's quoted packet (its IPv4 checksum
 * patched with it, which leaves the ICMP sum unchanged) and one of its ports
 * (the ICMP checksum patched; the quoted L4 checksum, often cut off, is left).
 */
static __always_inline int lb_icmp_quote_rewrite(struct __sk_buff *skb, const struct lb_icmp_quote *q, bool dst,
						 __be32 addr, __be16 port)
{
	__u32 addr_off = q->inner + (dst ? offsetof(struct iphdr, daddr) : offsetof(struct iphdr, saddr));
	__be16 old_port = q->ports[dst ? 1 : 0];

	if (bpf_l3_csum_replace(skb, q->inner + offsetof(struct iphdr, check), dst ? q->in.daddr : q->in.saddr, addr,
				sizeof(__be32)) < 0 ||
	    bpf_skb_store_bytes(skb, addr_off, &addr, sizeof(__be32), 0) < 0 ||
	    bpf_l4_csum_replace(skb, q->icmp + 2, old_port, port, sizeof(__be16)) < 0 ||
	    bpf_skb_store_bytes(skb, q->l4 + (dst ? 2 : 0), &port, sizeof(__be16), 0) < 0)
		return DROP_LB_NAT;
	return 0;
}

/* Rewrites the outer IPv4 source or destination of an ICMP packet (no pseudo-header: IPv4 checksum only). */
static __always_inline int lb_icmp_outer_rewrite(struct __sk_buff *skb, struct flow *f, bool dst, __be32 addr)
{
	__u32 off = sizeof(struct ethhdr) + (dst ? offsetof(struct iphdr, daddr) : offsetof(struct iphdr, saddr));

	if (bpf_l3_csum_replace(skb, sizeof(struct ethhdr) + offsetof(struct iphdr, check), dst ? f->daddr : f->saddr,
				addr, sizeof(__be32)) < 0 ||
	    bpf_skb_store_bytes(skb, off, &addr, sizeof(__be32), 0) < 0)
		return DROP_LB_NAT;
	if (dst)
		f->daddr = addr;
	else
		f->saddr = addr;
	return 0;
}

/*
 * An ICMP error a client sends about a reply it had from a VIP (it quotes
 * VIP:port → client and is addressed to the VIP): sent to the flow's backend,
 * found through the flow's SERVICE entry, its quote naming the backend.
 */
static __always_inline int lb_translate_icmp(struct __sk_buff *skb, struct pkt *pkt, struct flow *f)
{
	const struct bpfnet_lb_be *be;
	struct bpfnet_ct_entry *e;
	struct lb_icmp_quote q;
	int ret;

	if (!lb_icmp_quote(skb, pkt, &q) || q.in.saddr != f->daddr || q.in.daddr != f->saddr)
		return 0;
	struct bpfnet_ct_key key = {
		.saddr = q.in.daddr, .daddr = q.in.saddr, .sport = q.ports[1], .dport = q.ports[0],
		.proto = q.in.protocol, .flags = BPFNET_CT_SERVICE,
	};
	e = lb_ct_live(&key, bpf_ktime_get_ns());
	be = e ? lb_backend(e->backend_id) : NULL;
	if (!be)
		return 0;
	ret = lb_icmp_quote_rewrite(skb, &q, false, be->addr, be->port);
	if (ret < 0)
		return ret;
	ret = lb_icmp_outer_rewrite(skb, f, true, be->addr);
	if (ret < 0)
		return ret;
	return parse_ipv4(skb, pkt) == 0 ? 0 : DROP_LB_NAT;
}

/*
 * Hairpin: a container whose flow to a VIP chose itself as the backend. The
 * kernel would drop a packet from its own address, so the flow reaches it
 * from this link-local address (Cilium's choice too), and its answers,
 * addressed here, are turned back into the frontend's.
 */
#define LB_HAIRPIN_IP4	bpf_htonl(0xa9fe2a01)	/* 169.254.42.1 */

/* A backend's answer to its own hairpin flow: from the frontend, to itself as the client. */
static __always_inline int lb_hairpin_reply(struct __sk_buff *skb, struct pkt *pkt, struct flow *f)
{
	const struct bpfnet_lb_rnat *rnat;
	struct bpfnet_ct_entry *e;
	__be32 client = f->saddr;	/* the backend answering is the client too */
	__u32 index;
	__u64 now = bpf_ktime_get_ns();
	struct bpfnet_ct_key key = {
		.saddr = LB_HAIRPIN_IP4, .daddr = f->saddr, .sport = f->dport, .dport = f->sport,
		.proto = f->proto, .flags = BPFNET_CT_REVNAT,
	};

	e = lb_ct_live(&key, now);
	if (!e)
		return 0;
	index = e->rev_nat_index;
	rnat = bpf_map_lookup_elem(&bpfnet_lb_rnat, &index);
	if (!rnat)
		return 0;
	ct_refresh(e, config_get(), f, BPFNET_CT_SEEN_REPLY, now);
	return lb_nat(skb, pkt, f, rnat->vip, rnat->port, client, f->dport);
}

/*
 * A container's packet to a service frontend, translated to its flow's
 * backend (bpf_lxc, before egress policy): 0 when the packet is no service's
 * or is translated (pkt and f then describe the translated packet), else a
 * drop reason.
 */
static __always_inline int lb_translate(struct __sk_buff *skb, struct pkt *pkt, struct flow *f)
{
	const struct bpfnet_lb_svc *svc;
	const struct bpfnet_lb_be *be = NULL;
	const struct bpfnet_config *cfg;
	struct bpfnet_ct_entry *svc_ct, *rev_ct;
	__u32 backend_id = 0;
	__u8 seen_reply = 0;
	__u16 rev_nat_index;
	bool hairpin;
	__u64 now;
	int ret;

	ret = lb_flow(skb, pkt, f);
	if (ret <= 0)
		return ret;
	if (f->proto == IPPROTO_ICMP)
		return lb_translate_icmp(skb, pkt, f);
	if (f->proto != IPPROTO_TCP && f->proto != IPPROTO_UDP)
		return 0;
	if (f->daddr == LB_HAIRPIN_IP4)
		return lb_hairpin_reply(skb, pkt, f);
	svc = lb_service(f->daddr, f->dport, f->proto);
	if (!svc)
		return 0;
	rev_nat_index = svc->rev_nat_index;
	cfg = config_get();
	now = bpf_ktime_get_ns();

	struct bpfnet_ct_key svc_key = {
		.saddr = f->saddr, .daddr = f->daddr, .sport = f->sport, .dport = f->dport,
		.proto = f->proto, .flags = BPFNET_CT_SERVICE,
	};
	svc_ct = lb_ct_live(&svc_key, now);
	/* A pinned flow keeps its backend while it exists, even terminating. */
	if (svc_ct && svc_ct->rev_nat_index == rev_nat_index) {
		backend_id = svc_ct->backend_id;
		be = lb_backend(backend_id);
	}
	if (!be) {
		__u32 hash = svc->flags & BPFNET_LB_MAGLEV
				     ? lb_flow_hash(f->saddr, f->daddr, f->sport, f->dport, f->proto)
				     : bpf_get_prandom_u32();

		backend_id = lb_select(f->daddr, f->dport, f->proto, svc, f->saddr, hash, now);
		be = backend_id ? lb_backend(backend_id) : NULL;
		if (!be) {
			lb_count_no_backend(rev_nat_index, skb->len);
			return DROP_NO_SERVICE_BACKEND;
		}
		ret = lb_ct_create(&svc_key, cfg, f, rev_nat_index, backend_id, 0, now);
		if (ret < 0)
			return ret;
		svc_ct = NULL;
	}

	hairpin = be->addr == f->saddr;
	struct bpfnet_ct_key rev_key = {
		.saddr = hairpin ? LB_HAIRPIN_IP4 : f->saddr, .daddr = be->addr, .sport = f->sport, .dport = be->port,
		.proto = f->proto, .flags = BPFNET_CT_REVNAT,
	};
	rev_ct = lb_ct_live(&rev_key, now);
	if (rev_ct && rev_ct->rev_nat_index == rev_nat_index) {
		ct_refresh(rev_ct, cfg, f, 0, now);
		seen_reply = rev_ct->flags & BPFNET_CT_SEEN_REPLY;
	} else {
		ret = lb_ct_create(&rev_key, cfg, f, rev_nat_index, backend_id, 0, now);
		if (ret < 0)
			return ret;
	}
	/* The reply side marks REVNAT; the pin lives as long as an established flow. */
	if (svc_ct)
		ct_refresh(svc_ct, cfg, f, seen_reply, now);
	return lb_nat(skb, pkt, f, hairpin ? LB_HAIRPIN_IP4 : f->saddr, f->sport, be->addr, be->port);
}

/*
 * An ICMP error about a translated flow (from its backend or a router on the
 * way), delivered to the client: the quoted packet is the client's as
 * translated (client → backend:port), so its destination goes back to the
 * frontend, and an error sent by the backend itself comes from the VIP.
 */
static __always_inline int lb_rev_nat_icmp(struct __sk_buff *skb, struct pkt *pkt, struct flow *f)
{
	const struct bpfnet_lb_rnat *rnat;
	struct bpfnet_ct_entry *e;
	struct lb_icmp_quote q;
	__u32 index;
	int ret;

	if (!lb_icmp_quote(skb, pkt, &q) || q.in.saddr != f->daddr)
		return 0;
	struct bpfnet_ct_key key = {
		.saddr = q.in.saddr, .daddr = q.in.daddr, .sport = q.ports[0], .dport = q.ports[1],
		.proto = q.in.protocol, .flags = BPFNET_CT_REVNAT,
	};
	e = lb_ct_live(&key, bpf_ktime_get_ns());
	if (!e)
		return 0;
	index = e->rev_nat_index;
	rnat = bpf_map_lookup_elem(&bpfnet_lb_rnat, &index);
	if (!rnat)
		return 0;
	ret = lb_icmp_quote_rewrite(skb, &q, true, rnat->vip, rnat->port);
	if (ret < 0)
		return ret;
	/* The backend's own error: from the VIP, as the client knows it. */
	if (f->saddr == q.in.daddr) {
		ret = lb_icmp_outer_rewrite(skb, f, false, rnat->vip);
		if (ret < 0)
			return ret;
	}
	return parse_ipv4(skb, pkt) == 0 ? 0 : DROP_LB_NAT;
}

/*
 * A reply of a translated flow, about to be delivered to its client: source
 * rewritten back to the frontend (an ICMP error about it: its quoted packet).
 * 0 for every other packet (untouched) and after the rewrite; a drop reason
 * if the rewrite failed.
 */
static __always_inline int lb_rev_nat(struct __sk_buff *skb, struct pkt *pkt, struct flow *f)
{
	const struct bpfnet_lb_rnat *rnat;
	struct bpfnet_ct_entry *e;
	__u32 index;
	__u64 now;
	int ret;

	ret = lb_flow(skb, pkt, f);
	if (ret <= 0)
		return ret;
	if (f->proto == IPPROTO_ICMP)
		return lb_rev_nat_icmp(skb, pkt, f);
	if (f->proto != IPPROTO_TCP && f->proto != IPPROTO_UDP)
		return 0;
	struct bpfnet_ct_key key = {
		.saddr = f->daddr, .daddr = f->saddr, .sport = f->dport, .dport = f->sport,
		.proto = f->proto, .flags = BPFNET_CT_REVNAT,
	};
	now = bpf_ktime_get_ns();
	e = lb_ct_live(&key, now);
	if (!e)
		return 0;
	index = e->rev_nat_index;
	rnat = bpf_map_lookup_elem(&bpfnet_lb_rnat, &index);
	if (!rnat)
		return 0;
	ct_refresh(e, config_get(), f, BPFNET_CT_SEEN_REPLY, now);
	return lb_nat(skb, pkt, f, rnat->vip, rnat->port, f->daddr, f->dport);
}
#endif /* BPFNET_LB_H */
