// Cluster-wide allocation of security identities in etcd (Cilium's kvstore allocator):
//   <prefix>/identities/v1/id/<n>                  {schema, labels}: the identity, created once
//   <prefix>/identities/v1/value/<labels>/<host>   {schema, id}: this host uses it (agent lease)
// A label set keeps its number while any host uses it; a number whose users are all gone is
// deleted only after a grace period (gc), so an agent that may still hold it in its maps never
// sees it reused for other labels. Every write is a transaction guarded by what it read.
import type { Etcd3, IRequestOp } from "etcd3";
import { cmp, op, rangeKvs, txn, Kv } from "../../provider/etcd/etcdOps";
import { identitiesDir, identityIdKey, identityUserKey, identityUsersDir, SCHEMA_VERSION } from "../../provider/etcd/keys";
import { Labels, labelsFromKey, labelsKey, MAX_ENDPOINT_IDENTITY, MIN_ENDPOINT_IDENTITY } from "./identity";

/** One etcd key segment per label set: its canonical text, "_" for the empty set. */
export function labelsSegment(labels: Labels): string {
  return labelsKey(labels) || "_";
}

export function labelsFromSegment(segment: string): Labels | undefined {
  return segment === "_" ? {} : segment === "" ? undefined : labelsFromKey(segment);
}

/** Parses <identities>/id/<n>; undefined for anything else or a record of an unknown schema. */
export function parseIdentityRecord(prefix: string, kv: Kv): { id: number; labels: Labels } | undefined {
  const m = /^id\/([0-9]{1,8})$/.exec(kv.key.slice(identitiesDir(prefix).length));
  if (!kv.key.startsWith(identitiesDir(prefix)) || !m) return undefined;
  try {
    const v = JSON.parse(kv.value);
    if (v?.schema !== SCHEMA_VERSION || !v.labels || typeof v.labels !== "object") return undefined;
    const labels = labelsFromSegment(labelsSegment(v.labels));
    return labels ? { id: Number(m[1]), labels } : undefined;
  } catch {
    return undefined;
  }
}

/** The lowest free number at or above MIN_ENDPOINT_IDENTITY, or undefined when the space is full. */
export function lowestFree(used: Set<number>): number | undefined {
  for (let n = MIN_ENDPOINT_IDENTITY; n <= MAX_ENDPOINT_IDENTITY; n++) if (!used.has(n)) return n;
  return undefined;
}

export interface AllocatorOptions {
  /** Attempts before giving up when other hosts keep winning the same numbers. */
  maxAttempts?: number;
}

export class IdentityAllocator {
  /** labels segment → {id, refs}: repeated use costs no etcd round trip. */
  private readonly held = new Map<string, { id: number; refs: number }>();
  /** id → when gc first saw it without users (ms). */
  private readonly orphanSince = new Map<number, number>();

  constructor(
    private readonly client: Etcd3,
    private readonly prefix: string,
    private readonly host: string,
    /** The agent's current lease: a host's use dies with its agent. */
    private readonly leaseId: () => string | undefined,
    private readonly opts: AllocatorOptions = {},
  ) {}

  /** Identities this agent holds, with their reference counts. */
  holdings(): { labels: Labels; id: number; refs: number }[] {
    return [...this.held].map(([seg, h]) => ({ labels: labelsFromSegment(seg)!, id: h.id, refs: h.refs }));
  }

  /** Every identity of the network: number → labels. */
  async list(): Promise<Map<number, Labels>> {
    const out = new Map<number, Labels>();
    for (const kv of rangeKvs(await txn(this.client, [], [op.list(`${identitiesDir(this.prefix)}id/`)]), 0)) {
      const r = parseIdentityRecord(this.prefix, kv);
      if (r) out.set(r.id, r.labels);
    }
    return out;
  }

  private userPut(seg: string, id: number): IRequestOp {
    const lease = this.leaseId();
    if (lease === undefined) throw new Error("identity allocation needs the agent's etcd lease, and it has none right now");
    const put = op.put(identityUserKey(this.prefix, seg, this.host), JSON.stringify({ schema: SCHEMA_VERSION, id }));
    return { request_put: { ...put.request_put!, lease } };
  }

  /**
   * The label set's identity, taking a reference. Reuses the number any host (or an orphan still
   * in its grace period) has for these labels; otherwise creates the lowest free one.
   */
  async allocate(labels: Labels): Promise<number> {
    const seg = labelsSegment(labels);
    const mine = this.held.get(seg);
    if (mine) {
      mine.refs++;
      return mine.id;
    }
    const id = await this.claim(seg, labels);
    this.held.set(seg, { id, refs: 1 });
    return id;
  }

  /**
   * Restart: takes back the identities the endpoints kept in pinned state hold, before anything
   * new is allocated, so a restored endpoint keeps its number. A number that is gone or now
   * means other labels is not taken back: the caller allocates again.
   */
  async restore(entries: { labels: Labels; id: number }[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const e of entries) {
      const seg = labelsSegment(e.labels);
      const have = this.held.get(seg);
      if (have) {
        if (have.id === e.id) have.refs++;
        continue;
      }
      const key = identityIdKey(this.prefix, e.id);
      const kv = rangeKvs(await txn(this.client, [], [op.get(key)]), 0)[0];
      const rec = kv && parseIdentityRecord(this.prefix, kv);
      if (!rec || labelsSegment(rec.labels) !== seg) continue;
      const r = await txn(this.client, [cmp.unchanged(key, kv.modRevision)], [this.userPut(seg, e.id)]);
      if (!r.succeeded) continue;
      this.held.set(seg, { id: e.id, refs: 1 });
      out.set(seg, e.id);
    }
    return out;
  }

  /** Drops a reference; the last one removes this host's use (the number itself stays until gc). */
  async release(labels: Labels): Promise<void> {
    const seg = labelsSegment(labels);
    const mine = this.held.get(seg);
    if (!mine) return;
    if (--mine.refs > 0) return;
    this.held.delete(seg);
    await txn(this.client, [], [op.del(identityUserKey(this.prefix, seg, this.host))]);
  }

  /** After the lease was lost (and a new one granted): writes every use again under the new lease. */
  async reassert(): Promise<void> {
    for (const [seg, h] of this.held) {
      const key = identityIdKey(this.prefix, h.id);
      const r = await txn(this.client, [{ ...cmp.absent(key), result: "Greater" }], [this.userPut(seg, h.id)]);
      if (!r.succeeded) throw new Error(`identity ${h.id} (${seg}) was deleted while this host held it`);
    }
  }

  /**
   * Deletes identities nobody has used for `graceMs` (first seen unused by this agent's gc at
   * least that long ago). Guarded: a host that takes the number back in between wins.
   */
  async gc(nowMs: number, graceMs: number): Promise<number[]> {
    const resp = await txn(this.client, [], [op.list(`${identitiesDir(this.prefix)}id/`), op.list(`${identitiesDir(this.prefix)}value/`, { keysOnly: true })]);
    const usedSegs = new Set(rangeKvs(resp, 1).map((kv) => kv.key.slice(`${identitiesDir(this.prefix)}value/`.length).split("/")[0]));
    const deleted: number[] = [];
    const seen = new Set<number>();
    for (const kv of rangeKvs(resp, 0)) {
      const rec = parseIdentityRecord(this.prefix, kv);
      if (!rec) continue;
      seen.add(rec.id);
      const seg = labelsSegment(rec.labels);
      if (usedSegs.has(seg) || this.held.has(seg)) {
        this.orphanSince.delete(rec.id);
        continue;
      }
      const since = this.orphanSince.get(rec.id);
      if (since === undefined) {
        this.orphanSince.set(rec.id, nowMs);
        continue;
      }
      if (nowMs - since < graceMs) continue;
      const r = await txn(this.client, [cmp.unchanged(kv.key, kv.modRevision), cmp.emptyPrefix(identityUsersDir(this.prefix, seg))], [op.del(kv.key)]);
      this.orphanSince.delete(rec.id);
      if (r.succeeded) deleted.push(rec.id);
    }
    for (const id of this.orphanSince.keys()) if (!seen.has(id)) this.orphanSince.delete(id);
    return deleted;
  }

  /** Finds or creates the number for a label set and records this host's use, atomically. */
  private async claim(seg: string, labels: Labels): Promise<number> {
    const usersDir = identityUsersDir(this.prefix, seg);
    const maxAttempts = this.opts.maxAttempts ?? 16;
    for (let attempt = 0; attempt < maxAttempts; attempt++) {
      const resp = await txn(this.client, [], [op.list(`${identitiesDir(this.prefix)}id/`)]);
      const records = rangeKvs(resp, 0)
        .map((kv) => ({ kv, rec: parseIdentityRecord(this.prefix, kv) }))
        .filter((x): x is { kv: Kv; rec: { id: number; labels: Labels } } => x.rec !== undefined);
      const existing = records.find((x) => labelsSegment(x.rec.labels) === seg);
      if (existing) {
        // Same labels, known number (in use elsewhere, or an orphan in its grace period): join it.
        const r = await txn(this.client, [cmp.unchanged(existing.kv.key, existing.kv.modRevision)], [this.userPut(seg, existing.rec.id)]);
        if (r.succeeded) return existing.rec.id;
        continue;
      }
      // Numbers of records we cannot parse stay taken: never hand out a number someone wrote.
      const used = new Set(
        rangeKvs(resp, 0)
          .map((kv) => Number(kv.key.slice(`${identitiesDir(this.prefix)}id/`.length)))
          .filter((n) => Number.isInteger(n)),
      );
      const id = lowestFree(used);
      if (id === undefined) throw new Error(`no free security identity left in ${MIN_ENDPOINT_IDENTITY}-${MAX_ENDPOINT_IDENTITY}`);
      const key = identityIdKey(this.prefix, id);
      // Another host creating this number, or an identity for these labels, makes this fail: look again.
      const r = await txn(
        this.client,
        [cmp.absent(key), cmp.emptyPrefix(usersDir)],
        [op.put(key, JSON.stringify({ schema: SCHEMA_VERSION, labels })), this.userPut(seg, id)],
      );
      if (r.succeeded) return id;
      await new Promise((res) => setTimeout(res, Math.min(500, 10 * 2 ** attempt) * Math.random()));
    }
    throw new Error(`could not allocate an identity for ${seg} after ${maxAttempts} attempts (other hosts kept taking the numbers)`);
  }
}
