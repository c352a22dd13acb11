// The root Pulumi project: deploys bpfnet onto the hosts listed in an inventory
// (the lab's by default; see Pulumi.dev.yaml and README "Real hosts").
import * as pulumi from "@pulumi/pulumi";
import { readInventory, sshConnectionFor } from "./lab/inventory";
import { HostProbe } from "./provider/hostProbe";

const config = new pulumi.Config("bpfnet");
const inventory = readInventory(config.require("inventory"));

const probes = inventory.hosts.map(
  (h) => new HostProbe(`probe-${h.name}`, { connection: sshConnectionFor(h.ssh) }),
);

export const hosts = Object.fromEntries(
  inventory.hosts.map((h, i) => [h.name, { underlayIp: h.underlayIp, kernel: probes[i].kernelVersion, hostname: probes[i].hostname }]),
);
