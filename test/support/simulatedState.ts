// What the scale simulation's agents must converge on, read straight from etcd, and the agent's
// ipcache rows that come from endpoint records (test/scale/simulatedHosts, agentThreads).
import type { Etcd3 } from "etcd3";
import { listPrefix } from "../../provider/etcd/etcdOps";
import { endpointsDir, ipamHostsDir, nodesDir } from "../../provider/etcd/keys";
import type { SimAgent } from "../../node-agent/sim/simulation";

/** Tunnel rows (pod CIDR → underlay) and endpoint ipcache rows (ip/32 → identity) as etcd states them right now. */
export async function etcdSimState(admin: Etcd3, prefix: string): Promise<{ tunnel: Map<string, string>; endpoints: Map<string, number> }> {
  const nodes = new Map((await listPrefix(admin, nodesDir(prefix))).map((kv) => [kv.key.slice(nodesDir(prefix).length), JSON.parse(kv.value).underlayIp as string]));
  const tunnel = new Map<string, string>();
  for (const kv of await listPrefix(admin, ipamHostsDir(prefix))) {
    const rec = JSON.parse(kv.value) as { host: string; cidr: string };
    const underlay = nodes.get(rec.host);
    if (underlay) tunnel.set(rec.cidr, underlay);
  }
  const endpoints = new Map((await listPrefix(admin, endpointsDir(prefix))).map((kv) => [`${JSON.parse(kv.value).ip}/32`, JSON.parse(kv.value).identity as number]));
  return { tunnel, endpoints };
}

/** An agent's ipcache rows of endpoints (identities from 256 up, /32). */
export function endpointRows(a: SimAgent): Map<string, number> {
  return new Map([...a.ipcache].filter(([cidr, id]) => id >= 256 && cidr.endsWith("/32")));
}
