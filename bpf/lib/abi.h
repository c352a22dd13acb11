/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The user/kernel ABI: every map key/value and every constant that userspace
 * reads or writes. bpf/abi.ts mirrors this file field for field;
 * test/bpf/abi.test.ts compares both against the objects' BTF, so a change
 * here without the matching change there fails the tests.
 *
 * Rules: fixed-size types only, explicit padding (keys are hashed byte for
 * byte, so no compiler-inserted holes), sizes pinned by static asserts.
 * Fields marked be32 are in network byte order; all others are host order.
 */
#ifndef BPFNET_ABI_H
#define BPFNET_ABI_H

#include <linux/types.h>

/* bpfnet_config.mode */
#define BPFNET_MODE_VXLAN	1	/* other hosts' pods are reached through the VXLAN device */
#define BPFNET_MODE_L3		2	/* other hosts' pods are reached by the host's routing table */

/* bpfnet_metrics_key.direction: the tc hook the program runs on. */
#define METRIC_INGRESS		1
#define METRIC_EGRESS		2

/*
 * bpfnet_metrics_key.reason for packets that were not dropped. Drop reasons
 * are stored as their absolute value (130..255), so the two never collide.
 */
#define REASON_FORWARDED	0	/* redirected by the datapath */
#define REASON_PASSED		1	/* handed to the host stack (TC_ACT_OK) */
#define REASON_POLICY_AUDIT	2	/* a policy deny let through by audit mode (counted besides the verdict) */

/* Drop reasons: negative so a handler can return them in place of a TC action. */
#define DROP_INVALID		-130	/* truncated or malformed Ethernet/IPv4 header */
#define DROP_UNKNOWN_ENDPOINT	-131	/* overlay: destination is no local endpoint */
#define DROP_NO_ROUTE		-132	/* host: destination is neither local nor behind a tunnel */
#define DROP_TTL_EXCEEDED	-133	/* TTL would reach zero on this hop */
#define DROP_TUNNEL_KEY		-134	/* bpf_skb_set_tunnel_key failed */
#define DROP_NO_TUNNEL_DEVICE	-135	/* vxlan mode, but no VXLAN ifindex configured */
#define DROP_UNSPEC		-136	/* a helper returned TC_ACT_SHOT on its own */
#define DROP_SPOOFED_SOURCE	-137	/* lxc: source address is not the sending endpoint's own */
#define DROP_UNKNOWN_PEER	-138	/* overlay: outer source is no member host's underlay address */
#define DROP_BAD_VNI		-139	/* overlay: the VNI is not the network's */
#define DROP_NO_TUNNEL_INFO	-140	/* overlay: no tunnel metadata (device not in external mode) */
#define DROP_POLICY_DENIED	-141	/* an enforcing endpoint's policy has no allow for the packet */
#define DROP_CT_FULL		-142	/* a connection-tracking entry could not be created (fail closed) */
#define DROP_NO_PROXY		-143	/* redirected to the L7 proxy, but no proxy socket takes it (or not at tc ingress) */

/*
 * bpfnet_endpoint.flags: policy enforcement per direction. An endpoint with
 * no bit set is open (no CT, no policy lookups). AUDIT: a would-be drop is
 * counted as REASON_POLICY_AUDIT and the packet passes.
 */
#define BPFNET_EP_ENFORCE_INGRESS	1
#define BPFNET_EP_ENFORCE_EGRESS	2
#define BPFNET_EP_AUDIT_INGRESS		4
#define BPFNET_EP_AUDIT_EGRESS		8

/* Security identities (Cilium's numbering); endpoints get 256 and up, < 2^24. */
#define BPFNET_ID_ANY		0	/* policy keys: any peer */
#define BPFNET_ID_HOST		1	/* this host */
#define BPFNET_ID_WORLD		2	/* no ipcache row: outside the network */
#define BPFNET_ID_HEALTH	4
#define BPFNET_ID_REMOTE_NODE	6	/* other hosts' addresses */

/* bpfnet_policy_key.direction */
#define BPFNET_POLICY_INGRESS	1	/* into the endpoint */
#define BPFNET_POLICY_EGRESS	2	/* out of the endpoint */

/* bpfnet_policy_value.action */
#define BPFNET_ACTION_ALLOW	1
#define BPFNET_ACTION_DENY	2
#define BPFNET_ACTION_REDIRECT	3	/* to the L7 proxy: skb->mark = MARK_TO_PROXY | port << 16, to the host stack */

#define BPFNET_MARK_TO_PROXY	0x0b9f	/* low 16 bits of skb->mark of a packet redirected to the proxy */
#define BPFNET_MARK_FROM_PROXY	0x0a9f	/* skb->mark (SO_MARK) of the proxy's upstream connections: judged at L7 already */

/* bpfnet_verdict_key.verdict: policy decisions, counted per rule for new flows and drops. */
#define BPFNET_VERDICT_ALLOW	1
#define BPFNET_VERDICT_DENY	2
#define BPFNET_VERDICT_REDIRECT	3
#define BPFNET_VERDICT_AUDIT	4	/* a deny let through by audit mode */

/* bpfnet_ct_key.flags: which end's hook made the entry. */
#define BPFNET_CT_EGRESS	0	/* made as the packet left its source endpoint */
#define BPFNET_CT_INGRESS	1	/* made as the packet was delivered to its destination endpoint */

/* bpfnet_ct_entry.flags */
#define BPFNET_CT_SEEN_REPLY	1	/* a reply passed: TCP counts as established */
#define BPFNET_CT_CLOSING	2	/* FIN or RST seen */

/* Connection-tracking lifetimes when bpfnet_config leaves them 0, in seconds. */
#define BPFNET_CT_LIFETIME_TCP_DEFAULT		21600	/* established TCP */
#define BPFNET_CT_LIFETIME_SHORT_DEFAULT	60	/* SYN, FIN/RST, non-TCP */

#define BPFNET_ENDPOINTS_MAX	16384
#define BPFNET_TUNNEL_MAX	4096
#define BPFNET_METRICS_MAX	8192
#define BPFNET_PEERS_MAX	4096
#define BPFNET_IPCACHE_MAX	65536
#define BPFNET_POLICY_MAX	65536
#define BPFNET_CT_MAX		65536
#define BPFNET_VERDICTS_MAX	16384

struct bpfnet_endpoint_key {
	__be32 ip4;
};

struct bpfnet_endpoint {
	__u32 ifindex;		/* host-side veth: where bpf_redirect sends the packet */
	__u32 endpoint_id;
	__u8  mac[6];		/* the container's MAC: new destination MAC */
	__u8  node_mac[6];	/* the host-side veth's MAC: new source MAC */
	__u32 flags;
	__u32 pad[2];
};

/* LPM trie keys start with the prefix length, as the kernel requires. */
struct bpfnet_tunnel_key {
	__u32  prefixlen;
	__be32 ip4;
};

struct bpfnet_tunnel {
	__be32 remote_ip4;	/* underlay address of the host owning the prefix */
	__u32  flags;
};

struct bpfnet_config {
	__u32 mode;		/* BPFNET_MODE_*; 0 = unconfigured: no tunnelling */
	__u32 vni;
	__u32 vxlan_ifindex;	/* VXLAN device in external (collect-metadata) mode */
	__u32 host_ifindex;	/* bpfnet_host */
	__u32 flags;
	__be32 gateway_ip4;	/* this host's gateway address (on bpfnet_host); 0 = unset */
	__u32 ct_lifetime_tcp;	/* seconds; 0 = BPFNET_CT_LIFETIME_TCP_DEFAULT */
	__u32 ct_lifetime_short;	/* seconds; 0 = BPFNET_CT_LIFETIME_SHORT_DEFAULT */
};

/* The network's member hosts, by underlay address: the only outer sources bpf_overlay accepts. */
struct bpfnet_peer_key {
	__be32 ip4;
};

struct bpfnet_peer {
	__u32 flags;		/* none defined yet */
	__u32 pad;
};

/* ipcache: address (LPM, always looked up as /32) → security identity. No row = world. */
struct bpfnet_ipcache_key {
	__u32  prefixlen;
	__be32 ip4;
};

struct bpfnet_ipcache_entry {
	__u32 identity;
	__u32 flags;		/* none defined yet */
};

struct bpfnet_policy_key {
	__u32 endpoint_id;	/* bpfnet_endpoint.endpoint_id of the local endpoint */
	__u32 identity;		/* the peer's; BPFNET_ID_ANY = any */
	__be16 dport;		/* 0 = any port */
	__u8  proto;		/* IPPROTO_*; 0 = any */
	__u8  direction;	/* BPFNET_POLICY_* */
};

struct bpfnet_policy_value {
	__u8  action;		/* BPFNET_ACTION_* */
	__u8  pad;
	__be16 proxy_port;	/* BPFNET_ACTION_REDIRECT */
	__u32 rule_id;		/* the agent's number of the rule that made the row */
};

/*
 * One connection-tracking entry per flow and end: the packet's own 5-tuple
 * as it was seen, and which hook made it (BPFNET_CT_*). Ports are 0 for
 * protocols without them; ICMP echo uses the identifier as sport (request)
 * or dport (reply), so a reply's reversed tuple finds the request's entry.
 */
struct bpfnet_ct_key {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8  proto;
	__u8  flags;		/* BPFNET_CT_EGRESS / BPFNET_CT_INGRESS */
	__u8  pad[2];
};

struct bpfnet_ct_entry {
	__u64 expires;		/* bpf_ktime_get_ns() deadline (CLOCK_MONOTONIC) */
	__u32 src_identity;	/* the peer's identity when the entry was made */
	__u16 rev_nat_index;	/* reserved for service load balancing */
	__be16 proxy_port;	/* the flow was redirected to the proxy */
	__u32 backend_id;	/* reserved for service load balancing */
	__u8  tcp_flags;	/* union of TCP flags seen */
	__u8  flags;		/* BPFNET_CT_SEEN_REPLY | BPFNET_CT_CLOSING */
	__u8  pad[2];
};

/*
 * Policy verdicts by endpoint and rule: every denied packet, and the first
 * packet of each allowed flow (the one that makes its CT entry). rule_id is
 * the row's; 0 when no row matched (a default deny).
 */
struct bpfnet_verdict_key {
	__u32 endpoint_id;
	__u32 rule_id;
	__u8  direction;	/* BPFNET_POLICY_* */
	__u8  verdict;		/* BPFNET_VERDICT_* */
	__u8  pad[2];
};

struct bpfnet_metrics_key {
	__u32 id;		/* ifindex the packet was seen on */
	__u8  direction;	/* METRIC_INGRESS / METRIC_EGRESS */
	__u8  reason;		/* REASON_* or -DROP_* */
	__u8  pad[2];
};

struct bpfnet_metrics_value {
	__u64 packets;
	__u64 bytes;
};

/* --- Node monitor events (lib/events.h emits them; bpf/events.ts decodes them) --- */

/* bpfnet_endpoint.flags bit 4: trace every packet this endpoint sends or receives. */
#define BPFNET_EP_TRACE			16

/*
 * bpfnet_config.flags: EVENTS_OFF switches every event off (drops, verdicts,
 * traces; the counters stay). TRACE_ENDPOINTS: some endpoint has
 * BPFNET_EP_TRACE, so the exit path looks the packet's endpoints up (unset,
 * forwarded packets cost one branch). Bits 16..31: trace 1 in N forwarded
 * packets (0: no sampling).
 */
#define BPFNET_CFG_EVENTS_OFF		1
#define BPFNET_CFG_TRACE_ENDPOINTS	2
#define BPFNET_CFG_TRACE_SAMPLE_SHIFT	16

/* bpfnet_event.type */
#define BPFNET_EVENT_DROP		1	/* reason: -DROP_* */
#define BPFNET_EVENT_VERDICT		2	/* verdict: BPFNET_VERDICT_*, direction: BPFNET_POLICY_* */
#define BPFNET_EVENT_TRACE		3	/* reason: REASON_FORWARDED / REASON_PASSED */

/* bpfnet_event.hook: the program that saw the packet. */
#define BPFNET_HOOK_LXC			1
#define BPFNET_HOOK_OVERLAY		2
#define BPFNET_HOOK_HOST		3

/* The ring's size in bytes (a power of two, a multiple of the page size). */
#define BPFNET_EVENTS_RING_SIZE		(256 * 1024)

/* One record of the bpfnet_events ring buffer. Identities are 0 where unknown. */
struct bpfnet_event {
	__u64 time_ns;		/* bpf_ktime_get_ns() (CLOCK_MONOTONIC) */
	__u32 ifindex;		/* device the packet was seen on */
	__u32 to_ifindex;	/* trace: where it was redirected (0: the host stack) */
	__be32 saddr;
	__be32 daddr;
	__be16 sport;		/* 0 for protocols without ports; ICMP echo: the identifier */
	__be16 dport;
	__u8  proto;
	__u8  type;		/* BPFNET_EVENT_* */
	__u8  direction;	/* drop/trace: METRIC_* (hook); verdict: BPFNET_POLICY_* */
	__u8  hook;		/* BPFNET_HOOK_* */
	__u8  reason;		/* drop: -DROP_*; trace: REASON_* */
	__u8  verdict;		/* verdict: BPFNET_VERDICT_* */
	__u8  pad[2];
	__u32 src_identity;
	__u32 dst_identity;
	__u32 endpoint_id;	/* the local endpoint concerned (0: none) */
	__u32 rule_id;		/* verdict: the policy row's rule (0: no row) */
	__u32 len;		/* packet length */
};

/* --- Service load balancing (lib/lb.h, bpf_sock.c; contract in bpf/README.md) --- */

#define DROP_NO_SERVICE_BACKEND	-144	/* a service (VIP, port, proto) with no usable backend */
#define DROP_LB_NAT		-145	/* rewriting a packet's address/port or checksum failed */

/* bpfnet_lb_svc.flags (slot 0) */
#define BPFNET_LB_AFFINITY	1	/* sessionAffinity clientIP: bpfnet_lb_aff pins client → backend */
#define BPFNET_LB_MAGLEV	2	/* select through the service's bpfnet_lb_mglv table */

/* bpfnet_lb_be.flags */
#define BPFNET_LB_BE_TERMINATING	1	/* no new flows; flows pinned in CT continue */

/*
 * bpfnet_ct_key.flags of the two entries a translated flow adds: SERVICE keys
 * the client's tuple as sent (to the VIP) and pins rev_nat_index + backend_id;
 * REVNAT keys the tuple as translated (to the backend), so a reply finds its
 * rev_nat_index. Both are the client side's; policy's entries are untouched.
 */
#define BPFNET_CT_SERVICE	2
#define BPFNET_CT_REVNAT	3

#define BPFNET_MAGLEV_M		251	/* Maglev table size (prime): index = flow hash % M */

#define BPFNET_LB_SVC_MAX	65536	/* service rows + backend slots */
#define BPFNET_LB_BE_MAX	65536
#define BPFNET_LB_RNAT_MAX	65536
#define BPFNET_LB_MGLV_MAX	16384
#define BPFNET_LB_AFF_MAX	65536
#define BPFNET_LB_SKNAT_MAX	65536
#define BPFNET_LB_NOBE_MAX	16384

/* Slot 0: the service row; slots 1..count: one backend each. */
struct bpfnet_lb_svc_key {
	__be32 vip;
	__be16 port;
	__u16 slot;
	__u8  proto;		/* IPPROTO_TCP / IPPROTO_UDP */
	__u8  pad[3];
};

struct bpfnet_lb_svc {
	__u32 backend_id;	/* slots 1..count; 0 in the row */
	__u16 count;		/* row: active slots 1..count (0: no backend, dropped) */
	__u16 rev_nat_index;	/* row: the service's cluster-wide number, 1..65535 */
	__u8  flags;		/* row: BPFNET_LB_AFFINITY | BPFNET_LB_MAGLEV */
	__u8  pad;
	__u16 affinity_timeout_s;	/* row: clientIP affinity lifetime, seconds */
};

/* bpfnet_lb_be: key u32 backend_id (>= 1, host-local numbering). */
struct bpfnet_lb_be {
	__be32 addr;
	__be16 port;
	__u8  proto;
	__u8  flags;		/* BPFNET_LB_BE_TERMINATING */
};

/* bpfnet_lb_rnat: key u32 rev_nat_index → the frontend replies are rewritten to. */
struct bpfnet_lb_rnat {
	__be32 vip;
	__be16 port;
	__u16 pad;
};

/* bpfnet_lb_mglv: key u32 rev_nat_index → the service's Maglev lookup table. */
struct bpfnet_lb_mglv {
	__u32 backend_ids[BPFNET_MAGLEV_M];
};

struct bpfnet_lb_aff_key {
	__be32 client_ip;	/* tc: the client's address; socket hook: 0 (the host's namespace) */
	__u32 rev_nat_index;
};

struct bpfnet_lb_aff {
	__u64 last_used_ns;	/* bpf_ktime_get_ns() of the last new flow that used it */
	__u32 backend_id;
	__u32 pad;
};

/* bpfnet_lb_sknat: what a socket hook translated, for recvmsg4/getpeername4. */
struct bpfnet_lb_sknat_key {
	__u64 cookie;		/* bpf_get_socket_cookie() */
	__be32 addr;		/* backend */
	__be16 port;
	__u16 pad;
};

struct bpfnet_lb_sknat {
	__be32 vip;
	__be16 port;
	__u16 rev_nat_index;
};

/* bpfnet_lb_nobe: per-service count of packets/connects dropped for want of a backend. */
struct bpfnet_lb_nobe_key {
	__u32 rev_nat_index;
};

/*
 * bpfnet_sock_cfg.flags: LB_ACTIVE, a service has been written on this host
 * (LbServiceMap sets it): only then do bpf_lxc and delivery parse a packet's
 * ports to look for a service flow, so a host without services pays nothing.
 */
#define BPFNET_LB_ACTIVE	1

/* bpfnet_sock_cfg (one slot): the socket hooks act only in this network namespace. */
struct bpfnet_sock_cfg {
	__u64 netns_cookie;	/* SO_NETNS_COOKIE of the host's namespace; 0: hooks do nothing */
	__u32 flags;		/* BPFNET_LB_ACTIVE */
	__u32 pad;
};

_Static_assert(sizeof(struct bpfnet_lb_svc_key) == 12, "lb svc key ABI");
_Static_assert(sizeof(struct bpfnet_lb_svc) == 12, "lb svc value ABI");
_Static_assert(sizeof(struct bpfnet_lb_be) == 8, "lb backend ABI");
_Static_assert(sizeof(struct bpfnet_lb_rnat) == 8, "lb rnat ABI");
_Static_assert(sizeof(struct bpfnet_lb_mglv) == 4 * BPFNET_MAGLEV_M, "lb maglev ABI");
_Static_assert(sizeof(struct bpfnet_lb_aff_key) == 8, "lb affinity key ABI");
_Static_assert(sizeof(struct bpfnet_lb_aff) == 16, "lb affinity value ABI");
_Static_assert(sizeof(struct bpfnet_lb_sknat_key) == 16, "lb sknat key ABI");
_Static_assert(sizeof(struct bpfnet_lb_sknat) == 8, "lb sknat value ABI");
_Static_assert(sizeof(struct bpfnet_lb_nobe_key) == 4, "lb nobe key ABI");
_Static_assert(sizeof(struct bpfnet_sock_cfg) == 16, "sock cfg ABI");

_Static_assert(sizeof(struct bpfnet_endpoint_key) == 4, "endpoint key ABI");
_Static_assert(sizeof(struct bpfnet_endpoint) == 32, "endpoint value ABI");
_Static_assert(sizeof(struct bpfnet_tunnel_key) == 8, "tunnel key ABI");
_Static_assert(sizeof(struct bpfnet_tunnel) == 8, "tunnel value ABI");
_Static_assert(sizeof(struct bpfnet_config) == 32, "config ABI");
_Static_assert(sizeof(struct bpfnet_peer_key) == 4, "peer key ABI");
_Static_assert(sizeof(struct bpfnet_peer) == 8, "peer value ABI");
_Static_assert(sizeof(struct bpfnet_ipcache_key) == 8, "ipcache key ABI");
_Static_assert(sizeof(struct bpfnet_ipcache_entry) == 8, "ipcache value ABI");
_Static_assert(sizeof(struct bpfnet_policy_key) == 12, "policy key ABI");
_Static_assert(sizeof(struct bpfnet_policy_value) == 8, "policy value ABI");
_Static_assert(sizeof(struct bpfnet_ct_key) == 16, "ct key ABI");
_Static_assert(sizeof(struct bpfnet_ct_entry) == 24, "ct value ABI");
_Static_assert(sizeof(struct bpfnet_verdict_key) == 12, "verdict key ABI");
_Static_assert(sizeof(struct bpfnet_metrics_key) == 8, "metrics key ABI");
_Static_assert(sizeof(struct bpfnet_metrics_value) == 16, "metrics value ABI");
_Static_assert(sizeof(struct bpfnet_event) == 56, "event ABI");

/* --- The fast path (lib/fib.h, bpf_netdev.c) --- */

/*
 * bpfnet_metrics_key.reason: which path a packet took, counted in place of
 * the verdict the path implies (one counter update per packet: lib/metrics.h);
 * readers add it to that verdict (bpf/pathCounters.ts). FAST: bpf_lxc sent it out of the underlay device with
 * bpf_redirect_neigh (the kernel routes and resolves the next hop); STACK: no
 * fast route for it (a local address, the outside world, …), so the host
 * stack got it; PEER: delivered into the container's namespace with
 * bpf_redirect_peer (no second stack pass, no veth backlog).
 */
#define REASON_ROUTE_FAST	3
#define REASON_ROUTE_STACK	4
#define REASON_PEER		5
/*
 * The fast path's other outcomes (lib/fib.h). NEIGH: the FIB has the route
 * but no resolved neighbour for its next hop: bpf_redirect_neigh, so the
 * kernel resolves it (the next packet goes FAST). FIB_STACK: a route row, but
 * bpf_fib_lookup would not forward (no route, unreachable, blackhole,
 * prohibit, forwarding off, too big): the host stack answers it as before.
 * FAST itself means: the FIB's next hop and MACs, bpf_redirect, no
 * neighbour-subsystem pass.
 */
#define REASON_ROUTE_NEIGH	6
#define REASON_ROUTE_FIB_STACK	7

/* bpfnet_event.hook of the underlay device's program (tc ingress on the host's underlay interface). */
#define BPFNET_HOOK_NETDEV	4

#define BPFNET_ROUTES_MAX	4096

/*
 * bpfnet_routes (l3 mode; key: struct bpfnet_tunnel_key, a pod CIDR): the
 * other hosts' pod CIDRs and the device that reaches them.
 */
struct bpfnet_route {
	__u32 ifindex;		/* the underlay device */
	__u32 flags;		/* none defined yet */
};

_Static_assert(sizeof(struct bpfnet_route) == 8, "route value ABI");

#endif /* BPFNET_ABI_H */
