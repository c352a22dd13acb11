// The etcd key layout of one network (see docs/etcd-layout.md). Pure: names only, no I/O.
//
// Every key of a network lives under "<prefix>/". Range reads always end the prefix with
// "/", so "/bpfnet/a" never sees "/bpfnet/ab/…". Each subtree carries its own version so a
// layout change can be rolled out beside the old one.

/** Schema version written into the JSON records; readers refuse versions they do not know. */
export const SCHEMA_VERSION = 1;

const PREFIX_SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const NAME = /^[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$/;

/** Network names become one key segment: letters, digits, ".", "_", "-". */
export function nameProblem(field: string, value: unknown): string | undefined {
  if (typeof value !== "string" || !NAME.test(value)) {
    return `${field} must be 1-253 characters of letters, digits, ".", "_" or "-", starting and ending with a letter or digit, got ${JSON.stringify(value)}`;
  }
  return undefined;
}

/** A prefix is absolute, has no trailing "/", and no empty or dot segments. */
export function prefixProblem(field: string, value: unknown): string | undefined {
  const bad = `${field} must be an absolute etcd key prefix like "/bpfnet/dev" (segments of letters, digits, ".", "_", "-"; no trailing "/"), got ${JSON.stringify(value)}`;
  if (typeof value !== "string" || !value.startsWith("/") || value.length > 512) return bad;
  const segments = value.slice(1).split("/");
  return segments.every((s) => PREFIX_SEGMENT.test(s) && s !== "." && s !== "..") ? undefined : bad;
}

/** The default prefix of a network. */
export function defaultPrefix(networkName: string): string {
  return `/bpfnet/${networkName}`;
}

/** All keys of the network: the range read/delete key for "everything of this network". */
export function networkRange(prefix: string): string {
  return `${prefix}/`;
}

export function configKey(prefix: string): string {
  return `${prefix}/config`;
}

export function ipamHostsDir(prefix: string): string {
  return `${prefix}/ipam/v1/hosts/`;
}

export function ipamCidrsDir(prefix: string): string {
  return `${prefix}/ipam/v1/cidrs/`;
}

export function hostKey(prefix: string, host: string): string {
  return `${ipamHostsDir(prefix)}${host}`;
}

/** "10.0.1.0/24" is stored as "10.0.1.0_24": "/" would make a key look like a directory. */
export function cidrSegment(cidr: string): string {
  return cidr.replace("/", "_");
}

export function cidrKey(prefix: string, cidr: string): string {
  return `${ipamCidrsDir(prefix)}${cidrSegment(cidr)}`;
}

/** Inverse of cidrKey; undefined for keys outside this network's cidrs directory. */
export function cidrFromKey(prefix: string, key: string): string | undefined {
  const dir = ipamCidrsDir(prefix);
  if (!key.startsWith(dir)) return undefined;
  const seg = key.slice(dir.length);
  return /^[0-9.]+_[0-9]+$/.test(seg) ? seg.replace("_", "/") : undefined;
}

/** Inverse of hostKey. */
export function hostFromKey(prefix: string, key: string): string | undefined {
  const dir = ipamHostsDir(prefix);
  return key.startsWith(dir) && key.length > dir.length ? key.slice(dir.length) : undefined;
}

/** Agent registrations, bound to the agent's lease (written by the node agent). */
export function nodesDir(prefix: string): string {
  return `${prefix}/state/nodes/v1/`;
}

export function nodeKey(prefix: string, host: string): string {
  return `${nodesDir(prefix)}${host}`;
}

/** Endpoints (pods) of one host, written by that host's agent. */
export function endpointsDir(prefix: string, host?: string): string {
  return host === undefined ? `${prefix}/state/endpoints/v1/` : `${prefix}/state/endpoints/v1/${host}/`;
}

export function endpointKey(prefix: string, host: string, id: string): string {
  return `${endpointsDir(prefix, host)}${id}`;
}

/** Security identities: label set → numeric identity, shared by every host (policy). */
export function identitiesDir(prefix: string): string {
  return `${prefix}/identities/v1/`;
}

/** <identities>/id/<n> → the label set of identity n (created once, guarded by create_revision 0). */
export function identityIdKey(prefix: string, id: number): string {
  return `${identitiesDir(prefix)}id/${id}`;
}

/** <identities>/value/<labels>/ → one key per host using the label set, bound to its agent's lease. */
export function identityUsersDir(prefix: string, labelsSegment: string): string {
  return `${identitiesDir(prefix)}value/${labelsSegment}/`;
}

export function identityUserKey(prefix: string, labelsSegment: string, host: string): string {
  return `${identityUsersDir(prefix, labelsSegment)}${host}`;
}

/** Network policies (NetworkPolicy resources), one key per policy. */
export function policiesDir(prefix: string): string {
  return `${prefix}/policies/v1/`;
}

/** Services (Service resources) and their allocated virtual IPs. */
export function servicesDir(prefix: string): string {
  return `${prefix}/services/v1/`;
}

/** <services>/specs/<name> → a Service's record (frontend, ports with their rev-NAT numbers, selector). */
export function serviceSpecsDir(prefix: string): string {
  return `${servicesDir(prefix)}specs/`;
}

export function serviceSpecKey(prefix: string, name: string): string {
  return `${serviceSpecsDir(prefix)}${name}`;
}

/** <services>/vips/<a.b.c.d>/<PROTO>-<port> → which service holds the frontend (one holder each; services may share a VIP on other ports). */
export function serviceVipsDir(prefix: string): string {
  return `${servicesDir(prefix)}vips/`;
}

export function serviceVipKey(prefix: string, ip: string, protocol: string, port: number): string {
  return `${serviceVipsDir(prefix)}${ip}/${protocol}-${port}`;
}

/** <services>/revnat/<n> → which service port holds reverse-NAT number n (1-65535, cluster-wide). */
export function serviceRevNatDir(prefix: string): string {
  return `${servicesDir(prefix)}revnat/`;
}

export function serviceRevNatKey(prefix: string, n: number): string {
  return `${serviceRevNatDir(prefix)}${n}`;
}

/** Health results a host's agent publishes about its peers, one subtree per host. */
export function healthDir(prefix: string, host?: string): string {
  return host === undefined ? `${prefix}/state/health/v1/` : `${prefix}/state/health/v1/${host}/`;
}

/** Records of hosts removed while unreachable (written with the admin identity, docs/reliability.md scenario 7). */
export function removedHostsDir(prefix: string): string {
  return `${prefix}/state/removed/v1/`;
}

export function removedHostKey(prefix: string, host: string): string {
  return `${removedHostsDir(prefix)}${host}`;
}

/** True when `key` belongs to the network at `prefix` (segment boundary respected). */
export function belongsTo(prefix: string, key: string): boolean {
  return key.startsWith(networkRange(prefix));
}

/** Record at <prefix>/ipam/v1/hosts/<host>. */
export interface HostRecord {
  schema: number;
  host: string;
  cidr: string;
  allocationId: string;
  createdAt: string;
}

/** Record at <prefix>/ipam/v1/cidrs/<cidr>: who owns the block. */
export interface CidrRecord {
  schema: number;
  host: string;
  allocationId: string;
  createdAt: string;
}

/** Parses a record, refusing anything that is not ours or of an unknown schema. */
export function parseHostRecord(text: string | undefined): HostRecord | undefined {
  const r = parseJson(text);
  return r && r.schema === SCHEMA_VERSION && typeof r.host === "string" && typeof r.cidr === "string" && typeof r.allocationId === "string"
    ? { schema: r.schema, host: r.host, cidr: r.cidr, allocationId: r.allocationId, createdAt: String(r.createdAt ?? "") }
    : undefined;
}

export function parseCidrRecord(text: string | undefined): CidrRecord | undefined {
  const r = parseJson(text);
  return r && r.schema === SCHEMA_VERSION && typeof r.host === "string" && typeof r.allocationId === "string"
    ? { schema: r.schema, host: r.host, allocationId: r.allocationId, createdAt: String(r.createdAt ?? "") }
    : undefined;
}

function parseJson(text: string | undefined): Record<string, unknown> | undefined {
  if (text === undefined) return undefined;
  try {
    const v = JSON.parse(text);
    return v && typeof v === "object" && !Array.isArray(v) ? v : undefined;
  } catch {
    return undefined;
  }
}
