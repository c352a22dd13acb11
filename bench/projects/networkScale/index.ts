// A Network of N hosts in l3 mode on an l3 lab's router: N allocations and N routes, agents off
// (their etcd side is simulated by bench/scale.ts), an existing etcd. The hosts beyond the lab's
// own are simulated: their underlay addresses sit in the lab hosts' /24s behind the router, so
// the router accepts each route's next hop; nothing ever connects to them. Driven by
// bench/networkScale.ts through the Automation API.
import * as pulumi from "@pulumi/pulumi";
import { readInventory, sshConnectionFor } from "../../../lab/inventory";
import { Network } from "../../../components/network";

const config = new pulumi.Config("networkscale");
const inventory = readInventory(config.require("inventory"));
if (!inventory.router) throw new Error(`inventory ${config.require("inventory")} has no router (use an l3 lab)`);
const count = config.requireNumber("hosts");
const moved = config.getNumber("moved");
const etcd = config.requireSecret("etcd").apply((t) => JSON.parse(t) as { endpoints: string[]; caPem: string; certPem: string; keyPem: string });
const lab = inventory.hosts;

/** Host i's underlay: .2 upwards in lab host (i mod n)'s /24 (.1 is that host's own address). */
function underlay(i: number): string {
  const base = lab[i % lab.length].underlayIp.split(".").slice(0, 3).join(".");
  const offset = Math.floor(i / lab.length) + 2 + (i === moved ? 120 : 0);
  return `${base}.${offset}`;
}

const network = new Network("scale", {
  mode: "l3",
  clusterCidr: "10.64.0.0/12",
  hostPrefixLength: 24,
  etcd: {
    existing: { endpoints: etcd.apply((e) => e.endpoints), caPem: etcd.apply((e) => e.caPem), certPem: etcd.apply((e) => e.certPem), keyPem: etcd.apply((e) => e.keyPem) },
    hostCredentials: "shared",
  },
  agents: { enabled: false },
  router: { connection: sshConnectionFor(inventory.router.ssh), driver: "linux" },
  hosts: Array.from({ length: count }, (_, i) => ({
    name: `sim-${String(i).padStart(4, "0")}`,
    underlayIp: underlay(i),
    connection: sshConnectionFor(lab[i % lab.length].ssh),
  })),
});

export const prefix = network.prefix;
export const hosts = network.podCidrs.apply((c) => Object.keys(c).length);
