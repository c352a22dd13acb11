// The setup every agent-level reliability test shares: a vxlan lab, an etcd on its management
// bridge, the network seeded in etcd, one running agent per host and, optionally, a container
// with an endpoint on each host. `down()` undoes all of it (every step runs, see cleanupAll).
import { ChildProcess } from "child_process";
import { cleanupAll } from "../../support/cleanup";
import { startTestLab, TestLab } from "../../support/lab";
import { LabEtcd, startEtcdOn } from "../../agent/support/etcd";
import { addContainerNetns, checkBuilt, LabAgent, removeContainers, seedNetwork } from "../../agent/support/agents";

export interface AgentLabOptions {
  lab: string;
  octet: number;
  hosts: number;
  /** The network's pool; each host gets a /24 of it. */
  clusterCidr: string;
  leaseTtlSeconds: number;
  /** Container namespaces (trelc…), one per host in order, each joined as an endpoint. */
  containers?: string[];
  /** Extra host names allocated a pod CIDR (peers that have no agent). */
  extraAllocations?: string[];
}

export interface AgentLab {
  lab: TestLab;
  etcd: LabEtcd;
  prefix: string;
  agents: LabAgent[];
  /** Host → pod CIDR. */
  cidrs: Record<string, string>;
  /** Container name → endpoint IP. */
  ips: Record<string, string>;
  /** Background processes of the test, killed first by down(). */
  children: ChildProcess[];
  down(extra?: (() => unknown)[]): Promise<void>;
}

export async function startAgentLab(o: AgentLabOptions): Promise<AgentLab> {
  checkBuilt();
  const prefix = `/bpfnet/${o.lab}`;
  const children: ChildProcess[] = [];
  const partial: Partial<AgentLab> = { prefix, children, agents: [], ips: {} };
  const down = async (extra: (() => unknown)[] = []) =>
    cleanupAll([
      ...children.map((c) => () => c.kill("SIGKILL")),
      ...extra,
      ...(partial.agents ?? []).map((a) => () => a.stop()),
      () => removeContainers(o.containers ?? []),
      () => partial.etcd?.stop(),
      () => partial.lab?.down(),
    ]);
  try {
    partial.lab = await startTestLab(o.lab, o.octet, "vxlan", o.hosts);
    partial.etcd = await startEtcdOn(`10.${o.octet}.0.254`);
    const names = partial.lab.inventory.hosts.map((h) => h.name);
    partial.cidrs = await seedNetwork(partial.etcd.connection, { prefix, mode: "vxlan", clusterCidr: o.clusterCidr, vni: o.octet }, [...names, ...(o.extraAllocations ?? [])]);
    partial.agents = partial.lab.inventory.hosts.map((h) => new LabAgent(h, { prefix, etcd: partial.etcd!.connection, leaseTtlSeconds: o.leaseTtlSeconds }));
    await Promise.all(partial.agents.map((a) => a.start()));
    for (const [i, c] of (o.containers ?? []).entries()) {
      addContainerNetns(c);
      partial.ips![c] = (await partial.agents[i].client.addEndpoint({ id: c, netns: `/run/netns/${c}` })).endpoint.ip;
    }
  } catch (e) {
    await down().catch(() => undefined);
    throw e;
  }
  return { ...(partial as AgentLab), down };
}
