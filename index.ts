// The root Pulumi project: deploys bpfnet onto the hosts listed in an inventory
// (the lab's by default; see Pulumi.dev.yaml and README "Real hosts").
import * as pulumi from "@pulumi/pulumi";
import { EtcdCluster } from "./components/etcdCluster";
import { readInventory, sshConnectionFor } from "./lab/inventory";
import { HostProbe } from "./provider/hostProbe";

const config = new pulumi.Config("bpfnet");
const inventory = readInventory(config.require("inventory"));
const etcdHostCount = config.getNumber("etcdHosts") ?? 1;

const probes = inventory.hosts.map((h) => new HostProbe(`probe-${h.name}`, { connection: sshConnectionFor(h.ssh) }));

const etcd = new EtcdCluster("etcd", {
  hosts: inventory.hosts.slice(0, etcdHostCount).map((h) => ({
    name: h.name,
    connection: sshConnectionFor(h.ssh),
    address: h.ssh.host,
    stateDir: h.stateDir,
  })),
});

export const etcdEndpoints = etcd.endpoints;
export const etcdReady = etcd.ready;
export const hosts = Object.fromEntries(
  inventory.hosts.map((h, i) => [h.name, { underlayIp: h.underlayIp, kernel: probes[i].kernelVersion }]),
);
