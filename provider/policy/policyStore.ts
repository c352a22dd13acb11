// Reads and writes one policy record at <prefix>/policies/v1/<name>. The record carries the
// policyId of the NetworkPolicy that wrote it: a resource only rewrites or deletes its own
// record, so two programs that picked the same policy name fail loudly instead of fighting.
import type { Etcd3 } from "etcd3";
import { cmp, op, rangeKvs, revisionOf, txn, Kv } from "../etcd/etcdOps";
import { policiesDir } from "../etcd/keys";
import { retrying } from "../network/networkStore";
import { PolicySpec, StoredPolicy, parseStoredPolicy, toStoredPolicy } from "./policySpec";

export function policyKey(prefix: string, policyName: string): string {
  return `${policiesDir(prefix)}${policyName}`;
}

export interface ReadPolicy {
  kv: Kv;
  /** Undefined when the record does not parse or validate (edited by hand): `problems` says why. */
  policy?: StoredPolicy;
  problems: string[];
  /** The policyId in the record, even when the rest does not validate. */
  owner?: string;
}

function ownerOf(text: string): string | undefined {
  try {
    const v = JSON.parse(text);
    return typeof v?.policyId === "string" ? v.policyId : undefined;
  } catch {
    return undefined;
  }
}

export async function readPolicy(client: Etcd3, prefix: string, policyName: string): Promise<ReadPolicy | undefined> {
  const kv = rangeKvs(await txn(client, [], [op.get(policyKey(prefix, policyName))]), 0)[0];
  if (!kv) return undefined;
  const owner = ownerOf(kv.value);
  return { kv, ...parseStoredPolicy(kv.value), ...(owner !== undefined ? { owner } : {}) };
}

function notOwned(key: string, owner: string, policyId: string): Error {
  return Object.assign(
    new Error(`${key} belongs to another NetworkPolicy (policyId ${owner}, not ${policyId}): pick another policyName, or delete that policy first`),
    { outcomeUnknown: false, final: true },
  );
}

/**
 * Writes the policy. `create` refuses a record of another policy; `update` also re-creates a
 * record deleted by hand and repairs one made unreadable. An identical record is not rewritten,
 * so agents see no event.
 */
export async function writePolicy(client: Etcd3, prefix: string, spec: PolicySpec, policyId: string): Promise<{ revision: number }> {
  const key = policyKey(prefix, spec.policyName);
  const value = JSON.stringify(toStoredPolicy(spec, policyId));
  return retrying(`writing ${key}`, async (write) => {
    const current = rangeKvs(await txn(client, [], [op.get(key)]), 0)[0];
    const owner = current ? ownerOf(current.value) : undefined;
    if (owner !== undefined && owner !== policyId) throw notOwned(key, owner, policyId);
    if (current && current.value === value) return { revision: current.modRevision };
    const resp = await write(() => txn(client, [current ? cmp.unchanged(key, current.modRevision) : cmp.absent(key)], [op.put(key, value)]));
    return resp.succeeded ? { revision: revisionOf(resp) } : undefined;
  });
}

/** Deletes the record if it is still ours (or unreadable); leaves another policy's record alone. */
export async function deletePolicy(client: Etcd3, prefix: string, policyName: string, policyId: string): Promise<"deleted" | "absent" | "not-owned"> {
  const key = policyKey(prefix, policyName);
  return retrying(`deleting ${key}`, async () => {
    const current = rangeKvs(await txn(client, [], [op.get(key)]), 0)[0];
    if (!current) return "absent";
    const owner = ownerOf(current.value);
    if (owner !== undefined && owner !== policyId) return "not-owned";
    const resp = await txn(client, [cmp.unchanged(key, current.modRevision)], [op.del(key)]);
    return resp.succeeded ? "deleted" : undefined;
  });
}
