// `bpfnet lab up|down|status`: the lab datacenter as a product command.
import * as path from "path";
import { labDown, labStatus, labUp, inventoryPath } from "../../lab/lab";
import { kubernetesCommand } from "./labKubernetes";
import { DEFAULT_LAB, DEFAULT_STATE_ROOT, LabOptions, LabTopology } from "../../lab/topology";

export const LAB_USAGE = `usage: bpfnet lab up [--name N] [--hosts 3] [--topology vxlan|l3] [--subnet 10.213.0.0/16] [--state-dir DIR]
       bpfnet lab down [--name N] [--state-dir DIR]
       bpfnet lab status [--name N] [--state-dir DIR] [--json]
       bpfnet lab k8s up|down|status [--name N] [--state-dir DIR] [--port 16443] [--kubelet | --no-virtual-kubelet]`;

export function labOptionsFrom(flags: Map<string, string>): LabOptions {
  const name = flags.get("name") ?? DEFAULT_LAB.name;
  return {
    name,
    hosts: flags.has("hosts") ? Number(flags.get("hosts")) : DEFAULT_LAB.hosts,
    topology: (flags.get("topology") ?? DEFAULT_LAB.topology) as LabTopology,
    subnet: flags.get("subnet") ?? DEFAULT_LAB.subnet,
    stateDir: flags.get("state-dir") ?? path.join(DEFAULT_STATE_ROOT, name),
  };
}

export async function labCommand(verb: string | undefined, flags: Map<string, string>, subverb?: string): Promise<number> {
  const options = labOptionsFrom(flags);
  switch (verb) {
    case "up": {
      const inv = await labUp(options);
      console.log(`lab ${inv.lab} is up (${inv.topology}, ${inv.hosts.length} hosts${inv.router ? " + router" : ""})`);
      for (const h of inv.hosts) console.log(`  ${h.name}  ssh ${h.ssh.user}@${h.ssh.host}  underlay ${h.underlayIp}`);
      if (inv.router) console.log(`  router  ssh ${inv.router.ssh.user}@${inv.router.ssh.host}`);
      console.log(`inventory: ${inventoryPath(options.stateDir)}`);
      return 0;
    }
    case "down":
      labDown(options.stateDir);
      console.log(`lab ${options.name} is down`);
      return 0;
    case "status": {
      const s = labStatus(options.stateDir);
      if (flags.has("json")) console.log(JSON.stringify(s, null, 2));
      else if (!s.options) console.log(`lab ${options.name} is not up`);
      else {
        console.log(`lab ${s.options.name}: ${s.up ? "up" : "DEGRADED"} (${s.options.topology})`);
        for (const h of s.hosts) console.log(`  ${h.name.padEnd(7)} ${h.netns.padEnd(14)} ${h.exists ? `${h.processes} processes` : "MISSING"}`);
      }
      return s.up || !s.options ? 0 : 1;
    }
    case "k8s":
      return kubernetesCommand(subverb, options.stateDir, flags);
    default:
      console.error(LAB_USAGE);
      return 2;
  }
}
