// Removes an unreachable host from etcd without contacting it (NodeAgent's delete for a host
// marked `unreachable: true`, docs/reliability.md scenario 7), with the admin identity: its
// credentials first (a host that may be compromised or come back must not write again), then
// every key its agent wrote, then the record of what stays on the host.
import * as os from "os";
import type { Etcd3 } from "etcd3";
import { EtcdConnection, withEtcd } from "../etcd/etcdClient";
import { removeUserAndRole, roleGrants } from "../etcd/etcdAuthOps";
import { hostRoleName } from "../etcd/hostAccessSpec";
import { removeHostKeys } from "../etcd/hostKeys";
import { removedHostKey } from "../etcd/keys";
import { NodeAgentSpec } from "./nodeAgentSpec";
import { LeftOnHost, RemovalRecord, removalRecord } from "./removalRecord";

/** Deletes the host's role and every generation of its user; returns what it deleted ("user …", "role …"). */
async function revokeHost(c: Etcd3, prefix: string, host: string): Promise<string[]> {
  const role = hostRoleName(prefix, host);
  const users = (await c.getUsers()).map((u) => u.name).filter((n) => n.startsWith(`${role}:`));
  for (const u of users) await removeUserAndRole(c, u, undefined);
  const hadRole = (await roleGrants(c, role)) !== undefined;
  if (hadRole) await c.role(role).delete();
  return [...users.map((u) => `user ${u}`), ...(hadRole ? [`role ${role}`] : [])];
}

export async function forgetUnreachableHost(admin: EtcdConnection, spec: NodeAgentSpec, left: LeftOnHost): Promise<RemovalRecord> {
  return withEtcd(admin, async (c) => {
    const revoked = await revokeHost(c, spec.networkPrefix, spec.hostName);
    await removeHostKeys(c, spec.networkPrefix, spec.hostName);
    const record = removalRecord(spec, left, revoked, `${os.userInfo().username}@${os.hostname()}`, new Date());
    await c.put(removedHostKey(spec.networkPrefix, spec.hostName)).value(JSON.stringify(record, null, 2)).exec();
    return record;
  });
}
