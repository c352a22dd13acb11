// A ContainerNetwork and N HostAllocations on an existing etcd (TLS), the allocations' connection
// inline or held by a SharedEtcdConnection, driven by
// test/scale/stateSize.test.ts through the Automation API.
import * as pulumi from "@pulumi/pulumi";
import { ContainerNetwork } from "../../../../provider/network/containerNetwork";
import { HostAllocation } from "../../../../provider/ipam/hostAllocation";
import { SharedEtcdConnection } from "../../../../provider/etcd/sharedConnection";

const config = new pulumi.Config("statesize");
const connection = config.requireSecret("etcd").apply((t) => JSON.parse(t) as { endpoints: string[]; caPem: string; certPem: string; keyPem: string });
const network = new ContainerNetwork("net", { connection, networkName: config.get("name") ?? "statesize", mode: "vxlan", clusterCidr: "10.95.0.0/16", vni: config.getNumber("vni") ?? 42 });
// shared: the allocations store a reference, the connection is held once by their provider.
const provider = config.getBoolean("shared") ? new SharedEtcdConnection("etcd", connection) : undefined;
const hosts = Array.from({ length: config.requireNumber("hosts") }, (_, i) => new HostAllocation(`h${i}`, { network, host: `host-${i}` }, { provider }));

export const prefix = network.prefix;
export const podCidrs = hosts.map((h) => h.podCidr);
