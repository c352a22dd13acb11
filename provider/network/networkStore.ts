// Reads and writes <prefix>/config, the network spec that agents and allocators read. The config
// carries a networkId: a ContainerNetwork only overwrites or deletes the config it wrote, so two
// stacks that picked the same prefix by mistake fail loudly instead of sharing a network.
import type { Etcd3 } from "etcd3";
import { isTransient } from "../etcd/etcdClient";
import { cmp, op, rangeKvs, revisionOf, txn, Kv } from "../etcd/etcdOps";
import { configKey, hostFromKey, ipamHostsDir, networkRange } from "../etcd/keys";
import { NetworkSpec, StoredConfig, parseStoredConfig, toStoredConfig } from "./networkSpec";

export const NETWORK_DEADLINE_MS = 30_000;

export interface NetworkStoreError extends Error {
  /** A write was sent and never answered: it may have been applied. */
  outcomeUnknown: boolean;
}

export async function readConfig(client: Etcd3, prefix: string): Promise<{ config: StoredConfig; kv: Kv } | undefined> {
  const kv = rangeKvs(await txn(client, [], [op.get(configKey(prefix))]), 0)[0];
  return kv ? { config: parseStoredConfig(kv.key, kv.value), kv } : undefined;
}

/**
 * Writes a new config. An existing one is refused unless `adopt` (then it is overwritten and
 * re-tagged with our networkId); one carrying our own networkId is a write of ours whose answer
 * was lost, and is kept.
 */
export async function createConfig(
  client: Etcd3,
  spec: NetworkSpec,
  networkId: string,
  adopt: boolean,
  deadlineMs = NETWORK_DEADLINE_MS,
): Promise<{ revision: number; adopted: boolean }> {
  const key = configKey(spec.prefix);
  const value = JSON.stringify(toStoredConfig(spec, networkId));
  return retrying(`writing ${key}`, async (write) => {
    const resp = await write(() => txn(client, [cmp.absent(key)], [op.put(key, value)], [op.get(key)]));
    if (resp.succeeded) return { revision: revisionOf(resp), adopted: false };
    const kv = rangeKvs(resp, 0)[0];
    if (!kv) return undefined; // deleted meanwhile: try again
    let existing: StoredConfig | undefined;
    try {
      existing = parseStoredConfig(key, kv.value);
    } catch {
      existing = undefined;
    }
    if (existing?.networkId === networkId) return { revision: kv.modRevision, adopted: false };
    if (!adopt) {
      const what = existing ? `networkId ${existing.networkId}, mode ${existing.mode}, clusterCidr ${existing.clusterCidr}` : "unreadable";
      throw Object.assign(
        new Error(
          `a network config already exists at ${key} (${what}): another ContainerNetwork owns this prefix. ` +
            `Use another networkName/prefix, or set adopt: true to take it over (e.g. after losing the Pulumi state).`,
        ),
        { outcomeUnknown: false, final: true },
      );
    }
    const put = await write(() => txn(client, [cmp.unchanged(key, kv.modRevision)], [op.put(key, value)]));
    return put.succeeded ? { revision: revisionOf(put), adopted: true } : undefined;
  }, deadlineMs);
}

/** Rewrites our config (re-creating it if it was deleted by hand); refuses one re-tagged by another network. */
export async function updateConfig(client: Etcd3, spec: NetworkSpec, networkId: string): Promise<{ revision: number }> {
  const key = configKey(spec.prefix);
  const value = JSON.stringify(toStoredConfig(spec, networkId));
  return retrying(`writing ${key}`, async (write) => {
    const current = rangeKvs(await txn(client, [], [op.get(key)]), 0)[0];
    if (current) {
      let owner: string | undefined;
      try {
        owner = parseStoredConfig(key, current.value).networkId;
      } catch {
        owner = undefined; // unreadable: ours to repair
      }
      if (owner !== undefined && owner !== networkId) {
        throw Object.assign(new Error(`${key} now belongs to network ${owner}, not ${networkId}: another ContainerNetwork took this prefix over`), {
          outcomeUnknown: false,
          final: true,
        });
      }
    }
    // Same content: no write, so watchers see no event and the revision stays put.
    if (current && current.value === value) return { revision: current.modRevision };
    const resp = await write(() => txn(client, [current ? cmp.unchanged(key, current.modRevision) : cmp.absent(key)], [op.put(key, value)]));
    return resp.succeeded ? { revision: revisionOf(resp) } : undefined;
  });
}

/**
 * Deletes everything under "<prefix>/" in one transaction, but only while the config is still
 * ours and no host allocation remains: HostAllocations depend on the network, so Pulumi deletes
 * them first; anything left belongs to someone else and must not vanish under them.
 */
export async function deleteNetwork(client: Etcd3, prefix: string, networkId: string): Promise<"deleted" | "absent" | "not-owned"> {
  const key = configKey(prefix);
  return retrying(`deleting ${networkRange(prefix)}`, async () => {
    const current = rangeKvs(await txn(client, [], [op.get(key)]), 0)[0];
    if (!current) return "absent";
    let owner: string | undefined;
    try {
      owner = parseStoredConfig(key, current.value).networkId;
    } catch {
      owner = undefined;
    }
    if (owner !== undefined && owner !== networkId) return "not-owned";
    const hosts = ipamHostsDir(prefix);
    const resp = await txn(
      client,
      [cmp.unchanged(key, current.modRevision), cmp.emptyPrefix(hosts)],
      [op.delPrefix(networkRange(prefix))],
      [op.list(hosts, { keysOnly: true, limit: 20 })],
    );
    if (resp.succeeded) return "deleted";
    const left = rangeKvs(resp, 0).map((kv) => hostFromKey(prefix, kv.key));
    if (left.length === 0) return undefined; // the config changed: look again
    throw Object.assign(
      new Error(
        `network ${prefix} still has host allocations (${left.join(", ")}${left.length === 20 ? ", …" : ""}): ` +
          `delete those HostAllocation resources first (Pulumi does when they depend on this network), or remove ${hosts} by hand`,
      ),
      { outcomeUnknown: false, final: true },
    );
  });
}

/**
 * Runs `step` until it returns a value; transport errors are retried with backoff until the
 * deadline. Writes go through `write`: one that fails without an answer may have landed, so a
 * final failure then reports an unknown outcome.
 */
export async function retrying<T>(
  what: string,
  step: (write: <R>(send: () => Promise<R>) => Promise<R>) => Promise<T | undefined>,
  deadlineMs = NETWORK_DEADLINE_MS,
): Promise<T> {
  const deadline = Date.now() + deadlineMs;
  let sent = false;
  let last: unknown;
  for (let attempt = 1; ; attempt++) {
    try {
      const r = await step(async (send) => {
        try {
          return await send();
        } catch (e) {
          sent = true;
          throw e;
        }
      });
      if (r !== undefined) return r;
      last = new Error("lost a race with another writer");
    } catch (e) {
      if ((e as { final?: boolean }).final || !isTransient(e)) throw e;
      last = e;
      await new Promise((res) => setTimeout(res, Math.min(1000, 25 * 2 ** Math.min(attempt, 6)) * (0.5 + Math.random())));
    }
    if (Date.now() >= deadline) {
      const err = new Error(`${what} did not finish within ${deadlineMs / 1000}s: ${last instanceof Error ? last.message : String(last)}`) as NetworkStoreError;
      err.outcomeUnknown = sent;
      throw err;
    }
  }
}
