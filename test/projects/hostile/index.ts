// One hostile field, driven by test/security/hostileInput.test.ts through the real Pulumi CLI:
// `pulumi preview` must fail naming the field, and nothing may run on the host. A field
// "agent.<name>" goes into a bare NodeAgent and "cluster.etcdBinary" into a bare EtcdCluster (so
// the provider's own check is what refuses it); "all" into every host-side field of a Network;
// any other into that one field of a one-host Network.
import * as pulumi from "@pulumi/pulumi";
import * as crypto from "crypto";
import * as fs from "fs";
import { Network, NetworkHostArgs, DEFAULT_BUNDLE_PATH, etcdMembersOn } from "../../../components/network";
import { networkHostsOf, readInventory, sshConnectionFor } from "../../../lab/inventory";
import { NodeAgent } from "../../../provider/agent/nodeAgent";
import { EtcdCluster } from "../../../components/etcdCluster";

const config = new pulumi.Config("hostiletest");
const inventory = readInventory(config.require("inventory"));
const field = config.require("field");
const value = config.require("value");
const host: NetworkHostArgs = { ...networkHostsOf(inventory)[0] };

if (field.startsWith("agent.")) {
  const h = inventory.hosts[0];
  const spec = { hostName: h.name, networkPrefix: "/bpfnet/hostile", installDir: h.installDir, stateDir: h.stateDir, bpffsDir: h.bpffsDir, underlayInterface: h.underlayInterface, underlayIp: h.underlayIp, nodePath: "/usr/bin/node" };
  new NodeAgent("agent", {
    connection: sshConnectionFor(h.ssh),
    spec: { ...spec, [field.slice("agent.".length)]: value },
    etcd: { endpoints: [`https://${h.ssh.host}:2379`] },
    bundlePath: DEFAULT_BUNDLE_PATH,
    bundleSha256: crypto.createHash("sha256").update(fs.readFileSync(DEFAULT_BUNDLE_PATH)).digest("hex"),
  });
} else if (field === "cluster.etcdBinary") {
  // EtcdCluster passes etcdBinary through: the EtcdMember provider's check is what refuses it.
  new EtcdCluster("etcd", { hosts: etcdMembersOn([host]), etcdBinary: value });
} else if (field === "all") {
  // Every host-side field of a Network at once: the component names each of them.
  new Network("hostile", {
    hosts: [{ ...host, installDir: value, stateDir: value, bpffsDir: value, underlayInterface: value, controlAddress: value }],
    mode: "vxlan",
    clusterCidr: "10.150.128.0/17",
    etcd: { members: etcdMembersOn([host]) },
    agents: { nodePath: value },
  });
} else {
  const flags: Record<string, string> = {};
  if (field === "etcdFlag") flags["auto-compaction-retention"] = value;
  else (host as unknown as Record<string, string>)[field] = value;
  new Network("hostile", {
    hosts: [host],
    mode: "vxlan",
    clusterCidr: "10.150.128.0/17",
    etcd: { members: etcdMembersOn([host]), flags },
    agents: field === "nodePath" ? { nodePath: value } : undefined,
  });
}
