// Host L3 mode with a router: no tunnel between hosts; each host sits in its own subnet and the
// router between them forwards every host's pod CIDR to that host (one RouterRoute per host,
// programmed over SSH with FRR's vtysh or iproute2). The hosts and the router come from an
// inventory file: `npx bpfnet lab up --topology l3` writes one for a lab; write your own for
// real machines (README, "Real hosts instead of the lab").
import * as pulumi from "@pulumi/pulumi";
import { Network, etcdMembersOn, networkHostsOf, readInventory, sshConnectionFor } from "bpfnet";

const config = new pulumi.Config();
const inventoryFile = config.require("inventory");
const inventory = readInventory(inventoryFile);
if (!inventory.router) throw new Error(`inventory ${inventoryFile} has no router: host L3 mode needs the router between the hosts (npx bpfnet lab up --topology l3)`);

// Every host's SSH access (key read from the inventory's key file), underlay address and paths.
const hosts = networkHostsOf(inventory);

const net = new Network("edge", {
  hosts,
  mode: "l3",
  clusterCidr: config.get("clusterCidr") ?? "10.246.0.0/16",
  hostPrefixLength: 26,
  etcd: { members: etcdMembersOn(hosts.slice(0, 1)) },
  router: {
    connection: sshConnectionFor(inventory.router.ssh),
    // "frr": static routes through vtysh (tagged, so bpfnet only ever touches its own); "linux": `ip route`.
    driver: config.get<"frr" | "linux">("routerDriver") ?? "frr",
    vtyshArgs: inventory.router.vtyshArgs,
  },
});

export const podCidrs = net.podCidrs;
/** What the router now does for each host: "<pod CIDR> via <host's underlay address>". */
export const routes = Object.fromEntries(Object.entries(net.routes).map(([host, r]) => [host, pulumi.interpolate`${r.prefix} via ${r.nextHop}`]));
