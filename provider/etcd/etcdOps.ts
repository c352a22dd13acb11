// Thin builders over etcd's raw KV API (Range/Put/DeleteRange/Txn). The raw API is used instead
// of etcd3's fluent builders because the allocator needs compares over key ranges and reads at
// one revision, which the builders do not expose.
import type { Etcd3, ICompare, IKeyValue, IRequestOp, ITxnResponse } from "etcd3";

export interface Kv {
  key: string;
  value: string;
  createRevision: number;
  modRevision: number;
}

/** First key after every key that starts with `prefix`. */
export function rangeEnd(prefix: string): Buffer {
  const b = Buffer.from(prefix);
  for (let i = b.length - 1; i >= 0; i--) {
    if (b[i] < 0xff) {
      const end = Buffer.from(b.subarray(0, i + 1));
      end[i]++;
      return end;
    }
  }
  return Buffer.from([0]);
}

export const op = {
  get: (key: string): IRequestOp => ({ request_range: { key: Buffer.from(key) } }),
  list: (prefix: string, o: { keysOnly?: boolean; countOnly?: boolean; limit?: number } = {}): IRequestOp => ({
    request_range: {
      key: Buffer.from(prefix),
      range_end: rangeEnd(prefix),
      ...(o.keysOnly ? { keys_only: true } : {}),
      ...(o.countOnly ? { count_only: true } : {}),
      ...(o.limit ? { limit: o.limit } : {}),
    },
  }),
  put: (key: string, value: string): IRequestOp => ({ request_put: { key: Buffer.from(key), value: Buffer.from(value) } }),
  del: (key: string): IRequestOp => ({ request_delete_range: { key: Buffer.from(key) } }),
  delPrefix: (prefix: string): IRequestOp => ({ request_delete_range: { key: Buffer.from(prefix), range_end: rangeEnd(prefix) } }),
};

export const cmp = {
  /** The key does not exist (create_revision 0). */
  absent: (key: string): ICompare => ({ key: Buffer.from(key), target: "Create", result: "Equal", create_revision: 0 }),
  /** The key still has the revision we read: nobody wrote it since. */
  unchanged: (key: string, modRevision: number): ICompare => ({ key: Buffer.from(key), target: "Mod", result: "Equal", mod_revision: modRevision }),
  /** No key at all under `prefix` (a range compare holds for every key, and for none). */
  emptyPrefix: (prefix: string): ICompare => ({
    key: Buffer.from(prefix),
    range_end: rangeEnd(prefix),
    target: "Create",
    result: "Equal",
    create_revision: 0,
  }),
};

export function toKv(kv: IKeyValue): Kv {
  return {
    key: kv.key.toString(),
    value: kv.value ? kv.value.toString() : "",
    createRevision: Number(kv.create_revision),
    modRevision: Number(kv.mod_revision),
  };
}

/** One transaction; with no compares it is a consistent multi-read at one revision. */
export function txn(client: Etcd3, compare: ICompare[], success: IRequestOp[], failure: IRequestOp[] = []): Promise<ITxnResponse> {
  return client.kv.txn({ compare, success, failure });
}

/** The key-values returned by the i-th range operation of a transaction. */
export function rangeKvs(resp: ITxnResponse, i: number): Kv[] {
  const r = resp.responses[i]?.response_range;
  return r ? r.kvs.map(toKv) : [];
}

/** The count returned by the i-th (count-only) range operation of a transaction. */
export function rangeCount(resp: ITxnResponse, i: number): number {
  return Number(resp.responses[i]?.response_range?.count ?? 0);
}

export function revisionOf(resp: ITxnResponse): number {
  return Number(resp.header.revision);
}

/** All key-values under `prefix`, read linearizably at one revision. */
export async function listPrefix(client: Etcd3, prefix: string): Promise<Kv[]> {
  const r = await client.kv.range({ key: Buffer.from(prefix), range_end: rangeEnd(prefix) });
  return r.kvs.map(toKv);
}
