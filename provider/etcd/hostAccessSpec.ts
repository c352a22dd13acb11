// Least privilege in etcd (docs/security.md): what one host's agent may do in its network's
// keys, as etcd users and roles. Pure: names and key ranges only; EtcdHostAccess applies them.
//
// A host's agent reads the whole network (it needs the config, every allocation, registration
// and endpoint) and writes only its own keys. The identity allocator's keys are shared by design:
// every agent allocates identities for the label sets of its endpoints (see docs/etcd-layout.md).
import { rangeEnd } from "./etcdOps";
import { endpointsDir, healthDir, identitiesDir, nameProblem, networkRange, nodeKey, prefixProblem } from "./keys";

export type Permission = "read" | "write" | "readwrite";

/** One grant: a single key, or every key starting with `prefix`. */
export type KeyGrant = { permission: Permission; key: string; prefix?: false; why: string } | { permission: Permission; prefix: true; key: string; why: string };

/** etcd's names for a grant's permission (authpb.Permission.Type). */
export const ETCD_PERMISSION: Record<Permission, "Read" | "Write" | "Readwrite"> = { read: "Read", write: "Write", readwrite: "Readwrite" };

/**
 * The etcd role of one host in one network: one role per host, so revoking one host touches
 * nothing else. ":" occurs in neither a prefix nor a host name, so distinct (prefix, host) pairs
 * never share a name.
 */
export function hostRoleName(prefix: string, host: string): string {
  return `bpfnet-host:${prefix}:${host}`;
}

/**
 * The etcd user of one generation of a host's credentials; also its certificate's CN. Each
 * rotation makes a new user and deletes the previous one: etcd cannot revoke a certificate, but
 * a certificate whose user is gone opens nothing.
 */
export function hostUserName(prefix: string, host: string, generation: number): string {
  return `${hostRoleName(prefix, host)}:${generation}`;
}

/** What a host's role grants, in a stable order. */
export function hostGrants(prefix: string, host: string): KeyGrant[] {
  return [
    { permission: "read", prefix: true, key: networkRange(prefix), why: "the network: config, allocations, registrations, endpoints, identities, policies" },
    { permission: "readwrite", key: nodeKey(prefix, host), why: "its registration (bound to its lease)" },
    { permission: "readwrite", prefix: true, key: endpointsDir(prefix, host), why: "its endpoints" },
    { permission: "readwrite", prefix: true, key: healthDir(prefix, host), why: "its health results about its peers" },
    { permission: "readwrite", prefix: true, key: identitiesDir(prefix), why: "security identities: shared by every host's allocator by design" },
  ];
}

/** A grant as etcd stores it: [key, rangeEnd) with rangeEnd empty for one key. */
export interface EtcdRange {
  permType: "Read" | "Write" | "Readwrite";
  key: string;
  rangeEnd: string;
}

export function toEtcdRange(g: KeyGrant): EtcdRange {
  return { permType: ETCD_PERMISSION[g.permission], key: g.key, rangeEnd: g.prefix ? rangeEnd(g.key).toString("latin1") : "" };
}

const rangeId = (r: EtcdRange) => `${r.permType} ${JSON.stringify(r.key)} ${JSON.stringify(r.rangeEnd)}`;

/** What to grant and what to revoke so a role holds exactly `want` (a role edited by hand is repaired). */
export function grantDifference(want: EtcdRange[], have: EtcdRange[]): { grant: EtcdRange[]; revoke: EtcdRange[] } {
  const wanted = new Set(want.map(rangeId));
  const held = new Set(have.map(rangeId));
  return { grant: want.filter((r) => !held.has(rangeId(r))), revoke: have.filter((r) => !wanted.has(rangeId(r))) };
}

/** Problems with the names that make a host's user, each naming the field and value. */
export function hostAccessProblems(prefix: unknown, host: unknown): { property: string; reason: string }[] {
  const out: { property: string; reason: string }[] = [];
  const p = prefixProblem("networkPrefix", prefix);
  if (p) out.push({ property: "networkPrefix", reason: p });
  const h = nameProblem("hostName", host);
  if (h) out.push({ property: "hostName", reason: h });
  return out;
}
