/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The one exit path. Handlers return either a TC action or a negative drop
 * reason (DROP_*); every program's entry function passes that through
 * bpfnet_exit, which counts the verdict and turns drop reasons into
 * TC_ACT_SHOT. No handler returns TC_ACT_SHOT itself, so no drop goes
 * uncounted or without a reason, nor without its monitor event (events.h).
 */
#ifndef BPFNET_VERDICT_H
#define BPFNET_VERDICT_H

#include <linux/pkt_cls.h>
#include "events.h"
#include "metrics.h"

static __always_inline int bpfnet_exit(struct __sk_buff *skb, __u8 direction, int ret)
{
	bool dropped = false;
	__u8 path = 0;	/* a path reason the handler tagged its action with (metrics.h) */
	__u8 reason;

	if (ret > 0 && (ret >> PATH_REASON_SHIFT)) {
		path = (__u8)(ret >> PATH_REASON_SHIFT);
		ret &= (1 << PATH_REASON_SHIFT) - 1;
	}
	if (ret == TC_ACT_SHOT)
		ret = DROP_UNSPEC;

	if (ret < 0) {
		reason = (__u8)-ret;
		ret = TC_ACT_SHOT;
		dropped = true;
	} else if (ret == TC_ACT_REDIRECT) {
		reason = REASON_FORWARDED;
	} else {
		reason = REASON_PASSED;
	}

	metrics_record(skb->ifindex, direction, path ? path : reason, skb->len);
	event_exit(skb, direction, reason, dropped, ret);
	return ret;
}

#endif /* BPFNET_VERDICT_H */
