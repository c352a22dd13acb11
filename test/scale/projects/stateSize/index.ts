// A ContainerNetwork and N HostAllocations on an existing etcd (TLS), driven by
// test/scale/stateSize.test.ts through the Automation API.
import * as pulumi from "@pulumi/pulumi";
import { ContainerNetwork } from "../../../../provider/network/containerNetwork";
import { HostAllocation } from "../../../../provider/ipam/hostAllocation";

const config = new pulumi.Config("statesize");
const connection = config.requireSecret("etcd").apply((t) => JSON.parse(t) as { endpoints: string[]; caPem: string; certPem: string; keyPem: string });
const network = new ContainerNetwork("net", { connection, networkName: "statesize", mode: "vxlan", clusterCidr: "10.95.0.0/16", vni: config.getNumber("vni") ?? 42 });
const hosts = Array.from({ length: config.requireNumber("hosts") }, (_, i) => new HostAllocation(`h${i}`, { network, host: `host-${i}` }));

export const prefix = network.prefix;
export const podCidrs = hosts.map((h) => h.podCidr);
