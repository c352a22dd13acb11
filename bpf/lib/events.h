/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Node monitor events: drops (from bpfnet_exit), policy verdicts (from
 * enforce) and traces (forwarded packets of traced endpoints, or sampled),
 * written to the bpfnet_events ring buffer as struct bpfnet_event. A full
 * ring never blocks the packet: the event is counted in bpfnet_events_lost
 * and dropped. bpfnet_config.flags switches events off or traces on.
 *
 * The including program defines HOOK_PROGRAM (BPFNET_HOOK_*), the program
 * named in its events. BPFNET_NO_EVENTS compiles them out (bench/monitor.ts's
 * baseline only).
 */
#ifndef BPFNET_EVENTS_H
#define BPFNET_EVENTS_H

#include <stdbool.h>
#include <linux/pkt_cls.h>
#include "flow.h"
#include "ipcache.h"
#include "maps.h"
#include "pkt.h"

#ifndef HOOK_PROGRAM
#define HOOK_PROGRAM 0
#endif

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, BPFNET_EVENTS_RING_SIZE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bpfnet_events SEC(".maps");

/* Events the ring had no room for, per CPU (slot 0). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bpfnet_events_lost SEC(".maps");

static __always_inline bool events_on(const struct bpfnet_config *cfg)
{
	return !cfg || !(cfg->flags & BPFNET_CFG_EVENTS_OFF);
}

#ifdef BPFNET_NO_EVENTS
#define event_verdict(skb, f, ep, direction, verdict, rule_id, peer) ((void)0)
#define event_exit(skb, direction, reason, dropped, action) ((void)(dropped))
#else
/*
 * Copies the event into the ring, or counts it lost: never waits for room.
 * Not inlined: events are the cold path, and the function's signature puts
 * struct bpfnet_event into the object's BTF (test/bpf/abi.test.ts checks it).
 */
static __noinline int event_submit(struct bpfnet_event *ev)
{
	__u32 zero = 0;
	__u64 *lost;

	ev->time_ns = bpf_ktime_get_ns();
	ev->hook = HOOK_PROGRAM;
	if (bpf_ringbuf_output(&bpfnet_events, ev, sizeof(*ev), 0) == 0)
		return 0;
	lost = bpf_map_lookup_elem(&bpfnet_events_lost, &zero);
	if (lost)
		*lost += 1;
	return -1;
}

static __always_inline void event_tuple(struct bpfnet_event *ev, const struct flow *f)
{
	ev->saddr = f->saddr;
	ev->daddr = f->daddr;
	ev->sport = f->sport;
	ev->dport = f->dport;
	ev->proto = f->proto;
}

/*
 * A policy decision at an endpoint (enforce.h): peer is the other end's
 * identity, on the side the direction names.
 */
static __always_inline void event_verdict(struct __sk_buff *skb, const struct flow *f,
					  const struct bpfnet_endpoint *ep, __u8 direction,
					  __u8 verdict, __u32 rule_id, __u32 peer)
{
	struct bpfnet_event ev = {};

	if (!events_on(config_get()))
		return;
	ev.type = BPFNET_EVENT_VERDICT;
	ev.ifindex = skb->ifindex;
	ev.direction = direction;
	ev.verdict = verdict;
	ev.endpoint_id = ep->endpoint_id;
	ev.rule_id = rule_id;
	ev.len = skb->len;
	event_tuple(&ev, f);
	if (direction == BPFNET_POLICY_INGRESS) {
		ev.src_identity = peer;
		ev.dst_identity = ipcache_identity(f->daddr);
	} else {
		ev.src_identity = ipcache_identity(f->saddr);
		ev.dst_identity = peer;
	}
	event_submit(&ev);
}

/*
 * The local endpoint a packet concerns: the sender when the packet came in
 * on its veth, else the destination. NULL when neither is local.
 */
static __always_inline const struct bpfnet_endpoint *event_endpoint(struct __sk_buff *skb,
								    const struct flow *f)
{
	const struct bpfnet_endpoint *ep = endpoint_lookup(f->saddr);

	if (ep && ep->ifindex == skb->ifindex)
		return ep;
	return endpoint_lookup(f->daddr);
}

/* Should a forwarded packet be traced? Sampled, or one of its endpoints has TRACE. */
static __always_inline bool trace_wanted(const struct bpfnet_config *cfg, const struct flow *f)
{
	__u32 every = cfg->flags >> BPFNET_CFG_TRACE_SAMPLE_SHIFT;
	const struct bpfnet_endpoint *ep;

	if (every && bpf_get_prandom_u32() % every == 0)
		return true;
	if (!(cfg->flags & BPFNET_CFG_TRACE_ENDPOINTS))
		return false;
	ep = endpoint_lookup(f->saddr);
	if (ep && (ep->flags & BPFNET_EP_TRACE))
		return true;
	ep = endpoint_lookup(f->daddr);
	return ep && (ep->flags & BPFNET_EP_TRACE);
}

/*
 * The exit path's event (verdict.h): every drop, and a trace of a forwarded
 * or passed packet when wanted. `reason` is the metrics reason (abs drop
 * code, or REASON_*). The packet is parsed again here: drops are rare, and
 * traces are opt-in, so the common path pays for one config lookup.
 */
static __always_inline void event_exit(struct __sk_buff *skb, __u8 direction, __u8 reason,
				       bool dropped, int action)
{
	const struct bpfnet_config *cfg = config_get();
	const struct bpfnet_endpoint *ep;
	struct bpfnet_event ev = {};
	struct flow f = {};
	struct pkt pkt;

	if (!cfg || (cfg->flags & BPFNET_CFG_EVENTS_OFF))
		return;
	if (!dropped && !(cfg->flags & (BPFNET_CFG_TRACE_ENDPOINTS | (0xffffu << BPFNET_CFG_TRACE_SAMPLE_SHIFT))))
		return;
	if (parse_ipv4(skb, &pkt) == 0)
		flow_parse(skb, &pkt, &f);
	else if (!dropped)
		return;	/* ARP and other non-IPv4 passing through: no trace */
	if (!dropped && !trace_wanted(cfg, &f))
		return;

	ev.type = dropped ? BPFNET_EVENT_DROP : BPFNET_EVENT_TRACE;
	ev.ifindex = skb->ifindex;
	ev.direction = direction;
	ev.reason = reason;
	ev.len = skb->len;
	event_tuple(&ev, &f);
	if (f.saddr) {
		ep = event_endpoint(skb, &f);
		ev.endpoint_id = ep ? ep->endpoint_id : 0;
		/* A spoofed source claims someone else's identity: leave it unknown. */
		if (reason != (__u8)-DROP_SPOOFED_SOURCE)
			ev.src_identity = ipcache_identity(f.saddr);
		ev.dst_identity = ipcache_identity(f.daddr);
		if (!dropped && action == TC_ACT_REDIRECT) {
			ep = endpoint_lookup(f.daddr);
			ev.to_ifindex = ep ? ep->ifindex : cfg->vxlan_ifindex;
		}
	}
	event_submit(&ev);
}
#endif /* BPFNET_NO_EVENTS */

#endif /* BPFNET_EVENTS_H */
