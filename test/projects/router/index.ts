// Many RouterRoutes on one router in one stack: what the Network component does in l3 mode, minus
// everything else. Driven by test/router/cli.test.ts through the Automation API.
import * as pulumi from "@pulumi/pulumi";
import { readInventory, sshConnectionFor } from "../../../lab/inventory";
import { RouterRoute } from "../../../provider/router/routerRoute";

const config = new pulumi.Config("routertest");
const inventory = readInventory(config.require("inventory"));
if (!inventory.router) throw new Error(`inventory ${config.require("inventory")} has no router (use an l3 lab)`);
const driver = config.require("driver") as "linux" | "frr";
const count = config.requireNumber("routes");
const prefixBase = config.require("prefixBase");

const router = { connection: sshConnectionFor(inventory.router.ssh), driver, vtyshArgs: inventory.router.vtyshArgs };
const routes = Array.from({ length: count }, (_, i) => {
  const host = inventory.hosts[i % inventory.hosts.length];
  return new RouterRoute(`route-${i}`, { router, prefix: `${prefixBase}.${100 + i}.0/24`, nextHop: host.underlayIp });
});

export const nextHops = pulumi.all(routes.map((r) => pulumi.all([r.prefix, r.nextHop]))).apply((pairs) => Object.fromEntries(pairs));
