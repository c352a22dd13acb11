// The host-subnet allocator over etcd. Every write is one transaction that compares the host
// key, the CIDR key and the network config, so concurrent allocators (other processes, other
// machines) can never hand one CIDR to two hosts. Records carry an allocation id: a write whose
// answer was lost is recognised on the re-read and adopted, never repeated with another CIDR.
import type { Etcd3 } from "etcd3";
import {
  Cidr,
  blockSize,
  canonicalCidr,
  formatCidr,
  gatewayIp,
  lastAddress,
  nthSubnet,
  overlaps,
  parseCidr,
  subnetCount,
  subnetIndex,
} from "./cidr";
import { isTransient } from "../etcd/etcdClient";
import { Kv, cmp, op, rangeCount, rangeKvs, revisionOf, txn } from "../etcd/etcdOps";
import {
  CidrRecord,
  HostRecord,
  SCHEMA_VERSION,
  cidrFromKey,
  cidrKey,
  configKey,
  hostFromKey,
  hostKey,
  ipamCidrsDir,
  ipamHostsDir,
  parseCidrRecord,
  parseHostRecord,
} from "../etcd/keys";
import { StoredConfig, parseStoredConfig } from "../network/networkSpec";
import { hintFor, newHint, setHint, slotFreed, slotTaken, takeSlot, unreserveSlot } from "./freeSlotHint";

export type IpamErrorCode =
  | "no-network"
  | "pool-mismatch"
  | "exhausted"
  | "requested-invalid"
  | "requested-taken"
  | "host-conflict"
  | "corrupt"
  | "timeout";

export interface IpamError extends Error {
  ipam: true;
  code: IpamErrorCode;
  /** True when a write was sent and its result never came back: it may have been applied. */
  outcomeUnknown: boolean;
}

export function ipamError(code: IpamErrorCode, message: string, outcomeUnknown = false): IpamError {
  return Object.assign(new Error(message), { ipam: true as const, code, outcomeUnknown });
}

export function isIpamError(e: unknown): e is IpamError {
  return !!e && typeof e === "object" && (e as IpamError).ipam === true;
}

export const DEFAULT_DEADLINE_MS = 60_000;

export interface AllocateRequest {
  prefix: string;
  host: string;
  /** Tags the records; reuse the same id when retrying one logical allocation. */
  allocationId: string;
  /** When given, must match the network config (a guard against allocating from a stale pool). */
  clusterCidr?: string;
  hostPrefixLength?: number;
  /** A specific host subnet: inside the pool, aligned, of the host prefix length, and free. */
  requestedCidr?: string;
  /** Give up after this long (default 60 s); transport errors are retried until then. */
  deadlineMs?: number;
  /**
   * Use this process's free-slot hint (default true): one transaction per allocation on a
   * dense pool. false: today's path only (a read, a guess or a scan, a claim), for comparison.
   */
  hint?: boolean;
}

export interface Allocation {
  host: string;
  podCidr: string;
  gatewayIp: string;
  allocationId: string;
  /** The etcd revision of the transaction that wrote the host record. */
  revision: number;
  clusterCidr: string;
  hostPrefixLength: number;
  /**
   * new: written now. existing: this allocation id already held it (e.g. our own write whose
   * answer was lost). adopted: the host held it under another id (lost state, a replaced or
   * renamed resource) and it was re-tagged to ours. reclaimed: an orphaned CIDR record of
   * this host (host key deleted by hand) was taken back.
   */
  outcome: "new" | "existing" | "adopted" | "reclaimed";
  /** Transactions that lost a race and were retried. */
  conflicts: number;
  /** Attempts that failed on the transport (timeouts, unavailable) and were retried. */
  retries: number;
}

interface Attempt {
  used?: Set<number>;
  cidrCount: number;
  hostCount: number;
  orphanChecked: boolean;
  /** A write was sent and its answer never came: until proven otherwise it may have landed. */
  wrote: boolean;
  conflicts: number;
  retries: number;
}

interface Pool {
  config: StoredConfig;
  configRev: number;
  pool: Cidr;
  hp: number;
  total: number;
}

/** Allocates (or finds) the host subnet of `req.host`. Idempotent per host. */
export async function allocate(client: Etcd3, req: AllocateRequest): Promise<Allocation> {
  const deadline = Date.now() + (req.deadlineMs ?? DEFAULT_DEADLINE_MS);
  let requested: string | undefined;
  if (req.requestedCidr !== undefined) {
    requested = canonicalCidr(req.requestedCidr);
    if (!requested) throw ipamError("requested-invalid", `requestedCidr must be an aligned IPv4 CIDR, got ${JSON.stringify(req.requestedCidr)}`);
  }
  const state: Attempt = { cidrCount: 0, hostCount: 0, orphanChecked: false, wrote: false, conflicts: 0, retries: 0 };
  if (requested === undefined && req.hint !== false) {
    try {
      const fast = await hintedClaim(client, req, state);
      if (fast) return fast;
    } catch (e) {
      if (isIpamError(e) || !isTransient(e)) throw e;
      state.retries++; // the path below re-reads, and adopts a write of ours that landed
    }
  }
  let lastError: unknown;
  for (let attempt = 1; ; attempt++) {
    try {
      const result = await allocateOnce(client, req, requested, state, attempt);
      if (result) return result;
      state.conflicts++;
      lastError = new Error(`lost ${state.conflicts} transaction races`);
      // Under heavy contention spread the retries out a little.
      if (state.conflicts > 8) await sleep(Math.random() * Math.min(200, 5 * state.conflicts));
    } catch (e) {
      if (isIpamError(e) || !isTransient(e)) throw e;
      lastError = e;
      state.retries++;
      if (Date.now() < deadline) await sleep(backoff(attempt));
    }
    if (Date.now() >= deadline) {
      // A transport failure is named as such: the user's first question is whether etcd is up.
      const why = (isTransient(lastError) ? "etcd unreachable: " : "") + (lastError instanceof Error ? lastError.message : String(lastError));
      throw ipamError(
        "timeout",
        `allocating a pod CIDR for host ${JSON.stringify(req.host)} under ${req.prefix} did not finish within ${Math.round((req.deadlineMs ?? DEFAULT_DEADLINE_MS) / 1000)}s (last error: ${why})` +
          (state.wrote ? `; a write was sent and may have been applied under allocation id ${req.allocationId}: re-run to adopt it` : "; nothing was written"),
        state.wrote,
      );
    }
  }
}

async function allocateOnce(client: Etcd3, req: AllocateRequest, requested: string | undefined, state: Attempt, attempt: number): Promise<Allocation | undefined> {
  const hKey = hostKey(req.prefix, req.host);
  const fresh = requested === undefined;
  // One read at one revision: config, host key, the requested CIDR, and how many keys each
  // index holds (cheap: counted by etcd, nothing transferred).
  const ops = [op.get(configKey(req.prefix)), op.get(hKey)];
  if (requested) ops.push(op.get(cidrKey(req.prefix, requested)));
  if (fresh) ops.push(op.list(ipamCidrsDir(req.prefix), { countOnly: true }), op.list(ipamHostsDir(req.prefix), { countOnly: true }));
  const snap = await txn(client, [], ops);

  const p = poolOf(req, rangeKvs(snap, 0)[0]);
  const hostKv = rangeKvs(snap, 1)[0];
  const requestedKv = requested ? rangeKvs(snap, 2)[0] : undefined;
  if (fresh) {
    state.cidrCount = rangeCount(snap, 2);
    state.hostCount = rangeCount(snap, 3);
  }

  if (hostKv) return keepOrAdopt(client, req, requested, p, hostKv, state);

  if (requested) {
    const sub = parseCidr(requested)!;
    if (subnetIndex(p.pool, p.hp, sub) === undefined) {
      throw ipamError("requested-invalid", `requestedCidr ${JSON.stringify(req.requestedCidr)} is not a /${p.hp} host subnet of pool ${p.config.clusterCidr}`);
    }
    if (requestedKv) {
      const owner = parseCidrRecord(requestedKv.value);
      if (!owner || owner.host !== req.host) {
        throw ipamError(
          "requested-taken",
          `requestedCidr ${JSON.stringify(requested)} is already allocated to host ${JSON.stringify(owner?.host ?? "<unreadable record>")} in ${req.prefix}`,
        );
      }
    }
    return claim(client, req, p, requested, requestedKv, state, requestedKv ? "reclaimed" : "new");
  }

  // More CIDR keys than host keys means an orphaned record (a host key deleted by hand): if it
  // is ours, take it back instead of leaking it.
  if (state.cidrCount > state.hostCount && !state.orphanChecked) {
    state.orphanChecked = true;
    const orphan = await findOrphan(client, req, p);
    if (orphan) return claim(client, req, p, orphan.cidr, orphan.kv, state, "reclaimed");
  }

  // First try: the host's hashed slot, claimed blind (the transaction checks it is free), so a
  // sparse pool costs one read and one write. After a lost race, or when the pool looks full,
  // read the CIDR index once (keys only) and choose among the free slots.
  let scanned = false;
  if (state.used === undefined && (attempt > 1 || state.cidrCount >= p.total)) {
    const keys = rangeKvs(await txn(client, [], [op.list(ipamCidrsDir(req.prefix), { keysOnly: true })]), 0);
    state.used = usedIndices(req.prefix, keys, p);
    scanned = true;
  }
  const idx = state.used ? pickFree(state.used, p.total, req.host, attempt) : fnv1a(req.host) % p.total;
  if (idx === undefined) {
    if (!scanned) {
      state.used = undefined; // a stale view: re-read before declaring the pool full
      return undefined;
    }
    throw ipamError(
      "exhausted",
      `pool ${p.config.clusterCidr} of network ${req.prefix} is exhausted: all ${p.total} /${p.hp} host subnets are allocated (host ${JSON.stringify(req.host)} got none)`,
    );
  }
  const cidr = formatCidr(nthSubnet(p.pool, p.hp, idx));
  const result = await claim(client, req, p, cidr, undefined, state, "new");
  if (!result) state.used?.add(idx);
  return result;
}

function poolOf(req: AllocateRequest, configKv: Kv | undefined): Pool {
  const key = configKey(req.prefix);
  if (!configKv) throw ipamError("no-network", `no network at ${key}: create the ContainerNetwork (prefix ${req.prefix}) before allocating`);
  let config: StoredConfig;
  try {
    config = parseStoredConfig(key, configKv.value);
  } catch (e) {
    throw ipamError("corrupt", (e as Error).message);
  }
  const pool = parseCidr(config.clusterCidr);
  if (!pool) throw ipamError("corrupt", `${key} holds an invalid clusterCidr ${JSON.stringify(config.clusterCidr)}`);
  if (req.clusterCidr !== undefined && canonicalCidr(req.clusterCidr) !== config.clusterCidr) {
    throw ipamError("pool-mismatch", `clusterCidr ${JSON.stringify(req.clusterCidr)} differs from the network's ${config.clusterCidr} at ${key}`);
  }
  if (req.hostPrefixLength !== undefined && req.hostPrefixLength !== config.hostPrefixLength) {
    throw ipamError("pool-mismatch", `hostPrefixLength ${req.hostPrefixLength} differs from the network's ${config.hostPrefixLength} at ${key}`);
  }
  return { config, configRev: configKv.modRevision, pool, hp: config.hostPrefixLength, total: subnetCount(pool, config.hostPrefixLength) };
}

/** The host already has a record: keep it if it is ours, else re-tag it (and repair its CIDR key). */
async function keepOrAdopt(client: Etcd3, req: AllocateRequest, requested: string | undefined, p: Pool, hostKv: Kv, state: Attempt): Promise<Allocation | undefined> {
  const rec = parseHostRecord(hostKv.value);
  if (!rec || rec.host !== req.host) throw ipamError("corrupt", `${hostKv.key} holds an unreadable record: fix or delete it by hand`);
  const cidr = canonicalCidr(rec.cidr);
  const sub = cidr ? parseCidr(cidr) : undefined;
  if (!cidr || !sub || subnetIndex(p.pool, p.hp, sub) === undefined) {
    throw ipamError(
      "host-conflict",
      `host ${JSON.stringify(req.host)} holds ${JSON.stringify(rec.cidr)} (allocation ${rec.allocationId}), which is not a /${p.hp} host subnet of pool ${p.config.clusterCidr}: release it (delete ${hostKv.key}) first`,
    );
  }
  if (requested && requested !== cidr) {
    throw ipamError(
      "host-conflict",
      `host ${JSON.stringify(req.host)} already holds ${cidr} (allocation ${rec.allocationId}); requestedCidr ${JSON.stringify(requested)} differs: delete that allocation first`,
    );
  }
  const cKey = cidrKey(req.prefix, cidr);
  const got = await txn(client, [], [op.get(cKey)]);
  const cidrKv = rangeKvs(got, 0)[0];
  const owner = cidrKv ? parseCidrRecord(cidrKv.value) : undefined;
  if (cidrKv && (!owner || owner.host !== req.host)) {
    throw ipamError("corrupt", `${cKey} is owned by host ${JSON.stringify(owner?.host ?? "<unreadable>")} but ${hostKv.key} claims it: fix the records by hand`);
  }
  if (rec.allocationId === req.allocationId && owner?.allocationId === req.allocationId) {
    return done(req, p, cidr, hostKv.modRevision, "existing", state);
  }
  const records = recordsFor(req, cidr, rec.createdAt);
  const resp = await writeTxn(
    state,
    client,
    [cmp.unchanged(configKey(req.prefix), p.configRev), cmp.unchanged(hostKv.key, hostKv.modRevision), cidrKv ? cmp.unchanged(cKey, cidrKv.modRevision) : cmp.absent(cKey)],
    [op.put(cKey, records.cidr), op.put(hostKv.key, records.host)],
  );
  return resp.succeeded ? done(req, p, cidr, revisionOf(resp), rec.allocationId === req.allocationId ? "existing" : "adopted", state) : undefined;
}

/** Writes both records if the host has none, the CIDR is still free (or still our orphan) and the pool unchanged. */
async function claim(
  client: Etcd3,
  req: AllocateRequest,
  p: Pool,
  cidr: string,
  orphanKv: Kv | undefined,
  state: Attempt,
  outcome: Allocation["outcome"],
): Promise<Allocation | undefined> {
  const hKey = hostKey(req.prefix, req.host);
  const cKey = cidrKey(req.prefix, cidr);
  const createdAt = (orphanKv && parseCidrRecord(orphanKv.value)?.createdAt) || new Date().toISOString();
  const records = recordsFor(req, cidr, createdAt);
  const resp = await writeTxn(
    state,
    client,
    [cmp.unchanged(configKey(req.prefix), p.configRev), cmp.absent(hKey), orphanKv ? cmp.unchanged(cKey, orphanKv.modRevision) : cmp.absent(cKey)],
    [op.put(cKey, records.cidr), op.put(hKey, records.host)],
  );
  return resp.succeeded ? done(req, p, cidr, revisionOf(resp), outcome, state) : undefined;
}

/** A write transaction; one that fails without an answer marks the outcome as unknown. */
async function writeTxn(state: Attempt, ...args: Parameters<typeof txn>): Promise<Awaited<ReturnType<typeof txn>>> {
  try {
    return await txn(...args);
  } catch (e) {
    state.wrote = true;
    throw e;
  }
}

function recordsFor(req: AllocateRequest, cidr: string, createdAt: string): { host: string; cidr: string } {
  const host: HostRecord = { schema: SCHEMA_VERSION, host: req.host, cidr, allocationId: req.allocationId, createdAt };
  const owner: CidrRecord = { schema: SCHEMA_VERSION, host: req.host, allocationId: req.allocationId, createdAt };
  return { host: JSON.stringify(host), cidr: JSON.stringify(owner) };
}

function done(req: AllocateRequest, p: Pool, cidr: string, revision: number, outcome: Allocation["outcome"], state: Attempt): Allocation {
  return {
    host: req.host,
    podCidr: cidr,
    gatewayIp: gatewayIp(parseCidr(cidr)!),
    allocationId: req.allocationId,
    revision,
    clusterCidr: p.config.clusterCidr,
    hostPrefixLength: p.hp,
    outcome,
    conflicts: state.conflicts,
    retries: state.retries,
  };
}

/** The free-slot hints' scope: the cluster (the client's endpoints) and the network. */
function hintScope(client: Etcd3, prefix: string): string {
  const hosts = (client as unknown as { options?: { hosts?: string | string[] } }).options?.hosts;
  return `${JSON.stringify(hosts ?? "")} ${prefix}`;
}

interface HintedPool {
  configKv: Kv;
  pool: Pool;
  /** Claims waiting for the transaction in flight; they go together in the next one. */
  queue: Claim[];
  busy: boolean;
}

/** Claims per transaction: 2 compares, 2 puts and 2 reads each (etcd's --max-txn-ops is 128 by default). */
const MAX_BATCH = 32;

type ClaimResult = { won: true; revision: number; cidrCount: number; hostCount: number } | { won: false; configNow?: Kv; hostNow?: Kv; cidrNow?: Kv };

interface Claim {
  client: Etcd3;
  hKey: string;
  cKey: string;
  records: { host: string; cidr: string };
  resolve(r: ClaimResult): void;
  reject(e: unknown): void;
}

/**
 * Claims made while a claim transaction of this process is in flight go in the next one
 * together: all or nothing, comparing every host and slot absent and the config unchanged, so a
 * burst (a first `up` of many hosts) costs a few transactions. A lost batch returns each
 * claim's keys, so each learns its own outcome; one whose keys were free tries again.
 */
function claimInBatch(hp: HintedPool, prefix: string, c: Omit<Claim, "resolve" | "reject">): Promise<ClaimResult> {
  return new Promise<ClaimResult>((resolve, reject) => {
    hp.queue.push({ ...c, resolve, reject });
    if (!hp.busy) void runBatches(hp, prefix);
  });
}

async function runBatches(hp: HintedPool, prefix: string): Promise<void> {
  hp.busy = true;
  while (hp.queue.length) {
    // One claim per host in a transaction (etcd refuses a key put twice): a second claim of the
    // same host (a retry racing the first) waits for the next one.
    const claims: Claim[] = [];
    const hosts = new Set<string>();
    for (let i = 0; i < hp.queue.length && claims.length < MAX_BATCH; ) {
      const c = hp.queue[i];
      if (hosts.has(c.hKey)) i++;
      else {
        hosts.add(c.hKey);
        claims.push(c);
        hp.queue.splice(i, 1);
      }
    }
    const n = claims.length;
    try {
      // On the client of a claim in this batch: its caller waits for the answer, so it is open.
      const resp = await txn(
        claims[0].client,
        [cmp.unchanged(configKey(prefix), hp.pool.configRev), ...claims.flatMap((c) => [cmp.absent(c.hKey), cmp.absent(c.cKey)])],
        [...claims.flatMap((c) => [op.put(c.cKey, c.records.cidr), op.put(c.hKey, c.records.host)]), op.list(ipamCidrsDir(prefix), { countOnly: true }), op.list(ipamHostsDir(prefix), { countOnly: true })],
        [op.get(configKey(prefix)), ...claims.flatMap((c) => [op.get(c.hKey), op.get(c.cKey)])],
      );
      if (resp.succeeded) {
        const won: ClaimResult = { won: true, revision: revisionOf(resp), cidrCount: rangeCount(resp, 2 * n), hostCount: rangeCount(resp, 2 * n + 1) };
        claims.forEach((c) => c.resolve(won));
      } else {
        const configNow = rangeKvs(resp, 0)[0];
        claims.forEach((c, i) => c.resolve({ won: false, configNow, hostNow: rangeKvs(resp, 1 + 2 * i)[0], cidrNow: rangeKvs(resp, 2 + 2 * i)[0] }));
      }
    } catch (e) {
      claims.forEach((c) => c.reject(e));
    }
  }
  hp.busy = false;
}

/**
 * One transaction: claim the slot the hint believes free, comparing it absent, the host absent
 * and the config unchanged; on a loss the same transaction returns why. Undefined hands the
 * allocation to the full path (no hint, a changed pool, the host already holds a CIDR, a pool
 * believed full, or an orphaned CIDR record of this host to reclaim).
 */
async function hintedClaim(client: Etcd3, req: AllocateRequest, state: Attempt): Promise<Allocation | undefined> {
  const scope = hintScope(client, req.prefix);
  let hint = hintFor<HintedPool>(scope);
  if (!hint) {
    const snap = await txn(client, [], [op.get(configKey(req.prefix)), op.list(ipamCidrsDir(req.prefix), { keysOnly: true })]);
    const configKv = rangeKvs(snap, 0)[0];
    const pool = poolOf(req, configKv);
    hint = newHint<HintedPool>({ configKv, pool, queue: [], busy: false }, pool.total, usedIndices(req.prefix, rangeKvs(snap, 1), pool));
    setHint(scope, hint);
  }
  const p = poolOf(req, hint.pool.configKv); // this request's own pool guards
  const hKey = hostKey(req.prefix, req.host);
  for (let tries = 0, lostBatches = 0; tries < 8 && lostBatches < 16; ) {
    const idx = takeSlot(hint, fnv1a(req.host) % p.total);
    if (idx === undefined) {
      setHint(scope, undefined);
      return undefined;
    }
    const cidr = formatCidr(nthSubnet(p.pool, p.hp, idx));
    const cKey = cidrKey(req.prefix, cidr);
    const records = recordsFor(req, cidr, new Date().toISOString());
    let r: ClaimResult;
    try {
      r = await claimInBatch(hint.pool, req.prefix, { client, hKey, cKey, records });
    } catch (e) {
      state.wrote = true; // sent, no answer: it may have landed (the full path adopts it)
      unreserveSlot(hint, idx);
      throw e;
    }
    if (r.won) {
      slotTaken(hint, idx);
      // More CIDR keys than host keys: an orphaned record somewhere. If it is this host's, give
      // the new claim back and let the full path reclaim the orphan (nothing leaks).
      if (r.cidrCount > r.hostCount && (await findOrphan(client, req, p, cidr))) {
        await release(client, { prefix: req.prefix, host: req.host, allocationId: req.allocationId, podCidr: cidr });
        slotFreed(hint, idx);
        return undefined;
      }
      return done(req, p, cidr, r.revision, "new", state);
    }
    if (!r.configNow || r.configNow.modRevision !== p.configRev) {
      unreserveSlot(hint, idx);
      setHint(scope, undefined);
      return undefined;
    }
    if (r.hostNow) {
      unreserveSlot(hint, idx);
      return undefined; // the host holds a CIDR already: kept or adopted by the full path
    }
    if (r.cidrNow) {
      slotTaken(hint, idx); // someone else took the slot
      state.conflicts++;
      tries++;
    } else {
      unreserveSlot(hint, idx); // another claim of the batch lost it: this slot is still free
      lostBatches++;
    }
  }
  return undefined;
}

/** A released slot is free again in this process's hint. */
function hintFreed(client: Etcd3, prefix: string, cidr: string): void {
  const hint = hintFor<HintedPool>(hintScope(client, prefix));
  const c = parseCidr(cidr);
  const idx = hint && c ? subnetIndex(hint.pool.pool.pool, hint.pool.pool.hp, c) : undefined;
  if (hint && idx !== undefined) slotFreed(hint, idx);
}

/** Pool indices taken by the CIDR keys (a key of another size blocks every index it overlaps). */
function usedIndices(prefix: string, keys: Kv[], p: Pool): Set<number> {
  const used = new Set<number>();
  const size = blockSize(p.hp);
  for (const kv of keys) {
    const text = cidrFromKey(prefix, kv.key);
    const c = text ? parseCidr(text) : undefined;
    if (!c || !overlaps(p.pool, c)) continue;
    const first = Math.floor((Math.max(c.base, p.pool.base) - p.pool.base) / size);
    const last = Math.floor((Math.min(lastAddress(c), lastAddress(p.pool)) - p.pool.base) / size);
    for (let i = first; i <= last; i++) used.add(i);
  }
  return used;
}

async function findOrphan(client: Etcd3, req: AllocateRequest, p: Pool, except?: string): Promise<{ cidr: string; kv: Kv } | undefined> {
  const snap = await txn(client, [], [op.list(ipamCidrsDir(req.prefix))]);
  for (const kv of rangeKvs(snap, 0)) {
    const owner = parseCidrRecord(kv.value);
    const cidr = cidrFromKey(req.prefix, kv.key);
    const c = cidr ? parseCidr(cidr) : undefined;
    if (owner?.host === req.host && c && subnetIndex(p.pool, p.hp, c) !== undefined && formatCidr(c) !== except) return { cidr: formatCidr(c), kv };
  }
  return undefined;
}

/**
 * A free index of the pool. The first try hashes the host name (the same host tends to get the
 * same subnet back, and concurrent allocators start far apart); later tries are random, by
 * probing while the pool is sparse and from the free list once it is dense.
 */
export function pickFree(used: Set<number>, total: number, seed: string, attempt: number, random: () => number = Math.random): number | undefined {
  if (used.size >= total) return undefined;
  if (attempt === 1) {
    const h = fnv1a(seed) % total;
    if (!used.has(h)) return h;
  }
  if ((total - used.size) * 4 >= total) {
    for (let i = 0; i < 64; i++) {
      const r = Math.floor(random() * total);
      if (!used.has(r)) return r;
    }
  }
  // Dense pool: at most 4/3 of the keys we already hold in memory, so enumerating is cheap.
  const free: number[] = [];
  for (let i = 0; i < total; i++) if (!used.has(i)) free.push(i);
  return free.length ? free[Math.floor(random() * free.length)] : undefined;
}

export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

export interface ReleaseRequest {
  prefix: string;
  host: string;
  allocationId: string;
  /** The CIDR the state says we hold: lets an orphaned CIDR record of ours be removed too. */
  podCidr?: string;
  deadlineMs?: number;
}

/**
 * Releases the host's subnet if this allocation still owns it. Another allocation id (the host
 * was adopted by a newer resource) is left alone: that is the fence against a late delete of a
 * replaced resource removing its successor's subnet.
 */
export async function release(client: Etcd3, req: ReleaseRequest): Promise<"released" | "absent" | "not-owned"> {
  const deadline = Date.now() + (req.deadlineMs ?? DEFAULT_DEADLINE_MS);
  const hKey = hostKey(req.prefix, req.host);
  const stateCidr = req.podCidr ? canonicalCidr(req.podCidr) : undefined;
  for (let attempt = 1; ; attempt++) {
    try {
      const snap = await txn(client, [], [op.get(hKey), ...(stateCidr ? [op.get(cidrKey(req.prefix, stateCidr))] : [])]);
      const hostKv = rangeKvs(snap, 0)[0];
      const rec = hostKv ? parseHostRecord(hostKv.value) : undefined;
      const ours = rec?.allocationId === req.allocationId;
      const cidr = ours ? canonicalCidr(rec!.cidr) : stateCidr;
      let cidrKv: Kv | undefined;
      if (cidr) cidrKv = cidr === stateCidr ? rangeKvs(snap, 1)[0] : rangeKvs(await txn(client, [], [op.get(cidrKey(req.prefix, cidr))]), 0)[0];
      const cidrOurs = !!cidrKv && parseCidrRecord(cidrKv.value)?.allocationId === req.allocationId;
      if (!ours && !cidrOurs) return hostKv ? "not-owned" : "absent";
      const compare = [...(ours ? [cmp.unchanged(hKey, hostKv!.modRevision)] : []), ...(cidrOurs ? [cmp.unchanged(cidrKv!.key, cidrKv!.modRevision)] : [])];
      const ops = [...(ours ? [op.del(hKey)] : []), ...(cidrOurs ? [op.del(cidrKv!.key)] : [])];
      const resp = await txn(client, compare, ops);
      if (resp.succeeded) {
        if (cidr) hintFreed(client, req.prefix, cidr);
        return "released";
      }
    } catch (e) {
      if (!isTransient(e) || Date.now() >= deadline) throw e;
      await sleep(backoff(attempt));
    }
    if (Date.now() >= deadline) throw new Error(`releasing host ${JSON.stringify(req.host)} under ${req.prefix} kept losing races until the deadline`);
  }
}

export interface HostView {
  host?: { kv: Kv; record?: HostRecord };
  cidr?: { kv: Kv; record?: CidrRecord };
}

/** What etcd holds for a host: its record and the owner record of the CIDR it names. */
export async function inspectHost(client: Etcd3, prefix: string, host: string): Promise<HostView> {
  const snap = await txn(client, [], [op.get(hostKey(prefix, host))]);
  const hostKv = rangeKvs(snap, 0)[0];
  if (!hostKv) return {};
  const record = parseHostRecord(hostKv.value);
  const cidr = record ? canonicalCidr(record.cidr) : undefined;
  if (!cidr) return { host: { kv: hostKv, record } };
  const got = await txn(client, [], [op.get(cidrKey(prefix, cidr))]);
  const cidrKv = rangeKvs(got, 0)[0];
  return { host: { kv: hostKv, record }, ...(cidrKv ? { cidr: { kv: cidrKv, record: parseCidrRecord(cidrKv.value) } } : {}) };
}

export interface Audit {
  hosts: Map<string, HostRecord>;
  cidrs: Map<string, CidrRecord>;
  /** Each inconsistency in words: orphans, mismatched owners, two hosts on one CIDR. */
  problems: string[];
}

/** Reads the whole IPAM of a network at one revision and cross-checks both indexes. */
export async function audit(client: Etcd3, prefix: string): Promise<Audit> {
  const snap = await txn(client, [], [op.list(ipamHostsDir(prefix)), op.list(ipamCidrsDir(prefix))]);
  const hosts = new Map<string, HostRecord>();
  const cidrs = new Map<string, CidrRecord>();
  const problems: string[] = [];
  for (const kv of rangeKvs(snap, 0)) {
    const rec = parseHostRecord(kv.value);
    const name = hostFromKey(prefix, kv.key)!;
    if (!rec || rec.host !== name) problems.push(`${kv.key}: unreadable host record`);
    else hosts.set(name, rec);
  }
  for (const kv of rangeKvs(snap, 1)) {
    const rec = parseCidrRecord(kv.value);
    const cidr = cidrFromKey(prefix, kv.key);
    if (!rec || !cidr) problems.push(`${kv.key}: unreadable CIDR record`);
    else cidrs.set(cidr, rec);
  }
  const claimed = new Map<string, string>();
  for (const [name, rec] of hosts) {
    const owner = cidrs.get(rec.cidr);
    if (!owner) problems.push(`host ${name} holds ${rec.cidr} but no CIDR record exists`);
    else if (owner.host !== name || owner.allocationId !== rec.allocationId) problems.push(`host ${name} holds ${rec.cidr} but the CIDR record names ${owner.host}/${owner.allocationId}`);
    const other = claimed.get(rec.cidr);
    if (other) problems.push(`${rec.cidr} is held by both ${other} and ${name}`);
    claimed.set(rec.cidr, name);
  }
  for (const [cidr, owner] of cidrs) {
    if (hosts.get(owner.host)?.cidr !== cidr) problems.push(`${cidr} is owned by ${owner.host}, whose host record does not name it (orphan)`);
  }
  return { hosts, cidrs, problems };
}

function backoff(attempt: number): number {
  return Math.min(1000, 25 * 2 ** Math.min(attempt, 6)) * (0.5 + Math.random());
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
