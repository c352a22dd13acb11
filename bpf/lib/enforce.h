/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Policy enforcement at an endpoint, for one direction: connection tracking
 * first (replies skip policy), then the endpoint's policy rows (forward
 * packets, new and established alike, so removing an allow cuts live flows),
 * then this end's CT entry. Endpoints without enforcement bits cost nothing.
 *
 * The including program defines HOOK_DIRECTION (METRIC_INGRESS/EGRESS: the
 * tc hook it runs on), under which audit verdicts are counted.
 */
#ifndef BPFNET_ENFORCE_H
#define BPFNET_ENFORCE_H

#include <linux/pkt_cls.h>
#include "ct.h"
#include "events.h"
#include "flow.h"
#include "ipcache.h"
#include "metrics.h"
#include "policy.h"

#ifndef HOOK_DIRECTION
#error "define HOOK_DIRECTION before including enforce.h"
#endif

/* The endpoint flags that make enforce() look at a packet at all. */
#define POLICY_FLAGS (BPFNET_EP_ENFORCE_INGRESS | BPFNET_EP_ENFORCE_EGRESS | \
		      BPFNET_EP_AUDIT_INGRESS | BPFNET_EP_AUDIT_EGRESS)

/* enforce(): the packet goes to the L7 proxy (the caller hands it to the host stack). */
#define ENFORCE_TO_PROXY 1

/*
 * Returns 0 to go on, ENFORCE_TO_PROXY when the packet is redirected to the
 * L7 proxy (skb->mark = BPFNET_MARK_TO_PROXY | port << 16; the caller returns
 * TC_ACT_OK so the host stack's TPROXY rule can take it), or a drop reason.
 */
static __always_inline int enforce(struct __sk_buff *skb, const struct pkt *pkt, struct flow *f,
				   const struct bpfnet_endpoint *ep, __u8 direction)
{
	const bool ingress = direction == BPFNET_POLICY_INGRESS;
	const __u32 enforce_bit = ingress ? BPFNET_EP_ENFORCE_INGRESS : BPFNET_EP_ENFORCE_EGRESS;
	const __u32 audit_bit = ingress ? BPFNET_EP_AUDIT_INGRESS : BPFNET_EP_AUDIT_EGRESS;
	const __u8 hook = ingress ? BPFNET_CT_INGRESS : BPFNET_CT_EGRESS;
	const struct bpfnet_policy_value *row = NULL;
	const struct bpfnet_config *cfg;
	__u32 peer = BPFNET_ID_ANY;
	__u8 verdict = 0;	/* none: the direction is not enforced */
	__be16 proxy_port = 0;
	__u64 now;
	int ret;

	if (!(ep->flags & POLICY_FLAGS))
		return 0;	/* open (a TRACE-only endpoint is open too) */
	ret = flow_get(skb, pkt, f);
	if (ret < 0)
		return ret;
	cfg = config_get();
	now = bpf_ktime_get_ns();
	if (ct_is_reply(f, hook, cfg, now))
		return 0;

#ifdef TRUST_PROXY_MARK
	/*
	 * The agent's L7 proxy forwarding a request it allowed under this
	 * endpoint's ingress rules (SO_MARK: root only; a namespace crossing
	 * clears it). Only the including program that sees host-stack packets
	 * trusts it. Tracked like any allowed flow, so the replies pass.
	 */
	if (ingress && skb->mark == BPFNET_MARK_FROM_PROXY) {
		peer = BPFNET_ID_HOST;
		verdict = BPFNET_VERDICT_ALLOW;
	} else
#endif
	if (ep->flags & (enforce_bit | audit_bit)) {
		peer = ipcache_identity(ingress ? f->saddr : f->daddr);
		row = policy_lookup(ep->endpoint_id, peer, f->dport, f->proto, direction);
		if (!row || (row->action != BPFNET_ACTION_ALLOW && row->action != BPFNET_ACTION_REDIRECT)) {
			if (!(ep->flags & audit_bit)) {
				verdict_record(ep->endpoint_id, row ? row->rule_id : 0, direction,
					       BPFNET_VERDICT_DENY, skb->len);
				event_verdict(skb, f, ep, direction, BPFNET_VERDICT_DENY,
					      row ? row->rule_id : 0, peer);
				return DROP_POLICY_DENIED;
			}
			metrics_record(skb->ifindex, HOOK_DIRECTION, REASON_POLICY_AUDIT, skb->len);
			verdict = BPFNET_VERDICT_AUDIT;
		} else if (row->action == BPFNET_ACTION_REDIRECT) {
			proxy_port = row->proxy_port;
			verdict = BPFNET_VERDICT_REDIRECT;
		} else {
			verdict = BPFNET_VERDICT_ALLOW;
		}
	}

	ret = ct_track(f, hook, cfg, now, peer, proxy_port);
	if (ret < 0)
		return ret;
	/* Allowed verdicts once per flow (its first packet); audits on every packet, as drops would be. */
	if (verdict == BPFNET_VERDICT_AUDIT || (verdict && ret == 1)) {
		verdict_record(ep->endpoint_id, row ? row->rule_id : 0, direction, verdict, skb->len);
		event_verdict(skb, f, ep, direction, verdict, row ? row->rule_id : 0, peer);
	}
	if (proxy_port) {
		skb->mark = BPFNET_MARK_TO_PROXY | ((__u32)bpf_ntohs(proxy_port) << 16);
		return ENFORCE_TO_PROXY;
	}
	return 0;
}

#endif /* BPFNET_ENFORCE_H */
