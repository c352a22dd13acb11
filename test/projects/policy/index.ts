// A ContainerNetwork (with a HostAllocation per configured host) and one NetworkPolicy taking etcd
// and prefix from it, the policy's spec from config (JSON) so the tests can change it between
// runs. Driven by test/pulumi/policy.test.ts and test/pulumi/policyAgents.test.ts.
import * as pulumi from "@pulumi/pulumi";
import { ContainerNetwork } from "../../../provider/network/containerNetwork";
import { NetworkPolicy } from "../../../provider/policy/networkPolicy";
import { HostAllocation } from "../../../provider/ipam/hostAllocation";

const config = new pulumi.Config("policytest");
const network = new ContainerNetwork("net", {
  connection: { endpoints: [config.require("etcd")] },
  networkName: config.require("networkName"),
  mode: "vxlan",
  clusterCidr: config.get("clusterCidr") ?? "10.179.0.0/16",
});
for (const host of (config.get("hosts") ?? "").split(",").filter(Boolean)) new HostAllocation(`alloc-${host}`, { network, host });
const spec = JSON.parse(config.require("policy"));
const policy = new NetworkPolicy("api-from-web", { network, ...spec });

export const policyKey = policy.policyKey;
export const policyId = policy.policyId;
