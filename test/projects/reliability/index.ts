// One HostAllocation per configured host against an existing network in etcd: the smallest
// program whose `pulumi up` writes to etcd. Driven by test/reliability/etcdOutage.test.ts.
import * as pulumi from "@pulumi/pulumi";
import { HostAllocation } from "../../../provider/ipam/hostAllocation";

const config = new pulumi.Config("reltest");
const connection = { endpoints: [config.require("etcdEndpoint")] };
const prefix = config.require("prefix");
const hosts = config.require("hosts").split(",").filter(Boolean);

const allocations = hosts.map((host) => new HostAllocation(`alloc-${host}`, { connection, prefix, host }));

export const podCidrs = pulumi.all(allocations.map((a) => pulumi.all([a.host, a.podCidr]))).apply((pairs) => Object.fromEntries(pairs));
