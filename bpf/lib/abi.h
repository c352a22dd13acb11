/* SPDX-License-Identifier: Apache-2.0 */
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

/* bpfnet_endpoint.flags: reserved, none defined yet. */

#define BPFNET_ENDPOINTS_MAX	16384
#define BPFNET_TUNNEL_MAX	4096
#define BPFNET_METRICS_MAX	8192
#define BPFNET_PEERS_MAX	4096

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
	__u32 pad[2];
};

/* The network's member hosts, by underlay address: the only outer sources bpf_overlay accepts. */
struct bpfnet_peer_key {
	__be32 ip4;
};

struct bpfnet_peer {
	__u32 flags;		/* none defined yet */
	__u32 pad;
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

_Static_assert(sizeof(struct bpfnet_endpoint_key) == 4, "endpoint key ABI");
_Static_assert(sizeof(struct bpfnet_endpoint) == 32, "endpoint value ABI");
_Static_assert(sizeof(struct bpfnet_tunnel_key) == 8, "tunnel key ABI");
_Static_assert(sizeof(struct bpfnet_tunnel) == 8, "tunnel value ABI");
_Static_assert(sizeof(struct bpfnet_config) == 32, "config ABI");
_Static_assert(sizeof(struct bpfnet_peer_key) == 4, "peer key ABI");
_Static_assert(sizeof(struct bpfnet_peer) == 8, "peer value ABI");
_Static_assert(sizeof(struct bpfnet_metrics_key) == 8, "metrics key ABI");
_Static_assert(sizeof(struct bpfnet_metrics_value) == 16, "metrics value ABI");

#endif /* BPFNET_ABI_H */
