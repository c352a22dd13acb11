// The host's bpfnet devices, routes and sysctls: planned purely from the network, then ensured
// idempotently (a restart finds everything in place and changes nothing).
import * as fs from "fs";
import { podNetwork } from "./ipam";
import { ipBatch, tryIp } from "./exec";
import { getLink, LinkInfo } from "./links";
import { Logger } from "./log";
import type { NetworkCache } from "./state";

export const VXLAN_DEVICE = "bpfnet_vxlan";
export const HOST_DEVICE = "bpfnet_host";
/** The other end of bpfnet_host: this kernel has no dummy driver, so bpfnet_host is a veth. */
export const HOST_PEER_DEVICE = "bpfnet_net";

export interface RoutePlan {
  dst: string;
  dev: string;
  src: string;
}

export interface DevicePlan {
  mode: "vxlan" | "l3";
  /** `local`: the device is bound to the host's underlay address (sends from it, nowhere else). */
  vxlan?: { name: string; port: number; mtu: number; local: string };
  host: { name: string; peer: string; address: string; mtu: number };
  routes: RoutePlan[];
  /** /proc/sys paths (relative to /proc/sys/) and values. */
  sysctls: [string, string][];
}

/**
 * vxlan: the whole cluster CIDR goes to bpfnet_host, whose program delivers locally or
 * tunnels. l3: only this host's pod CIDR does; other hosts' pods are reached through the
 * host's routing (the router between hosts knows every pod CIDR).
 */
export function planDevices(net: NetworkCache, underlayIp: string): DevicePlan {
  const pod = podNetwork(net.podCidr);
  const sysctls: [string, string][] = [
    ["net/ipv4/ip_forward", "1"],
    // Replies to the host arrive on container veths while the route to containers points at
    // bpfnet_host: strict reverse-path filtering would drop them.
    ["net/ipv4/conf/all/rp_filter", "0"],
    ["net/ipv4/conf/default/rp_filter", "0"],
    [`net/ipv4/conf/${HOST_DEVICE}/rp_filter`, "0"],
  ];
  const plan: DevicePlan = {
    mode: net.mode,
    host: { name: HOST_DEVICE, peer: HOST_PEER_DEVICE, address: `${pod.gateway}/32`, mtu: net.mtu },
    routes: [{ dst: net.mode === "vxlan" ? net.clusterCidr : net.podCidr, dev: HOST_DEVICE, src: pod.gateway }],
    sysctls,
  };
  if (net.mode === "vxlan") {
    plan.vxlan = { name: VXLAN_DEVICE, port: net.vxlanPort, mtu: net.mtu, local: underlayIp };
    sysctls.push([`net/ipv4/conf/${VXLAN_DEVICE}/rp_filter`, "0"]);
  }
  return plan;
}

export interface EnsuredDevices {
  host: LinkInfo;
  vxlan?: LinkInfo;
}

export function writeSysctl(relPath: string, value: string): void {
  const file = `/proc/sys/${relPath}`;
  let current: string | undefined;
  try {
    current = fs.readFileSync(file, "utf8").trim();
  } catch (e) {
    throw new Error(`cannot read sysctl ${relPath.replace(/\//g, ".")}: ${(e as Error).message}`);
  }
  if (current !== value) fs.writeFileSync(file, value);
}

export async function ensureDevices(plan: DevicePlan, log: Logger): Promise<EnsuredDevices> {
  // Read with netlink, then every change in one `ip -batch` (one process instead of one per command).
  const changes: string[][] = [];
  const made: (() => void)[] = [];
  const v = plan.vxlan;
  if (v) {
    let link = await getLink(v.name);
    if (link && link.kind !== "vxlan") {
      throw new Error(`${v.name} exists but is a ${link.kind ?? "device of unknown kind"}, not a VXLAN device; remove it by hand`);
    }
    const fits = link && link.vxlan?.external === true && link.vxlan.port === v.port && link.vxlan.local === v.local;
    if (link && !fits) {
      // A device of ours with other settings (e.g. the port changed): only a new one fits.
      log.warn("replacing a VXLAN device that does not match the network", { device: v.name, kind: link.kind, vxlan: link.vxlan });
      changes.push(["link", "del", v.name]);
      link = undefined;
    }
    if (!link) {
      changes.push(["link", "add", v.name, "mtu", String(v.mtu), "type", "vxlan", "external", "dstport", String(v.port), "local", v.local]);
      made.push(() => log.info("created VXLAN device", { device: v.name, port: v.port, mtu: v.mtu, local: v.local }));
    }
    changes.push(["link", "set", v.name, "mtu", String(v.mtu), "up"]);
  } else if (await getLink(VXLAN_DEVICE)) {
    log.warn("a VXLAN device exists but the network is in l3 mode; leaving it (nothing routes to it)", { device: VXLAN_DEVICE });
  }

  const h = plan.host;
  const existing = await getLink(h.name);
  if (existing && existing.kind !== "veth") {
    throw new Error(`${h.name} exists but is a ${existing.kind ?? "device of unknown kind"}, not the veth bpfnet makes; remove it by hand`);
  }
  if (!existing) {
    changes.push(["link", "add", h.name, "mtu", String(h.mtu), "type", "veth", "peer", "name", h.peer, "mtu", String(h.mtu)]);
    made.push(() => log.info("created host device", { device: h.name, peer: h.peer }));
  }
  // NOARP: the kernel sends container-bound packets here without resolving a neighbour; the
  // egress program rewrites the MACs anyway.
  changes.push(["link", "set", h.name, "mtu", String(h.mtu), "arp", "off", "up"]);
  changes.push(["link", "set", h.peer, "mtu", String(h.mtu), "up"]);
  changes.push(["addr", "replace", h.address, "dev", h.name]);
  await ipBatch(changes);
  made.forEach((say) => say());

  for (const [path, value] of plan.sysctls) writeSysctl(path, value);
  await ipBatch(plan.routes.map((r) => ["route", "replace", r.dst, "dev", r.dev, "src", r.src]));
  const [host, vxlan] = await Promise.all([getLink(h.name), v ? getLink(v.name) : undefined]);
  if (!host) throw new Error(`${h.name} vanished while being set up`);
  return { host, ...(vxlan ? { vxlan } : {}) };
}

/** The host's underlay device (l3 mode attaches bpf_netdev to its ingress); it must exist. */
export async function underlayLink(name: string): Promise<LinkInfo> {
  const link = await getLink(name);
  if (!link) throw new Error(`the underlay interface ${name} does not exist in the agent's namespace`);
  return link;
}

/** Removes what ensureDevices made (for `bpfnet agent --teardown` and tests). */
export async function removeDevices(): Promise<void> {
  for (const dev of [VXLAN_DEVICE, HOST_DEVICE]) await tryIp("link", "del", dev);
}
