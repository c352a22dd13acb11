// The agent's view of the network in etcd and the desired datapath state computed from it.
// Pure: records in, desired map contents out; the reconcilers do the I/O.
import { parseCidr, parseIpv4, overlaps } from "../../provider/ipam/cidr";
import { HostRecord, hostFromKey, nodesDir, parseHostRecord, SCHEMA_VERSION } from "../../provider/etcd/keys";
import type { WatchBatch } from "./watch";

/** Value of <prefix>/state/nodes/v1/<host>, bound to the agent's lease. */
export interface NodeRecord {
  schema: number;
  host: string;
  underlayIp: string;
  podCidr: string;
  agentVersion: string;
  /** Random per agent process: tells restarts apart. */
  incarnation: string;
  startedAt: string;
  /** The host's health endpoint (node-agent/health), once it runs: what peers probe. */
  healthIp?: string;
}

export function parseNodeRecord(text: string | undefined): NodeRecord | undefined {
  if (text === undefined) return undefined;
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!v || typeof v !== "object" || v.schema !== SCHEMA_VERSION) return undefined;
  if (typeof v.host !== "string" || typeof v.underlayIp !== "string" || parseIpv4(v.underlayIp) === undefined) return undefined;
  return {
    schema: v.schema,
    host: v.host,
    underlayIp: v.underlayIp,
    podCidr: typeof v.podCidr === "string" ? v.podCidr : "",
    agentVersion: String(v.agentVersion ?? ""),
    incarnation: String(v.incarnation ?? ""),
    startedAt: String(v.startedAt ?? ""),
    ...(typeof v.healthIp === "string" && parseIpv4(v.healthIp) !== undefined ? { healthIp: v.healthIp } : {}),
  };
}

/**
 * Pure: why the node record `existing` must not be overwritten by the agent (`incarnation`,
 * started at `startedAt`), or undefined when it may be. Only a record of another incarnation
 * that started later wins: a restart overwrites its predecessor's key, a host coming back from
 * a freeze or a partition never overwrites its replacement's.
 */
export function newerAgent(existing: string, incarnation: string, startedAt: Date): string | undefined {
  const rec = parseNodeRecord(existing);
  if (!rec || rec.incarnation === incarnation) return undefined;
  const theirs = Date.parse(rec.startedAt);
  if (!(theirs > startedAt.getTime())) return undefined;
  return `agent ${rec.incarnation} (version ${rec.agentVersion}, started ${rec.startedAt}, underlay ${rec.underlayIp}) started after this one (${startedAt.toISOString()})`;
}

/** Inverse of keys.nodeKey. */
export function nodeHostFromKey(prefix: string, key: string): string | undefined {
  const dir = nodesDir(prefix);
  const host = key.startsWith(dir) ? key.slice(dir.length) : "";
  return host && !host.includes("/") ? host : undefined;
}

/** Another host the datapath can reach: its pod CIDR (from IPAM) behind its underlay IP (from its agent). */
export interface Peer {
  host: string;
  podCidr: string;
  underlayIp: string;
}

export interface PeerComputation {
  peers: Peer[];
  /** Records that were skipped, with why (logged, shown in status). */
  problems: string[];
}

/**
 * Peers are hosts with both a live registration and an allocation. The allocation is the
 * authority for the CIDR (the node record's podCidr is informational); the registration for
 * the underlay address and for liveness.
 */
export function computePeers(self: string, ownPodCidr: string | undefined, nodes: ReadonlyMap<string, NodeRecord | undefined>, allocs: ReadonlyMap<string, HostRecord | undefined>): PeerComputation {
  const problems: string[] = [];
  const candidates: Peer[] = [];
  const own = ownPodCidr ? parseCidr(ownPodCidr) : undefined;
  for (const host of [...nodes.keys()].sort()) {
    if (host === self) continue;
    const node = nodes.get(host);
    const alloc = allocs.get(host);
    if (!node) {
      problems.push(`node record of ${host} is unreadable`);
      continue;
    }
    if (node.host !== host) {
      problems.push(`node record at ${host} names host ${node.host}`);
      continue;
    }
    if (!alloc) {
      if (allocs.has(host)) problems.push(`allocation of ${host} is unreadable`);
      continue; // registered before its allocation landed, or released: not routable
    }
    const cidr = parseCidr(alloc.cidr);
    if (!cidr) {
      problems.push(`allocation of ${host} holds a bad CIDR ${JSON.stringify(alloc.cidr)}`);
      continue;
    }
    if (own && overlaps(own, cidr)) {
      problems.push(`allocation of ${host} (${alloc.cidr}) overlaps this host's ${ownPodCidr}`);
      continue;
    }
    candidates.push({ host, podCidr: alloc.cidr, underlayIp: node.underlayIp });
  }
  // IPAM never gives one CIDR to two hosts; if a hand edit does, one deterministic winner.
  const byCidr = new Map<string, Peer>();
  for (const p of candidates) {
    const seen = byCidr.get(p.podCidr);
    if (seen) problems.push(`${p.host} and ${seen.host} both claim ${p.podCidr}; using ${seen.host}`);
    else byCidr.set(p.podCidr, p);
  }
  return { peers: [...byCidr.values()], problems };
}

/** The tunnel map's desired contents: other hosts' pod CIDRs → their underlay IPs (vxlan mode only). */
export function desiredTunnels(mode: "vxlan" | "l3", peers: readonly Peer[]): Map<string, string> {
  const out = new Map<string, string>();
  if (mode !== "vxlan") return out;
  for (const p of peers) out.set(p.podCidr, p.underlayIp);
  return out;
}

/**
 * The peer map's desired contents (vxlan mode only): the underlay addresses of the peers, the
 * only outer sources bpf_overlay accepts. A host leaves it with its tunnel route.
 */
export function desiredPeers(mode: "vxlan" | "l3", peers: readonly Peer[]): Set<string> {
  return new Set(desiredTunnels(mode, peers).values());
}

/**
 * The etcd view of the nodes and allocations, fed by the two prefix watches. `synced` turns
 * true once both were listed: before that the view is partial and must not prune anything.
 */
export class NetworkView {
  readonly nodes = new Map<string, NodeRecord | undefined>();
  readonly allocs = new Map<string, HostRecord | undefined>();
  nodesSynced = false;
  allocsSynced = false;

  constructor(readonly prefix: string) {}

  get synced(): boolean {
    return this.nodesSynced && this.allocsSynced;
  }

  applyNodes(batch: WatchBatch): void {
    for (const ev of batch.events) {
      const host = nodeHostFromKey(this.prefix, ev.key);
      if (!host) continue;
      if (ev.type === "delete") this.nodes.delete(host);
      else this.nodes.set(host, parseNodeRecord(ev.value));
    }
    if (batch.relist) this.nodesSynced = true;
  }

  applyAllocs(batch: WatchBatch): void {
    for (const ev of batch.events) {
      const host = hostFromKey(this.prefix, ev.key);
      if (!host || host.includes("/")) continue;
      if (ev.type === "delete") this.allocs.delete(host);
      else this.allocs.set(host, parseHostRecord(ev.value));
    }
    if (batch.relist) this.allocsSynced = true;
  }
}
