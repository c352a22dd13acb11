// Reads and writes a service at <prefix>/services/v1/: its record (specs/<name>), the claim on
// its virtual IP (vips/<ip>) and one claim per port on a cluster-wide reverse-NAT number
// (revnat/<n>). All three change in one transaction that compares every claim it takes as
// absent, so two services never hold the same VIP or number, however many programs run at
// once (the compare-and-swap approach of the IPAM allocator, docs/ipam.md). Every record
// carries the serviceId of the Service that wrote it: only that resource rewrites or deletes it.
import type { Etcd3 } from "etcd3";
import type { ICompare, IRequestOp } from "etcd3";
import { cmp, op, rangeKvs, revisionOf, txn, Kv } from "../etcd/etcdOps";
import { configKey, SCHEMA_VERSION, serviceRevNatDir, serviceRevNatKey, serviceSpecKey, serviceVipKey, serviceVipsDir } from "../etcd/keys";
import { Cidr, containsAddress, formatIpv4, lastAddress, parseCidr, parseIpv4 } from "../ipam/cidr";
import { parseStoredConfig } from "../network/networkSpec";
import { retrying } from "../network/networkStore";
import { MAX_REV_NAT_INDEX, parseStoredService, portKey, ServiceSpec, StoredService } from "./serviceSpec";

/** The record of a VIP or reverse-NAT claim: who holds it. */
interface Claim {
  schema: number;
  serviceName: string;
  serviceId: string;
}

export interface ReadService {
  kv: Kv;
  /** Undefined when the record does not parse or validate (edited by hand): `problems` says why. */
  service?: StoredService;
  problems: string[];
  /** The serviceId in the record, even when the rest does not validate. */
  owner?: string;
}

function ownerOf(text: string): string | undefined {
  try {
    const v = JSON.parse(text);
    return typeof v?.serviceId === "string" ? v.serviceId : undefined;
  } catch {
    return undefined;
  }
}

const final = (message: string) => Object.assign(new Error(message), { outcomeUnknown: false, final: true });

export async function readService(client: Etcd3, prefix: string, serviceName: string): Promise<ReadService | undefined> {
  const kv = rangeKvs(await txn(client, [], [op.get(serviceSpecKey(prefix, serviceName))]), 0)[0];
  if (!kv) return undefined;
  const owner = ownerOf(kv.value);
  return { kv, ...parseStoredService(kv.value), ...(owner !== undefined ? { owner } : {}) };
}

/**
 * The first free address of the service CIDR, skipping its network and broadcast addresses
 * (except in a /31 or /32, which have none). Pure.
 */
export function pickVip(cidr: Cidr, taken: Set<string>): string | undefined {
  const small = cidr.prefix >= 31;
  const first = small ? cidr.base : cidr.base + 1;
  const last = small ? lastAddress(cidr) : lastAddress(cidr) - 1;
  for (let a = first; a <= last; a++) {
    const ip = formatIpv4(a);
    if (!taken.has(ip)) return ip;
  }
  return undefined;
}

/** The `count` lowest reverse-NAT numbers not in `taken` (1-65535). Pure. */
export function pickRevNat(taken: Set<number>, count: number): number[] | undefined {
  const out: number[] = [];
  for (let n = 1; n <= MAX_REV_NAT_INDEX && out.length < count; n++) if (!taken.has(n)) out.push(n);
  return out.length === count ? out : undefined;
}

function claimOf(kv: Kv): Claim | undefined {
  try {
    const v = JSON.parse(kv.value);
    return v && typeof v.serviceId === "string" ? v : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Writes the service: creates it (allocating its VIP when `spec.frontend.ip` is omitted, and a
 * reverse-NAT number per port), or updates the record we own (keeping the VIP and the numbers
 * of ports that stay; a record deleted by hand is re-created). A record of another Service is
 * refused. An identical record is not rewritten, so agents see no event.
 */
export async function writeService(client: Etcd3, prefix: string, spec: ServiceSpec, serviceId: string): Promise<{ service: StoredService; revision: number }> {
  const key = serviceSpecKey(prefix, spec.serviceName);
  const cfgKey = configKey(prefix);
  return retrying(`writing ${key}`, async (write) => {
    const read = await txn(client, [], [op.get(cfgKey), op.get(key), op.list(serviceVipsDir(prefix)), op.list(serviceRevNatDir(prefix))]);
    const cfgKv = rangeKvs(read, 0)[0];
    const current = rangeKvs(read, 1)[0];
    const vips = rangeKvs(read, 2);
    const revNats = rangeKvs(read, 3);
    if (!cfgKv) throw final(`network ${prefix} has no config (${cfgKey}): create the network (ContainerNetwork) before its services`);
    const serviceCidrText = parseStoredConfig(cfgKey, cfgKv.value).serviceCidr;
    const serviceCidr = serviceCidrText !== undefined ? parseCidr(serviceCidrText) : undefined;

    const owner = current ? ownerOf(current.value) : undefined;
    if (owner !== undefined && owner !== serviceId) {
      throw final(`${key} belongs to another Service (serviceId ${owner}, not ${serviceId}): pick another serviceName, or delete that service first`);
    }
    const old = current ? parseStoredService(current.value).service : undefined;
    const ours = (kv: Kv) => claimOf(kv)?.serviceId === serviceId;
    const vipOf = (kv: Kv) => kv.key.slice(serviceVipsDir(prefix).length).split("/")[0];

    // The VIP: as given; else the one we hold; else the first address of the serviceCidr no
    // service uses on any port.
    let ip = spec.frontend.ip ?? old?.frontend.ip ?? vips.filter(ours).map(vipOf)[0];
    const ipAllocated = spec.frontend.ip === undefined ? (old?.ipAllocated ?? true) : false;
    if (ip === undefined) {
      if (!serviceCidr) throw final(`frontend.ip is omitted but network ${prefix} has no serviceCidr to allocate it from: set serviceCidr on the network, or give frontend.ip`);
      const free = pickVip(serviceCidr, new Set(vips.map(vipOf)));
      if (free === undefined) throw final(`serviceCidr ${serviceCidrText} of network ${prefix} is full: no free virtual IP for service ${spec.serviceName}`);
      ip = free;
    } else if (spec.frontend.ip !== undefined && serviceCidr && !containsAddress(serviceCidr, parseIpv4(ip)!)) {
      throw final(`frontend.ip ${JSON.stringify(ip)} is outside the network's serviceCidr ${JSON.stringify(serviceCidrText)}`);
    }
    // One claim per frontend (VIP, protocol, port): another service may hold other ports of the VIP.
    const claims = new Map(vips.map((kv) => [kv.key, kv]));
    const vipKeys = spec.frontend.ports.map((p) => serviceVipKey(prefix, ip!, p.protocol, p.port));
    for (const [i, k] of vipKeys.entries()) {
      const held = claims.get(k);
      if (held && !ours(held)) {
        const p = spec.frontend.ports[i];
        throw final(`frontend ${ip} ${p.protocol} port ${p.port} is held by service ${JSON.stringify(claimOf(held)?.serviceName ?? "?")} (${k}): pick another port or IP, or omit frontend.ip to get a free one`);
      }
    }

    // Reverse-NAT numbers: a port that stays keeps its number; new ports take the lowest free
    // ones, never one this write gives back (live flows of the removed port still carry it).
    const held = new Map((old?.frontend.ports ?? []).map((p) => [portKey(p), p.revNatIndex]));
    const revNatOf = (kv: Kv) => Number(kv.key.slice(serviceRevNatDir(prefix).length));
    const taken = new Set(revNats.map(revNatOf));
    for (const n of held.values()) taken.add(n);
    const fresh = pickRevNat(taken, spec.frontend.ports.filter((p) => !held.has(portKey(p))).length);
    if (!fresh) throw final(`no free reverse-NAT number left in network ${prefix} (at most ${MAX_REV_NAT_INDEX} service ports)`);
    const ports = spec.frontend.ports.map((p) => ({ ...p, revNatIndex: held.get(portKey(p)) ?? fresh.shift()! }));

    const record: StoredService = { schema: SCHEMA_VERSION, serviceId, ...spec, frontend: { ip, ports }, ipAllocated };
    const value = JSON.stringify(record);
    const claim = JSON.stringify({ schema: SCHEMA_VERSION, serviceName: spec.serviceName, serviceId } satisfies Claim);
    const wantedRevNat = new Set(ports.map((p) => p.revNatIndex));

    const compares: ICompare[] = [cmp.unchanged(cfgKey, cfgKv.modRevision), current ? cmp.unchanged(key, current.modRevision) : cmp.absent(key)];
    const ops: IRequestOp[] = [];
    for (const k of vipKeys) {
      if (claims.has(k)) continue;
      compares.push(cmp.absent(k));
      ops.push(op.put(k, claim));
    }
    // Frontends we no longer have (a port removed, the VIP changed) and their numbers go back.
    const wantedVip = new Set(vipKeys);
    const released = [...vips.filter((kv) => ours(kv) && !wantedVip.has(kv.key)), ...revNats.filter((kv) => ours(kv) && !wantedRevNat.has(revNatOf(kv)))];
    for (const kv of released) {
      compares.push(cmp.unchanged(kv.key, kv.modRevision));
      ops.push(op.del(kv.key));
    }
    const ownedRevNat = new Map(revNats.filter(ours).map((kv) => [revNatOf(kv), kv]));
    for (const n of wantedRevNat) {
      if (ownedRevNat.has(n)) continue;
      compares.push(cmp.absent(serviceRevNatKey(prefix, n)));
      ops.push(op.put(serviceRevNatKey(prefix, n), claim));
    }
    if (current && current.value === value && ops.length === 0) return { service: record, revision: current.modRevision };
    ops.push(op.put(key, value));
    const resp = await write(() => txn(client, compares, ops));
    return resp.succeeded ? { service: record, revision: revisionOf(resp) } : undefined;
  });
}

/**
 * Deletes the record and the claims this service holds, if the record is still ours (or
 * unreadable); leaves another service's record and claims alone.
 */
export async function deleteService(client: Etcd3, prefix: string, serviceName: string, serviceId: string): Promise<"deleted" | "absent" | "not-owned"> {
  const key = serviceSpecKey(prefix, serviceName);
  return retrying(`deleting ${key}`, async () => {
    const read = await txn(client, [], [op.get(key), op.list(serviceVipsDir(prefix)), op.list(serviceRevNatDir(prefix))]);
    const current = rangeKvs(read, 0)[0];
    const owner = current ? ownerOf(current.value) : undefined;
    if (owner !== undefined && owner !== serviceId) return "not-owned";
    const claims = [...rangeKvs(read, 1), ...rangeKvs(read, 2)].filter((kv) => claimOf(kv)?.serviceId === serviceId);
    if (!current && claims.length === 0) return "absent";
    const compares = [current ? cmp.unchanged(key, current.modRevision) : cmp.absent(key), ...claims.map((kv) => cmp.unchanged(kv.key, kv.modRevision))];
    const resp = await txn(client, compares, [...(current ? [op.del(key)] : []), ...claims.map((kv) => op.del(kv.key))]);
    return resp.succeeded ? (current ? "deleted" : "absent") : undefined;
  });
}
