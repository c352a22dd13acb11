// What this host's service maps should hold, pure: from the services in etcd, every host's
// endpoint records (address, labels) and this host's view of its peers' health, the frontends
// with their backends in slot order, the reverse-NAT entries and the Maglev tables; backend ids
// assigned stably (an id in use keeps its backend, new backends take the lowest free id); and
// which backends and reverse-NAT entries that left may go (only once no tracked flow uses them,
// or after a grace period). The I/O sink (sink.ts) writes the result in the datapath's order.
import { LbBackendFlags, LbProto, LbServiceFlags, MAGLEV_M } from "../../bpf/abi";
import type { LbBackend, LbRevNat, LbServiceKey } from "../../bpf/abi";
import type { StoredService } from "../../provider/services/serviceSpec";
import { maglevTable } from "./maglev";

/** An endpoint of any host, as its etcd record states it. */
export interface ServiceEndpoint {
  host: string;
  ip: string;
  labels: Record<string, string>;
}

/** A backend's identity on every host: address, port, protocol. */
export interface BackendRef {
  addr: string;
  port: number;
  proto: number;
}

/** One frontend (VIP, port, protocol) as the maps should hold it. */
export interface DesiredFrontend {
  key: LbServiceKey;
  service: string;
  revNatIndex: number;
  flags: number;
  affinityTimeoutS: number;
  /** Its backends, sorted by name, with their hosts (for `bpfnet service list`). */
  backends: (BackendRef & { host: string; name: string })[];
  /** Backends left out because this host sees their host's health path down. */
  skipped: (BackendRef & { host: string; name: string })[];
  /** Maglev: for each of the M positions, the backend's name (empty without backends or Maglev). */
  maglev: string[];
}

export const PROTO_NUMBER = { TCP: LbProto.TCP, UDP: LbProto.UDP } as const;

/** The name a backend goes by on every host (Maglev hashes it): "10.1.2.3:8080/6". */
export function backendName(b: BackendRef): string {
  return `${b.addr}:${b.port}/${b.proto}`;
}

export function frontendName(k: LbServiceKey): string {
  return `${k.vip}:${k.port}/${k.proto}`;
}

const matches = (selector: Record<string, string>, labels: Record<string, string>) => Object.entries(selector).every(([k, v]) => labels[k] === v);

/**
 * Frontends computed before, per service name: reused while the service record (the same
 * object: the inputs replace it on every change) and the endpoints with their hosts' health are
 * unchanged, so a change to one of 10,000 services recomputes one.
 */
export type FrontendCache = Map<string, { service: StoredService; endpoints: string; frontends: DesiredFrontend[] }>;

/**
 * The frontends of every service. `hostDown(host)` says this host sees `host`'s health path
 * down: its backends take no new flows, unless that would leave the frontend without any
 * (then every backend stays: a wrong health view must not black-hole a service).
 */
export function desiredFrontends(
  services: readonly StoredService[],
  endpoints: readonly ServiceEndpoint[],
  hostDown: (host: string) => boolean = () => false,
  cache: FrontendCache = new Map(),
): DesiredFrontend[] {
  const down = new Map<string, boolean>();
  const isDown = (h: string) => down.get(h) ?? (down.set(h, hostDown(h)), down.get(h)!);
  const endpointsKey = endpoints.map((e) => `${e.host} ${e.ip} ${JSON.stringify(e.labels)} ${isDown(e.host)}`).join("\n");
  const out: DesiredFrontend[] = [];
  const names = new Set<string>();
  for (const s of [...services].sort((a, b) => (a.serviceName < b.serviceName ? -1 : 1))) {
    names.add(s.serviceName);
    const hit = cache.get(s.serviceName);
    if (hit && hit.service === s && hit.endpoints === endpointsKey) {
      out.push(...hit.frontends);
      continue;
    }
    const frontends = serviceFrontends(s, endpoints, isDown);
    cache.set(s.serviceName, { service: s, endpoints: endpointsKey, frontends });
    out.push(...frontends);
  }
  for (const name of cache.keys()) if (!names.has(name)) cache.delete(name);
  return out;
}

function serviceFrontends(s: StoredService, endpoints: readonly ServiceEndpoint[], hostDown: (host: string) => boolean): DesiredFrontend[] {
  const selected = endpoints.filter((e) => matches(s.selector, e.labels));
  return s.frontend.ports.map((p) => {
    const proto = PROTO_NUMBER[p.protocol];
    const all = selected
      .map((e) => {
        const ref = { addr: e.ip, port: p.targetPort, proto };
        return { ...ref, host: e.host, name: backendName(ref) };
      })
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      .filter((b, i, arr) => i === 0 || arr[i - 1].name !== b.name);
    const up = all.filter((b) => !hostDown(b.host));
    const backends = up.length > 0 ? up : all;
    return {
      key: { vip: s.frontend.ip, port: p.port, proto },
      service: s.serviceName,
      revNatIndex: p.revNatIndex,
      flags: (s.sessionAffinity === "clientIP" ? LbServiceFlags.AFFINITY : 0) | (s.algorithm === "maglev" ? LbServiceFlags.MAGLEV : 0),
      affinityTimeoutS: s.sessionAffinity === "clientIP" ? s.sessionAffinityTimeoutSeconds : 0,
      backends,
      skipped: all.filter((b) => !backends.includes(b)),
      maglev: s.algorithm === "maglev" ? maglevTable(backends.map((b) => b.name), MAGLEV_M) : [],
    };
  });
}

/**
 * Backend ids: names that hold an id keep it (read back from the map after a restart); new
 * names take the lowest free ids ≥ 1. Ids of names no longer wanted stay reserved while they
 * drain (`reserved`), so a new backend never inherits a flow's pinned id.
 */
export function assignBackendIds(wanted: readonly string[], existing: ReadonlyMap<number, string>, reserved: Iterable<number> = []): Map<string, number> {
  const byName = new Map<string, number>();
  for (const [id, name] of existing) if (!byName.has(name)) byName.set(name, id);
  const used = new Set<number>([...existing.keys(), ...reserved]);
  const out = new Map<string, number>();
  let next = 1;
  for (const name of [...new Set(wanted)].sort()) {
    const have = byName.get(name);
    if (have !== undefined) {
      out.set(name, have);
      continue;
    }
    while (used.has(next)) next++;
    used.add(next);
    out.set(name, next);
  }
  return out;
}

/** The maps' full target: rows, backends (active and draining), reverse-NAT entries, Maglev tables. */
export interface MapTarget {
  services: Map<string, { key: LbServiceKey; revNatIndex: number; backendIds: number[]; flags: number; affinityTimeoutS: number }>;
  backends: Map<number, LbBackend>;
  revNat: Map<number, LbRevNat>;
  maglev: Map<number, number[]>;
}

/** Backend ids and reverse-NAT numbers that tracked flows use. */
export interface InUse {
  backends: ReadonlySet<number>;
  revNat: ReadonlySet<number>;
}

/** Things that left the desired state and wait for their flows to end: id → since (ms). */
export interface Draining {
  backends: Map<number, number>;
  revNat: Map<number, number>;
}

/**
 * The target of the maps given the desired frontends, what the backend map holds now (id →
 * backend), what is draining, which backend ids and reverse-NAT numbers live flows still use
 * (from CT; asked only when something left: reading CT is the costly part of a pass), the time
 * and the grace period. A backend that left is kept TERMINATING (no new
 * flows, pinned ones continue) until no flow uses it or the grace period ends; a reverse-NAT
 * entry likewise (replies of live flows need it).
 */
export function planMaps(
  frontends: readonly DesiredFrontend[],
  current: ReadonlyMap<number, LbBackend>,
  draining: Draining,
  inUse: InUse | (() => InUse),
  currentRevNat: ReadonlyMap<number, LbRevNat>,
  nowMs: number,
  graceMs: number,
): { target: MapTarget; draining: Draining } {
  const names = new Map<number, string>([...current].map(([id, b]) => [id, backendName(b)]));
  const wanted = frontends.flatMap((f) => f.backends.map((b) => b.name));
  const refs = new Map(frontends.flatMap((f) => f.backends.map((b) => [b.name, { addr: b.addr, port: b.port, proto: b.proto }] as const)));
  const ids = assignBackendIds(wanted, names, draining.backends.keys());
  const target: MapTarget = { services: new Map(), backends: new Map(), revNat: new Map(), maglev: new Map() };
  for (const [name, id] of ids) target.backends.set(id, { ...refs.get(name)!, flags: 0 });
  for (const f of frontends) {
    target.services.set(frontendName(f.key), {
      key: f.key,
      revNatIndex: f.revNatIndex,
      backendIds: f.backends.map((b) => ids.get(b.name)!),
      flags: f.flags,
      affinityTimeoutS: f.affinityTimeoutS,
    });
    target.revNat.set(f.revNatIndex, { vip: f.key.vip, port: f.key.port });
    if (f.maglev.length) target.maglev.set(f.revNatIndex, f.maglev.map((n) => ids.get(n)!));
  }
  const next: Draining = { backends: new Map(), revNat: new Map() };
  const wantedIds = new Set(target.backends.keys());
  let used: InUse | undefined;
  const flows = () => (used ??= typeof inUse === "function" ? inUse() : inUse);
  for (const [id, b] of current) {
    if (wantedIds.has(id)) continue;
    const since = draining.backends.get(id) ?? nowMs;
    if (flows().backends.has(id) && nowMs - since < graceMs) {
      target.backends.set(id, { ...b, flags: (b.flags ?? 0) | LbBackendFlags.TERMINATING });
      next.backends.set(id, since);
    }
  }
  for (const [n, r] of currentRevNat) {
    if (target.revNat.has(n)) continue;
    const since = draining.revNat.get(n) ?? nowMs;
    if (flows().revNat.has(n) && nowMs - since < graceMs) {
      target.revNat.set(n, r);
      next.revNat.set(n, since);
    }
  }
  return { target, draining: next };
}
