// A lab whose hosts run real agents laid out as NodeAgent installs them (config and socket in
// <stateDir>/agent/, the CLI at <installDir>/current/bin/bpfnet), so the operator commands that
// work over SSH from the inventory (`bpfnet health`, `connectivity test`, `ui`) run against it.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import type { InventoryHost } from "../../../lab/inventory";
import { agentHostPaths } from "../../../provider/agent/nodeAgentSpec";
import { LabTopology } from "../../../lab/topology";
import { checkBuilt, LabAgent, REPO, seedNetwork } from "../../agent/support/agents";
import { LabEtcd, startEtcdOn } from "../../agent/support/etcd";
import { cleanupAll } from "../../support/cleanup";
import { startTestLab, TestLab } from "../../support/lab";

export interface AgentLab {
  lab: TestLab;
  etcd: LabEtcd;
  agents: LabAgent[];
  cidrs: Record<string, string>;
  prefix: string;
  inventoryFile: string;
  down(): Promise<void>;
}

export interface AgentLabOptions {
  name: string;
  octet: number;
  topology: LabTopology;
  hosts: number;
  clusterCidr: string;
  healthIntervalSeconds?: number;
  /** The network's serviceCidr (services get their VIPs from it). */
  serviceCidr?: string;
  /** Each agent serves metrics on its control address (the SSH one, like Network's default), this port. */
  metricsPort?: number;
}

/** The host as the agent sees it: its state in <stateDir>/agent/ like an installed agent. */
const installedLayout = (h: InventoryHost): InventoryHost => ({ ...h, stateDir: agentHostPaths(h.installDir, h.stateDir).dir });

export async function startAgentLab(o: AgentLabOptions): Promise<AgentLab> {
  checkBuilt();
  const prefix = `/bpfnet/${o.name}`;
  let lab: TestLab | undefined;
  let etcd: LabEtcd | undefined;
  const agents: LabAgent[] = [];
  const down = () =>
    cleanupAll([...agents.map((a) => () => a.stop()), () => etcd?.stop(), () => lab?.down()]);
  try {
    lab = await startTestLab(o.name, o.octet, o.topology, o.hosts);
    etcd = await startEtcdOn(`10.${o.octet}.0.254`);
    const cidrs = await seedNetwork(etcd.connection, { prefix, mode: o.topology, clusterCidr: o.clusterCidr, ...(o.serviceCidr ? { serviceCidr: o.serviceCidr } : {}) }, lab.inventory.hosts.map((h) => h.name));
    for (const h of lab.inventory.hosts) {
      // The CLI where NodeAgent installs it: this checkout's, through bin/bpfnet.
      const bin = path.join(path.dirname(agentHostPaths(h.installDir, h.stateDir).cli));
      fs.mkdirSync(bin, { recursive: true });
      fs.symlinkSync(path.join(REPO, "bin", "bpfnet"), path.join(bin, "bpfnet"));
      // In the mount namespace of the host's sshd, as an agent NodeAgent started over SSH: the
      // namespaces that commands over SSH create (`ip netns add`) are mounted there.
      const sshdPid = path.join(lab.stateDir, "hosts", h.name, "ssh", "sshd.pid");
      const launcher = () => ["nsenter", "-t", fs.readFileSync(sshdPid, "utf8").trim(), "-m", "-n"];
      agents.push(new LabAgent(installedLayout(h), { prefix, etcd: etcd.connection, leaseTtlSeconds: 10, launcher, health: true, healthIntervalSeconds: o.healthIntervalSeconds ?? 2, ...(o.metricsPort ? { metricsAddress: `${h.ssh.host}:${o.metricsPort}` } : {}) }));
    }
    if (o.topology === "l3") {
      for (const h of lab.inventory.hosts) execFileSync("ip", ["-n", lab.inventory.router!.netns!, "route", "add", cidrs[h.name], "via", h.underlayIp]);
    }
    await Promise.all(agents.map((a) => a.start(60_000)));
    return { lab, etcd, agents, cidrs, prefix, inventoryFile: path.join(lab.stateDir, "inventory.json"), down };
  } catch (e) {
    await down().catch(() => undefined);
    throw e;
  }
}
