// Every key a host's agent writes in etcd, removed at once: by the agent's own teardown (as the
// host) and by the removal of an unreachable host (as admin, docs/reliability.md scenario 7).
import type { Etcd3 } from "etcd3";
import { revokeLeaseOf } from "./etcdAuthOps";
import { listPrefix } from "./etcdOps";
import { endpointsDir, healthDir, identitiesDir, identityUserKey, nodeKey } from "./keys";

export async function removeHostKeys(client: Etcd3, prefix: string, host: string): Promise<void> {
  // Revoking the agent's lease removes every key bound to it at once (the node key and the
  // host's identity users). A host may not revoke a lease holding keys it cannot write: the
  // deletes below still run.
  await revokeLeaseOf(client, nodeKey(prefix, host)).catch(() => false);
  await client.delete().key(nodeKey(prefix, host)).exec();
  await client.delete().prefix(endpointsDir(prefix, host)).exec();
  // Identity users left on the lease of an earlier agent of this host.
  const usersDir = `${identitiesDir(prefix)}value/`;
  for (const kv of await listPrefix(client, usersDir)) {
    if (kv.key === identityUserKey(prefix, kv.key.slice(usersDir.length).split("/")[0], host)) await client.delete().key(kv.key).exec();
  }
  await client.delete().prefix(healthDir(prefix, host)).exec();
}
