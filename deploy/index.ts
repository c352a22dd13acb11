// The root Pulumi project's program (Pulumi.yaml main): deploys a bpfnet network onto the hosts listed in an inventory
// (the lab's by default; see Pulumi.dev.yaml, Pulumi.staging.yaml and README "Real hosts").
import * as pulumi from "@pulumi/pulumi";
import { Network, etcdMembersOn } from "../components/network";
import { ExistingEtcdArgs } from "../components/etcdCluster";
import { networkHostsOf, readInventory, sshConnectionFor } from "../lab/inventory";
import { EtcdConnection } from "../provider/etcd/etcdClient";
import { HostProbe } from "../provider/host/hostProbe";

const config = new pulumi.Config("bpfnet");
const inventory = readInventory(config.require("inventory"));
// `bpfnet:hosts` ("h1,h2") deploys onto part of the inventory; removing a name removes that host.
const only = config.get("hosts")?.split(",").map((h) => h.trim());
const allHosts = networkHostsOf(inventory);
// `bpfnet:unreachable` ("h2"): hosts to remove without SSH: `pulumi up` with the mark, then drop them from bpfnet:hosts and `pulumi up` (docs/reliability.md, scenario 7).
const unreachable = config.get("unreachable")?.split(",").map((h) => h.trim()) ?? [];
const hosts = allHosts.filter((h) => !only || only.includes(h.name)).map((h) => (unreachable.includes(h.name) ? { ...h, unreachable: true } : h));

// etcd: provisioned on the first N hosts, or the one another stack provisioned (environment promotion).
const etcdFromStack = config.get("etcdFromStack");
let existing: ExistingEtcdArgs | undefined;
if (etcdFromStack) {
  const conn = new pulumi.StackReference(etcdFromStack).requireOutput("etcdConnection") as pulumi.Output<EtcdConnection>;
  existing = { endpoints: conn.endpoints, caPem: conn.apply((c) => c.caPem!), certPem: conn.apply((c) => c.certPem!), keyPem: conn.apply((c) => c.keyPem!) };
}

const network = new Network("net", {
  hosts,
  mode: (config.get("mode") as "vxlan" | "l3" | undefined) ?? inventory.topology,
  clusterCidr: config.get("clusterCidr") ?? "10.244.0.0/16",
  hostPrefixLength: config.getNumber("hostPrefixLength"),
  networkName: config.get("networkName") ?? pulumi.getStack(),
  etcd: existing
    ? { existing }
    : { members: etcdMembersOn(allHosts.slice(0, config.getNumber("etcdHosts") ?? 1)), retainOnDelete: config.getBoolean("etcdRetainOnDelete"), credentialRotation: config.get("credentialRotation") },
  // One network's agents per host: a second network on the same hosts (staging) runs without.
  agents: { enabled: config.getBoolean("agents") ?? true, bundlePath: config.get("agentBundle") },
  // l3: the inventory's router, programmed with iproute2 ("linux") or FRR's vtysh ("frr").
  router: inventory.router && (config.get("mode") ?? inventory.topology) === "l3"
    ? {
        connection: sshConnectionFor(inventory.router.ssh),
        driver: (config.get("routerDriver") as "linux" | "frr" | undefined) ?? "frr",
        vtyshArgs: inventory.router.vtyshArgs,
      }
    : undefined,
});

// Preflight facts about every reachable host (SSH with verified host keys).
const probed = inventory.hosts.filter((h) => (!only || only.includes(h.name)) && !unreachable.includes(h.name));
const probes = probed.map((h) => new HostProbe(`probe-${h.name}`, { connection: sshConnectionFor(h.ssh) }));

export const etcdEndpoints = network.etcdEndpoints;
export const etcdConnection = network.etcdConnection; // secret: for stacks that share this etcd
export const networkPrefix = network.prefix;
export const podCidrs = network.podCidrs;
export const agents = Object.fromEntries(Object.entries(network.agents).map(([h, a]) => [h, a.incarnation]));
export const routes = Object.fromEntries(Object.entries(network.routes).map(([h, r]) => [h, r.id]));
export const kernels = Object.fromEntries(probed.map((h, i) => [h.name, probes[i].kernelVersion]));
