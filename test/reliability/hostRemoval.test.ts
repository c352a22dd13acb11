/**
 * Reliability scenario 7 (docs/reliability.md): removing a host from the program, through the
 * real CLI on a 2-host l3 lab (the root project: etcd with per-host credentials, allocations,
 * router routes, agents). The host has a container. `pulumi up` without it must remove, in this
 * order, its agent (which takes its endpoints with it), its route, its allocation and its etcd
 * credentials (user and role), and leave nothing behind: no key naming it in etcd, no user or
 * role, no device, pin, process or file on the host, no route on the router.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import { Stack } from "@pulumi/pulumi/automation";
import { inventoryPath } from "../../lab/lab";
import { AgentClient } from "../../node-agent/api/client";
import { EtcdConnection, withEtcd } from "../../provider/etcd/etcdClient";
import { hostRoleName } from "../../provider/etcd/hostAccessSpec";
import { cleanupAll } from "../support/cleanup";
import { startTestLab, TestLab } from "../support/lab";
import { removeStack, rootProjectStack } from "../support/pulumi";
import { inNetns, waitFor } from "../support/traffic";
import { deletedInOrder, removalOrder, upRecordingDeletes } from "./support/removal";

const LAB = "trel7";
const OCTET = 171;
const CONTAINER = "trelc7";

let lab: TestLab | undefined;
let stack: Stack | undefined;
const stackName = `rel-rm-${process.pid}`;

beforeAll(async () => {
  lab = await startTestLab(LAB, OCTET, "l3", 2);
  stack = await rootProjectStack(stackName, { "bpfnet:inventory": inventoryPath(lab.stateDir), "bpfnet:clusterCidr": "10.171.128.0/17", "bpfnet:routerDriver": "linux" });
}, 120_000);

afterAll(async () => {
  await cleanupAll([() => stack && removeStack(stack), () => spawnSync("ip", ["netns", "del", CONTAINER]), () => lab?.down()]);
}, 600_000);

test("scenario 7: removing a host removes its agent, endpoints, route, allocation and credentials in order, nothing orphaned", async () => {
  const s = stack!;
  const up = await s.up();
  expect(up.summary.result).toBe("succeeded");
  const outputs = await s.outputs();
  const prefix = outputs.networkPrefix.value as string;
  const etcd = outputs.etcdConnection.value as EtcdConnection;
  const h2 = lab!.inventory.hosts.find((h) => h.name === "h2")!;
  const h2Cidr = (outputs.podCidrs.value as Record<string, string>).h2;
  const router = lab!.inventory.router!;

  // h2 runs a container.
  spawnSync("ip", ["netns", "del", CONTAINER]);
  spawnSync("ip", ["netns", "add", CONTAINER]);
  const agent = new AgentClient(`${h2.stateDir}/agent/agent.sock`, 30_000);
  await agent.addEndpoint({ id: CONTAINER, netns: `/run/netns/${CONTAINER}` });
  const h2Keys = () => withEtcd(etcd, async (c) => Object.entries(await c.getAll().prefix(`${prefix}/`).strings()).filter(([k, v]) => /\/h2(\/|$)/.test(k) || v.includes('"h2"')).map(([k]) => k));
  const h2Principals = () =>
    withEtcd(etcd, async (c) => [...(await c.getUsers()).map((u) => `user ${u.name}`), ...(await c.getRoles()).map((r) => `role ${r.name}`)].filter((n) => n.includes(hostRoleName(prefix, "h2"))));
  await waitFor("h2's endpoint record", async () => (await h2Keys()).some((k) => k.includes(`/endpoints/v1/h2/${CONTAINER}`)));
  expect((await h2Principals()).length).toBeGreaterThanOrEqual(2); // its user and its role
  expect(inNetns(router.netns!, ["ip", "route", "show", h2Cidr]).stdout).toContain(h2.underlayIp);

  // Remove h2 from the program; record the order in which the engine finished the deletes.
  await s.setConfig("bpfnet:hosts", { value: "h1" });
  const { up: removal, deleted, ms: removalMs } = await upRecordingDeletes(s);
  expect(removal.summary.result).toBe("succeeded");
  expect({ deleted, inOrder: deletedInOrder(deleted, removalOrder("h2")) }).toEqual({ deleted, inOrder: true });

  // Nothing left: etcd keys, etcd principals, the router's route, anything on the host.
  // h1's health record about h2 is h1's to delete: its prober forgets a departed peer at its next round (default 10 s).
  await waitFor("h2's keys gone", async () => (await h2Keys()).length === 0, 35_000, 500).catch(() => undefined);
  expect(await h2Keys()).toEqual([]);
  expect(await h2Principals()).toEqual([]);
  expect(inNetns(router.netns!, ["ip", "route", "show", h2Cidr]).stdout.trim()).toBe("");
  expect(inNetns(h2.netns!, ["ip", "-o", "link"]).stdout).not.toMatch(/bpfnet_|bn[0-9a-f]{11}/);
  expect(inNetns(CONTAINER, ["ip", "-o", "link"]).stdout).not.toMatch(/eth0/);
  expect(fs.readdirSync(h2.bpffsDir).filter((f) => !f.endsWith(".debug"))).toEqual([]);
  expect(fs.existsSync(`${h2.installDir}/current`)).toBe(false);
  expect(fs.existsSync(`${h2.stateDir}/agent`)).toBe(false);
  expect(spawnSync("pgrep", ["-f", `${lab!.stateDir}/hosts/h2/.*agent`]).status).toBe(1);
  console.log(`scenario 7 (host removal): deletes in order ${deleted.join(" → ")}; ${removalMs} ms; 0 keys, 0 etcd users/roles, 0 devices, 0 pins, 0 routes left for h2`);
}, 900_000);
