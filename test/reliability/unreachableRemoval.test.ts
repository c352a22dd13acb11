/**
 * Reliability scenario 7, second half (docs/reliability.md): removing a host that cannot be
 * reached, through the real CLI on a 2-host l3 lab (the root project). h2's sshd is killed while
 * its agent keeps running (a host that is cut off, or compromised, and may come back). `pulumi
 * up` with `bpfnet:unreachable = h2` must only record the mark (no SSH); `pulumi up` without h2
 * must then remove its route, allocation and credentials, revoke its etcd identity with the admin
 * connection, and write <prefix>/state/removed/v1/h2 listing what stays on h2. h2's old
 * credentials are refused afterwards; h1 keeps working.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import { Stack } from "@pulumi/pulumi/automation";
import { inventoryPath } from "../../lab/lab";
import { AgentClient } from "../../node-agent/api/client";
import { EtcdConnection, withEtcd } from "../../provider/etcd/etcdClient";
import { hostRoleName } from "../../provider/etcd/hostAccessSpec";
import { endpointKey, nodeKey, removedHostKey } from "../../provider/etcd/keys";
import type { RemovalRecord } from "../../provider/agent/removalRecord";
import { cleanupAll } from "../support/cleanup";
import { startTestLab, TestLab } from "../support/lab";
import { removeStack, rootProjectStack } from "../support/pulumi";
import { inNetns, waitFor } from "../support/traffic";
import { stopRouterSshd, waitForPort } from "../router/helpers";
import { deletedInOrder, removalOrder, upRecordingDeletes } from "./support/removal";

const LAB = "trm1";
const OCTET = 184;
const CONTAINERS = ["trm2", "trm3"]; // on h2, then on h1

let lab: TestLab | undefined;
let stack: Stack | undefined;
const stackName = `rel-unreach-${process.pid}`;

beforeAll(async () => {
  lab = await startTestLab(LAB, OCTET, "l3", 2);
  stack = await rootProjectStack(stackName, { "bpfnet:inventory": inventoryPath(lab.stateDir), "bpfnet:clusterCidr": "10.184.128.0/17", "bpfnet:routerDriver": "linux" });
}, 120_000);

afterAll(async () => {
  await cleanupAll([() => stack && removeStack(stack), ...CONTAINERS.map((c) => () => spawnSync("ip", ["netns", "del", c])), () => lab?.down()]);
}, 600_000);

test("scenario 7b: an unreachable host is marked, then removed: no SSH, credentials revoked, a record of what stays on it; the other host keeps working", async () => {
  const s = stack!;
  expect((await s.up()).summary.result).toBe("succeeded");
  const outputs = await s.outputs();
  const prefix = outputs.networkPrefix.value as string;
  const admin = outputs.etcdConnection.value as EtcdConnection;
  const cidrs = outputs.podCidrs.value as Record<string, string>;
  const [h1, h2] = ["h1", "h2"].map((n) => lab!.inventory.hosts.find((h) => h.name === n)!);
  const router = lab!.inventory.router!;
  const agentOn = (h: typeof h1) => new AgentClient(`${h.stateDir}/agent/agent.sock`, 30_000);
  const addContainer = async (h: typeof h1, id: string) => {
    spawnSync("ip", ["netns", "del", id]);
    spawnSync("ip", ["netns", "add", id]);
    await agentOn(h).addEndpoint({ id, netns: `/run/netns/${id}` });
    await waitFor(`${id}'s endpoint record`, () => withEtcd(admin, async (c) => (await c.get(endpointKey(prefix, h.name, id)).string()) !== null));
  };
  const h2Principals = () =>
    withEtcd(admin, async (c) => [...(await c.getUsers()).map((u) => `user ${u.name}`), ...(await c.getRoles()).map((r) => `role ${r.name}`)].filter((n) => n.includes(hostRoleName(prefix, "h2"))));
  await addContainer(h2, CONTAINERS[0]);
  const h2Before = await h2Principals();
  expect(h2Before.length).toBeGreaterThanOrEqual(2); // its user and its role

  // h2 becomes unreachable: its sshd (listener and sessions) dies; its agent keeps running.
  await stopRouterSshd({ netns: h2.netns });
  await expect(waitForPort(h2.ssh.host, h2.ssh.port, 1000)).rejects.toThrow();
  expect(spawnSync("pgrep", ["-f", `${lab!.stateDir}/hosts/h2/.*agent`]).status).toBe(0);

  // Step 1: the mark. Only state changes: the agent resource is updated without SSH.
  await s.setConfig("bpfnet:unreachable", { value: "h2" });
  const warnings: string[] = [];
  const ops: Record<string, string> = {};
  const mark = await s.up({
    onEvent: (e) => {
      if (e.diagnosticEvent?.severity === "warning") warnings.push(e.diagnosticEvent.message);
      const m = e.resOutputsEvent?.metadata;
      if (m) ops[m.urn.split("::").pop()!] = m.op;
    },
  });
  expect(mark.summary.result).toBe("succeeded");
  expect(ops["net-agent-h2"]).toBe("update");
  expect(warnings.join("\n")).toMatch(/host h2 is marked unreachable: bpfnet no longer contacts it/);

  // Step 2: the removal, in dependency order, while h2 is still unreachable.
  await s.setConfig("bpfnet:hosts", { value: "h1" });
  const t0 = Date.now();
  const { up: removal, deleted, ms: removalMs } = await upRecordingDeletes(s);
  expect(removal.summary.result).toBe("succeeded");
  expect({ deleted, inOrder: deletedInOrder(deleted, removalOrder("h2")) }).toEqual({ deleted, inOrder: true });

  // The record, written with the admin identity: who, when, why, what was revoked, what stays on h2.
  const raw = await withEtcd(admin, (c) => c.get(removedHostKey(prefix, "h2")).string());
  const record = JSON.parse(raw ?? "null") as RemovalRecord;
  expect(record).toMatchObject({ schema: 1, host: "h2", reason: expect.stringMatching(/unreachable.*no SSH/) });
  expect(Date.parse(record.removedAt)).toBeGreaterThan(t0 - 1000);
  expect(record.removedBy).toMatch(/^\S+@\S+$/);
  expect([...record.revoked].sort()).toEqual([...h2Before].sort());
  const left = record.leftOnHost;
  expect(left.paths).toEqual(expect.arrayContaining([`${h2.installDir}/current`, `${h2.stateDir}/agent`, `${h2.stateDir}/agent/agent.json`, `${h2.bpffsDir}/bpfnet_*`]));
  // What the record lists is really there: files, pins, devices, the running agent.
  for (const p of left.paths.filter((p) => !p.endsWith("*"))) expect({ p, exists: fs.existsSync(p) }).toEqual({ p, exists: true });
  expect(fs.readdirSync(h2.bpffsDir).filter((f) => f.startsWith("bpfnet_")).length).toBeGreaterThan(0);
  expect(inNetns(h2.netns!, ["ip", "-o", "link"]).stdout).toMatch(/bpfnet_host/);
  expect(left.devices).toContain("bpfnet_host");
  expect(left.cleanup.join("\n")).toContain(`agent teardown --config ${h2.stateDir}/agent/agent.json`);

  // In etcd nothing of h2 is left but the record; its user and role are gone. h1's health record
  // about h2 is h1's to delete: its prober forgets a departed peer at its next round (default 10 s).
  const h2KeysNow = () =>
    withEtcd(admin, async (c) =>
      Object.entries(await c.getAll().prefix(`${prefix}/`).strings()).filter(([k, v]) => /\/h2(\/|$)/.test(k) || v.includes('"h2"')).map(([k]) => k),
    );
  await waitFor("h2's keys gone but the removal record", async () => (await h2KeysNow()).length === 1, 35_000, 500).catch(() => undefined);
  expect(await h2KeysNow()).toEqual([removedHostKey(prefix, "h2")]);
  expect(await h2Principals()).toEqual([]);
  expect(inNetns(router.netns!, ["ip", "route", "show", cidrs.h2]).stdout.trim()).toBe("");

  // h2 comes back with its old credentials (the agent.json left on it): etcd refuses them.
  const old = (JSON.parse(fs.readFileSync(`${h2.stateDir}/agent/agent.json`, "utf8")) as { etcd: EtcdConnection }).etcd;
  await expect(withEtcd(old, (c) => c.put(nodeKey(prefix, "h2")).value("{}").exec(), { callTimeoutMs: 5000 })).rejects.toThrow(/permission denied|not found|authentication|user/i);
  await expect(withEtcd(old, (c) => c.get(`${prefix}/config`).string(), { callTimeoutMs: 5000 })).rejects.toThrow(/permission denied|not found|authentication|user/i);
  expect(await withEtcd(admin, (c) => c.get(nodeKey(prefix, "h2")).string())).toBeNull();

  // h1 keeps working: registered, routed, and its agent still writes a new endpoint.
  expect(await withEtcd(admin, (c) => c.get(nodeKey(prefix, "h1")).string())).not.toBeNull();
  expect(inNetns(router.netns!, ["ip", "route", "show", cidrs.h1]).stdout).toContain(h1.underlayIp);
  await addContainer(h1, CONTAINERS[1]);
  console.log(`scenario 7b (unreachable host removal): deletes ${deleted.join(" → ")} in ${removalMs} ms without SSH; record lists ${left.paths.length} paths; ${record.revoked.length} principals revoked; old credentials refused`);
}, 900_000);
