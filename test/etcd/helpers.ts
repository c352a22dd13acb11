// Shared helpers for the etcd tests: whole-store snapshots and direct key edits.
import { EtcdConnection, withEtcd } from "../../provider/etcd/etcdClient";
import { listPrefix } from "../../provider/etcd/etcdOps";

export interface Dump {
  revision: number;
  kvs: { key: string; value: string; mod: number }[];
}

/** Every key of the store with its revision, and the store revision: any write changes it. */
export async function dumpAll(conn: EtcdConnection): Promise<Dump> {
  return withEtcd(conn, async (c) => {
    const r = await c.kv.range({ key: Buffer.from([0]), range_end: Buffer.from([0]) });
    return {
      revision: Number(r.header.revision),
      kvs: r.kvs.map((kv) => ({ key: kv.key.toString(), value: kv.value.toString(), mod: Number(kv.mod_revision) })),
    };
  });
}

export async function keysUnder(conn: EtcdConnection, prefix: string): Promise<string[]> {
  return withEtcd(conn, async (c) => (await listPrefix(c, prefix)).map((kv) => kv.key));
}

export async function getValue(conn: EtcdConnection, key: string): Promise<string | null> {
  return withEtcd(conn, (c) => c.get(key).string());
}

export async function putValue(conn: EtcdConnection, key: string, value: string): Promise<void> {
  await withEtcd(conn, (c) => c.put(key).value(value).exec());
}

export async function deleteKey(conn: EtcdConnection, key: string): Promise<void> {
  await withEtcd(conn, (c) => c.delete().key(key).exec());
}

export async function deletePrefix(conn: EtcdConnection, prefix: string): Promise<void> {
  await withEtcd(conn, (c) => c.delete().prefix(prefix).exec());
}

/**
 * A client that loses answers like a flaky network. Write transactions (those with compares):
 * "apply" sends the write and then throws a timeout as if the answer was lost; "drop" throws
 * without sending; "partition" applies the first write, then every later call (reads too)
 * times out. Reads otherwise pass through. `lost` counts the intercepted writes.
 */
export function lossyClient<T extends { kv: { txn: (...a: any[]) => Promise<any> } }>(
  client: T,
  mode: "apply" | "drop" | "partition",
  times = Infinity,
): T & { lost: number } {
  const { GRPCDeadlineExceededError } = require("etcd3") as typeof import("etcd3");
  const kv = Object.create(client.kv);
  const wrapped = Object.create(client) as T & { lost: number };
  wrapped.lost = 0;
  const timeout = () => new GRPCDeadlineExceededError("injected: the answer of this call was lost");
  kv.txn = async (req: { compare?: unknown[] }, ...rest: unknown[]) => {
    if (mode === "partition" && wrapped.lost > 0) throw timeout();
    if (!req.compare?.length || wrapped.lost >= times) return client.kv.txn(req, ...rest);
    wrapped.lost++;
    if (mode !== "drop") await client.kv.txn(req, ...rest);
    throw timeout();
  };
  kv.range = async (...args: unknown[]) => {
    if (mode === "partition" && wrapped.lost > 0) throw timeout();
    return (client.kv as any).range(...args);
  };
  Object.defineProperty(wrapped, "kv", { value: kv });
  return wrapped;
}
