// Validation and defaults of a ContainerNetwork spec. Pure: runs in `check`, before anything is
// written, so every message names the field and the value the user gave.
import {
  Cidr,
  containsAddress,
  formatCidr,
  overlaps,
  parseCidrLoose,
  parseIpv4,
  subnetCount,
} from "../ipam/cidr";
import { defaultPrefix, nameProblem, prefixProblem, SCHEMA_VERSION } from "../etcd/keys";
import { isUnknown } from "../common/unknown";

/** How pods on different hosts reach each other: "vxlan" (a tunnel between hosts) or "l3" (routed by the underlay). */
export type NetworkMode = "vxlan" | "l3";

/** Outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14) headers. */
export const VXLAN_OVERHEAD = 50;
export const DEFAULT_VNI = 42;
/** The Linux default VXLAN port (IANA's is 4789); Cilium and flannel use 8472 too. */
export const DEFAULT_VXLAN_PORT = 8472;
export const DEFAULT_UNDERLAY_MTU = 1500;
export const DEFAULT_HOST_PREFIX_LENGTH = 24;
/** Every IPv4 host must accept 576-byte datagrams (RFC 791); below that pods break. */
export const MIN_MTU = 576;
export const MAX_UNDERLAY_MTU = 9216;
export const MAX_VNI = 16777215;
/** A /30 is the smallest subnet with a network, a gateway, one pod and a broadcast address. */
export const MAX_HOST_PREFIX_LENGTH = 30;
export const MIN_HOST_SUBNETS = 4;

/** The spec fields as the user passes them (any may be the preview's unknown sentinel). */
export interface NetworkSpecInputs {
  prefix?: string;
  networkName?: string;
  mode?: string;
  clusterCidr?: string;
  hostPrefixLength?: number;
  vni?: number;
  vxlanPort?: number;
  mtu?: number;
  underlayMtu?: number;
  serviceCidr?: string;
  underlayCidrs?: string[];
  hostAddresses?: string[];
}

/** The normalized spec, as written to <prefix>/config (plus `schema` and `networkId`). */
export interface NetworkSpec {
  prefix: string;
  mode: NetworkMode;
  clusterCidr: string;
  hostPrefixLength: number;
  vni: number;
  vxlanPort: number;
  mtu: number;
  underlayMtu: number;
  serviceCidr?: string;
  underlayCidrs: string[];
  hostAddresses: string[];
}

export interface Failure {
  property: string;
  reason: string;
}

const show = (v: unknown) => JSON.stringify(v);
const known = (v: unknown) => v !== undefined && v !== null && !isUnknown(v);

/** Resolves the key prefix from `prefix` or `networkName`; unknown while either is unknown. */
export function resolvePrefix(raw: { prefix?: unknown; networkName?: unknown }, failures: Failure[]): string | undefined {
  if (isUnknown(raw.prefix) || (raw.prefix === undefined && isUnknown(raw.networkName))) return undefined;
  if (raw.prefix !== undefined && raw.prefix !== null) {
    const p = prefixProblem("prefix", raw.prefix);
    if (p) failures.push({ property: "prefix", reason: p });
    // A name given beside the prefix is still stored and shown: it must be a name too.
    const n = raw.networkName === undefined || raw.networkName === null || isUnknown(raw.networkName) ? undefined : nameProblem("networkName", raw.networkName);
    if (n) failures.push({ property: "networkName", reason: n });
    return p ? undefined : (raw.prefix as string);
  }
  if (raw.networkName === undefined || raw.networkName === null) {
    failures.push({ property: "networkName", reason: "networkName or prefix is required" });
    return undefined;
  }
  const p = nameProblem("networkName", raw.networkName);
  if (p) failures.push({ property: "networkName", reason: p });
  return p ? undefined : defaultPrefix(raw.networkName as string);
}

/** Parses a CIDR field strictly (well-formed and aligned), recording a failure naming it. */
export function checkCidr(field: string, property: string, value: unknown, failures: Failure[]): Cidr | undefined {
  const c = typeof value === "string" ? parseCidrLoose(value) : undefined;
  if (!c) {
    failures.push({ property, reason: `${field} must be an IPv4 CIDR like "10.0.0.0/16", got ${show(value)}` });
    return undefined;
  }
  if (c.hostBitsSet) {
    const fixed = formatCidr(c);
    failures.push({ property, reason: `${field} ${show(value)} is not aligned: host bits are set past /${c.prefix} (did you mean "${fixed}"?)` });
    return undefined;
  }
  return { base: c.base, prefix: c.prefix };
}

function checkInt(field: string, value: unknown, min: number, max: number, failures: Failure[]): number | undefined {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    failures.push({ property: field, reason: `${field} must be an integer in ${min}-${max}, got ${show(value)}` });
    return undefined;
  }
  return value;
}

/** Checks that a pool can be cut into at least MIN_HOST_SUBNETS host subnets. */
export function checkPool(pool: Cidr | undefined, poolText: unknown, hostPrefixLength: unknown, failures: Failure[]): number | undefined {
  if (!known(hostPrefixLength)) return undefined;
  const h = hostPrefixLength;
  if (typeof h !== "number" || !Number.isInteger(h) || h < 1 || h > 32) {
    failures.push({ property: "hostPrefixLength", reason: `hostPrefixLength must be an integer prefix length, got ${show(h)}` });
    return undefined;
  }
  if (h > MAX_HOST_PREFIX_LENGTH) {
    failures.push({
      property: "hostPrefixLength",
      reason: `hostPrefixLength ${h} is longer than /${MAX_HOST_PREFIX_LENGTH}: a host subnet needs a network, a gateway, a pod and a broadcast address`,
    });
    return undefined;
  }
  if (!pool) return h;
  if (h <= pool.prefix) {
    failures.push({
      property: "hostPrefixLength",
      reason: `hostPrefixLength ${h} must be longer than the clusterCidr ${show(poolText)} prefix /${pool.prefix}`,
    });
    return undefined;
  }
  const n = subnetCount(pool, h);
  if (n < MIN_HOST_SUBNETS) {
    failures.push({
      property: "hostPrefixLength",
      reason: `hostPrefixLength ${h} leaves ${n} host subnets in clusterCidr ${show(poolText)}; at least ${MIN_HOST_SUBNETS} are required`,
    });
    return undefined;
  }
  return h;
}

/**
 * Validates raw inputs and fills defaults. `spec` is complete only when `failures` is empty
 * and nothing was unknown; `inputs` is the raw bag with defaults filled where they are known.
 */
export function checkNetworkSpec(raw: NetworkSpecInputs): { spec?: NetworkSpec; inputs: Record<string, unknown>; failures: Failure[] } {
  const failures: Failure[] = [];
  const inputs: Record<string, unknown> = { ...raw };
  let complete = true;
  const need = (v: unknown) => {
    if (isUnknown(v)) complete = false;
    return known(v);
  };

  const prefix = resolvePrefix(raw, failures);
  if (prefix !== undefined) inputs.prefix = prefix;
  else complete = false;

  let mode: NetworkMode | undefined;
  if (raw.mode === undefined || raw.mode === null) failures.push({ property: "mode", reason: `mode is required: "vxlan" or "l3"` });
  else if (need(raw.mode)) {
    if (raw.mode === "vxlan" || raw.mode === "l3") mode = raw.mode;
    else failures.push({ property: "mode", reason: `mode must be "vxlan" or "l3", got ${show(raw.mode)}` });
  }

  let pool: Cidr | undefined;
  if (raw.clusterCidr === undefined || raw.clusterCidr === null) failures.push({ property: "clusterCidr", reason: `clusterCidr is required, e.g. "10.244.0.0/16"` });
  else if (need(raw.clusterCidr)) pool = checkCidr("clusterCidr", "clusterCidr", raw.clusterCidr, failures);

  const hostPrefixRaw = raw.hostPrefixLength ?? DEFAULT_HOST_PREFIX_LENGTH;
  inputs.hostPrefixLength = hostPrefixRaw;
  need(hostPrefixRaw);
  const hostPrefixLength = checkPool(pool, raw.clusterCidr, hostPrefixRaw, failures);

  const vniRaw = raw.vni ?? DEFAULT_VNI;
  inputs.vni = vniRaw;
  const vni = need(vniRaw) ? checkInt("vni", vniRaw, 1, MAX_VNI, failures) : undefined;

  const portRaw = raw.vxlanPort ?? DEFAULT_VXLAN_PORT;
  inputs.vxlanPort = portRaw;
  const vxlanPort = need(portRaw) ? checkInt("vxlanPort", portRaw, 1, 65535, failures) : undefined;

  const underlayRaw = raw.underlayMtu ?? DEFAULT_UNDERLAY_MTU;
  inputs.underlayMtu = underlayRaw;
  const underlayMtu = need(underlayRaw) ? checkInt("underlayMtu", underlayRaw, MIN_MTU, MAX_UNDERLAY_MTU, failures) : undefined;

  // The pod MTU defaults to what the mode leaves of the underlay MTU.
  let mtu: number | undefined;
  const overhead = mode === "vxlan" ? VXLAN_OVERHEAD : 0;
  if (raw.mtu === undefined || raw.mtu === null) {
    if (mode !== undefined && underlayMtu !== undefined) inputs.mtu = mtu = underlayMtu - overhead;
  } else if (need(raw.mtu)) {
    if (typeof raw.mtu !== "number" || !Number.isInteger(raw.mtu) || raw.mtu < MIN_MTU) {
      failures.push({ property: "mtu", reason: `mtu must be an integer >= ${MIN_MTU}, got ${show(raw.mtu)}` });
    } else if (mode !== undefined && underlayMtu !== undefined && raw.mtu > underlayMtu - overhead) {
      const why = mode === "vxlan" ? `underlayMtu ${underlayMtu} minus ${VXLAN_OVERHEAD} bytes of VXLAN overhead` : `underlayMtu ${underlayMtu}`;
      failures.push({ property: "mtu", reason: `mtu ${raw.mtu} does not fit mode "${mode}": ${why} leaves at most ${underlayMtu - overhead}` });
    } else mtu = raw.mtu;
  }

  let service: Cidr | undefined;
  if (raw.serviceCidr !== undefined && raw.serviceCidr !== null && need(raw.serviceCidr)) {
    service = checkCidr("serviceCidr", "serviceCidr", raw.serviceCidr, failures);
    if (service && pool && overlaps(pool, service)) {
      failures.push({ property: "clusterCidr", reason: `clusterCidr ${show(raw.clusterCidr)} overlaps serviceCidr ${show(raw.serviceCidr)}` });
    }
  }

  const underlayCidrs = checkList("underlayCidrs", raw.underlayCidrs, failures, () => (complete = false), (field, v) => {
    const c = checkCidr(field, "underlayCidrs", v, failures);
    if (c && pool && overlaps(pool, c)) failures.push({ property: "clusterCidr", reason: `clusterCidr ${show(raw.clusterCidr)} overlaps ${field} ${show(v)}` });
    if (c && service && overlaps(service, c)) failures.push({ property: "serviceCidr", reason: `serviceCidr ${show(raw.serviceCidr)} overlaps ${field} ${show(v)}` });
  });
  const hostAddresses = checkList("hostAddresses", raw.hostAddresses, failures, () => (complete = false), (field, v) => {
    const a = typeof v === "string" ? parseIpv4(v) : undefined;
    if (a === undefined) {
      failures.push({ property: "hostAddresses", reason: `${field} must be an IPv4 address like "192.168.1.10", got ${show(v)}` });
      return;
    }
    if (pool && containsAddress(pool, a)) failures.push({ property: "clusterCidr", reason: `clusterCidr ${show(raw.clusterCidr)} contains ${field} ${show(v)}` });
    if (service && containsAddress(service, a)) failures.push({ property: "serviceCidr", reason: `serviceCidr ${show(raw.serviceCidr)} contains ${field} ${show(v)}` });
  });

  if (failures.length > 0 || !complete) return { inputs, failures };
  if (!prefix || !mode || !pool || hostPrefixLength === undefined || vni === undefined || vxlanPort === undefined || mtu === undefined || underlayMtu === undefined) {
    return { inputs, failures };
  }
  const spec: NetworkSpec = {
    prefix,
    mode,
    clusterCidr: formatCidr(pool),
    hostPrefixLength,
    vni,
    vxlanPort,
    mtu,
    underlayMtu,
    ...(service ? { serviceCidr: formatCidr(service) } : {}),
    underlayCidrs: underlayCidrs ?? [],
    hostAddresses: hostAddresses ?? [],
  };
  return { spec, inputs, failures };
}

/** Runs `each` on the known entries of an optional string list; returns the list when fully known. */
function checkList(
  field: string,
  value: unknown,
  failures: Failure[],
  onUnknown: () => void,
  each: (field: string, v: unknown) => void,
): string[] | undefined {
  if (value === undefined || value === null) return [];
  if (isUnknown(value)) {
    onUnknown();
    return undefined;
  }
  if (!Array.isArray(value)) {
    failures.push({ property: field, reason: `${field} must be a list, got ${show(value)}` });
    return undefined;
  }
  let allKnown = true;
  value.forEach((v, i) => {
    if (isUnknown(v)) {
      allKnown = false;
      return;
    }
    each(`${field}[${i}]`, v);
  });
  if (!allKnown) onUnknown();
  return allKnown ? (value as string[]) : undefined;
}

/** The JSON document stored at <prefix>/config. */
export interface StoredConfig extends Omit<NetworkSpec, "prefix"> {
  schema: number;
  networkId: string;
}

export function toStoredConfig(spec: NetworkSpec, networkId: string): StoredConfig {
  const { prefix: _prefix, ...rest } = spec;
  return { schema: SCHEMA_VERSION, networkId, ...rest };
}

/** Parses <prefix>/config; throws with the key named when it is not a config we understand. */
export function parseStoredConfig(key: string, text: string): StoredConfig {
  let v: any;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new Error(`${key} does not hold JSON: ${(e as Error).message}`);
  }
  if (!v || typeof v !== "object" || v.schema !== SCHEMA_VERSION) {
    throw new Error(`${key} holds schema ${show(v?.schema)}, this provider understands schema ${SCHEMA_VERSION}`);
  }
  for (const f of ["networkId", "mode", "clusterCidr"]) {
    if (typeof v[f] !== "string") throw new Error(`${key} lacks the string field ${f}`);
  }
  for (const f of ["hostPrefixLength", "vni", "vxlanPort", "mtu", "underlayMtu"]) {
    if (typeof v[f] !== "number") throw new Error(`${key} lacks the number field ${f}`);
  }
  return {
    schema: v.schema,
    networkId: v.networkId,
    mode: v.mode,
    clusterCidr: v.clusterCidr,
    hostPrefixLength: v.hostPrefixLength,
    vni: v.vni,
    vxlanPort: v.vxlanPort,
    mtu: v.mtu,
    underlayMtu: v.underlayMtu,
    ...(typeof v.serviceCidr === "string" ? { serviceCidr: v.serviceCidr } : {}),
    underlayCidrs: Array.isArray(v.underlayCidrs) ? v.underlayCidrs.map(String) : [],
    hostAddresses: Array.isArray(v.hostAddresses) ? v.hostAddresses.map(String) : [],
  };
}
