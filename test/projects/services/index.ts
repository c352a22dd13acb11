// A ContainerNetwork with a serviceCidr (and a HostAllocation per configured host) and the
// Services given in config (JSON: name → args), each taking etcd, prefix and serviceCidr from
// the network, so the tests can add, change and break services between runs. Driven by
// test/services/servicesLab.test.ts.
import * as pulumi from "@pulumi/pulumi";
import { ContainerNetwork } from "../../../provider/network/containerNetwork";
import { HostAllocation } from "../../../provider/ipam/hostAllocation";
import { Service } from "../../../provider/services/service";

const config = new pulumi.Config("servicetest");
const network = new ContainerNetwork("net", {
  connection: { endpoints: [config.require("etcd")] },
  networkName: config.require("networkName"),
  mode: "vxlan",
  clusterCidr: config.require("clusterCidr"),
  serviceCidr: config.require("serviceCidr"),
});
for (const host of (config.get("hosts") ?? "").split(",").filter(Boolean)) new HostAllocation(`alloc-${host}`, { network, host });
const services: Record<string, Service> = {};
for (const [name, args] of Object.entries(JSON.parse(config.require("services")) as Record<string, Record<string, unknown>>)) {
  services[name] = new Service(name, { network, ...(args as unknown as ConstructorParameters<typeof Service>[1]) });
}

export const vips = Object.fromEntries(Object.entries(services).map(([n, s]) => [n, s.ip]));
