/**
 * The CNI DEL with the agent down (lab tcd1, one vxlan host, a real agent, the real cnitool):
 * DEL succeeds and is queued (twice is one entry), ADD still fails clearly, hostile ids are
 * refused before any file is written, planted entries are refused without being followed, and
 * the restarted agent releases the endpoint (API, endpoint map, etcd, host device) and empties
 * the queue. The queue's pure checks are tested here too.
 *
 * Needs root, dist/ built and .tools/bin/cnitool (scripts/setup).
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { DatapathMaps, openDatapathMaps } from "../../bpf";
import { deletionQueueDir, entryFileName, MAX_QUEUE_ENTRIES, parseEntry, queueDeletion, readQueue } from "../../node-agent/cni/deletionQueue";
import { CniError, queueDeletionWhileDown } from "../../node-agent/cni/plugin";
import { withEtcd } from "../../provider/etcd/etcdClient";
import { listPrefix } from "../../provider/etcd/etcdOps";
import { endpointsDir } from "../../provider/etcd/keys";
import { startTestLab, TestLab } from "../support/lab";
import { cleanupAll } from "../support/cleanup";
import { LabEtcd, startEtcdOn } from "../agent/support/etcd";
import { addContainerNetns, checkBuilt, inNetns, LabAgent, REPO, removeContainers, seedNetwork, waitFor } from "../agent/support/agents";

const LAB = "tcd1";
const OCTET = 197;
const PREFIX = "/bpfnet/tcd1";
const CONTAINERS = ["tcdca"];
const CNITOOL = path.join(REPO, ".tools", "bin", "cnitool");
const PLUGIN = path.join(REPO, "bin", "bpfnet-cni");
const HOSTILE = ["a b", "a;reboot", "$(id)", "`id`", "a\nb", "..", "../x", "'q'", '"q"', ".hidden", "x/y"];

let lab: TestLab | undefined;
let etcd: LabEtcd | undefined;
let agent: LabAgent | undefined;
let maps: DatapathMaps | undefined;
let netconfDir: string | undefined;
const hostNs = () => lab!.inventory.hosts[0].netns!;

beforeAll(async () => {
  checkBuilt();
  lab = await startTestLab(LAB, OCTET, "vxlan", 1);
  etcd = await startEtcdOn(`10.${OCTET}.0.254`);
  await seedNetwork(etcd.connection, { prefix: PREFIX, mode: "vxlan", clusterCidr: "10.82.0.0/16", vni: 11 }, lab.inventory.hosts.map((h) => h.name));
  agent = new LabAgent(lab.inventory.hosts[0], { prefix: PREFIX, etcd: etcd.connection, leaseTtlSeconds: 10 });
  await agent.start();
  maps = openDatapathMaps(lab.inventory.hosts[0].bpffsDir);
  addContainerNetns(CONTAINERS[0]);
  netconfDir = fs.mkdtempSync(path.join(os.tmpdir(), "tcd1-netconf-"));
  fs.writeFileSync(path.join(netconfDir, "10-tcd1.conflist"), JSON.stringify({ cniVersion: "1.0.0", name: "tcd1", plugins: [{ type: "bpfnet-cni", agentSocket: agent.socket }] }));
}, 90_000);

afterAll(async () => {
  await cleanupAll([
    () => agent?.stop(),
    () => maps?.close(),
    () => removeContainers(CONTAINERS),
    () => etcd?.stop(),
    () => lab?.down(),
    () => netconfDir && fs.rmSync(netconfDir, { recursive: true, force: true }),
  ]);
}, 60_000);

const cni = (...args: string[]) =>
  spawnSync(CNITOOL, args, { env: { ...process.env, CNI_PATH: path.join(REPO, "bin"), NETCONFPATH: netconfDir! }, encoding: "utf8", timeout: 60_000 });

/** bpfnet-cni invoked directly (cnitool picks its own container id). */
const plugin = (command: string, containerId: string, ifname = "eth0") =>
  spawnSync(PLUGIN, [], {
    env: { ...process.env, CNI_COMMAND: command, CNI_CONTAINERID: containerId, CNI_NETNS: "/run/netns/tcdca", CNI_IFNAME: ifname, CNI_PATH: path.join(REPO, "bin") },
    input: JSON.stringify({ cniVersion: "1.0.0", name: "tcd1", type: "bpfnet-cni", agentSocket: agent!.socket }),
    encoding: "utf8",
    timeout: 60_000,
  });

const records = () => withEtcd(etcd!.connection, async (c) => (await listPrefix(c, endpointsDir(PREFIX, lab!.inventory.hosts[0].name))).map((kv) => kv.key));

test("DEL with the agent down succeeds and is queued; the agent's next start releases the endpoint and empties the queue", async () => {
  const add = cni("add", "tcd1", "/run/netns/tcdca");
  expect(add.status).toBe(0);
  const [ep] = await agent!.client.listEndpoints();
  expect(ep.id).toMatch(/^cnitool-/);
  expect(maps!.endpoints.get(ep.ip)).toMatchObject({ ifindex: ep.hostIfindex });
  await waitFor("the endpoint's etcd record", async () => (await records()).some((k) => k.endsWith(`/${ep.id}`)));

  await agent!.stop();
  const queue = deletionQueueDir(agent!.socket);

  // ADD still fails, clearly and with the spec's "try again later".
  const addDown = plugin("ADD", "tcdlater");
  expect(addDown.status).toBe(1);
  expect(JSON.parse(addDown.stdout)).toMatchObject({ code: 11, msg: expect.stringContaining("cannot reach the agent") });

  // DEL succeeds (twice: one entry), queued root-only.
  for (let i = 0; i < 2; i++) {
    const del = cni("del", "tcd1", "/run/netns/tcdca");
    expect(del.stdout + del.stderr).toBe("");
    expect(del.status).toBe(0);
  }
  expect(fs.readdirSync(queue)).toEqual([entryFileName(ep.id)]);
  expect(fs.statSync(queue).mode & 0o777).toBe(0o700);
  expect(fs.statSync(path.join(queue, entryFileName(ep.id))).mode & 0o777).toBe(0o600);

  // Hostile container ids and interface names: refused (code 4), nothing written anywhere.
  const outside = fs.readdirSync(path.dirname(queue)).sort();
  for (const id of HOSTILE) {
    const r = plugin("DEL", id);
    expect(r.status).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ code: 4 });
  }
  for (const ifname of ["e/../../x", "e;x", "$(id)"]) expect(JSON.parse(plugin("DEL", "okid", ifname).stdout)).toMatchObject({ code: 4 });
  expect(fs.readdirSync(queue)).toEqual([entryFileName(ep.id)]);
  expect(fs.readdirSync(path.dirname(queue)).sort()).toEqual(outside);

  // Planted entries: a symlink, an id that differs from its name, a directory, garbage.
  const victim = path.join(lab!.inventory.hosts[0].stateDir, "victim.txt");
  fs.writeFileSync(victim, JSON.stringify({ id: "victim" }));
  fs.symlinkSync(victim, path.join(queue, "victim.del"));
  fs.writeFileSync(path.join(queue, "other.del"), JSON.stringify({ id: "not-other" }));
  fs.writeFileSync(path.join(queue, "junk"), "x");
  fs.mkdirSync(path.join(queue, "dir.del"));
  // A valid entry for an endpoint this agent never had: consumed like a second DEL.
  queueDeletion(queue, "gone-already");

  await agent!.start();
  expect(await agent!.client.getEndpoint(ep.id)).toBeUndefined();
  expect(maps!.endpoints.get(ep.ip)).toBeUndefined();
  expect(inNetns(hostNs(), ["ip", "link", "show", ep.hostIfname]).status).not.toBe(0);
  expect(fs.readdirSync(queue)).toEqual(["dir.del"]); // a directory is never entered nor removed
  expect(fs.readFileSync(victim, "utf8")).toBe(JSON.stringify({ id: "victim" })); // not followed
  await waitFor("the endpoint's etcd record removed", async () => !(await records()).some((k) => k.endsWith(`/${ep.id}`)));
  const log = fs.readFileSync(agent!.logPath, "utf8");
  expect(log).toMatch(/deletion queue: endpoint deleted/);
  for (const refused of ["victim.del", "other.del", "junk", "dir.del"]) expect(log).toContain(refused);

  // The address is released: no endpoint record holds it in the agent's state any more.
  const state = JSON.parse(fs.readFileSync(path.join(lab!.inventory.hosts[0].stateDir, "endpoints.json"), "utf8"));
  expect(Object.values(state.endpoints).map((r) => (r as { ip: string }).ip)).not.toContain(ep.ip);
  // With the agent up, ADD and DEL go to it and nothing is queued.
  expect(cni("add", "tcd1", "/run/netns/tcdca").status).toBe(0);
  expect(cni("del", "tcd1", "/run/netns/tcdca").status).toBe(0);
  expect(await agent!.client.listEndpoints()).toEqual([]);
  expect(fs.readdirSync(queue)).toEqual(["dir.del"]); // the agent answered: nothing queued
}, 120_000);

test("queue entries: names and contents are checked like API ids; the queue is bounded by name", () => {
  for (const id of HOSTILE) expect(() => entryFileName(id)).toThrow(/endpoint id/);
  expect(entryFileName("c1.net1")).toBe("c1.net1.del");
  expect(parseEntry("c1.del", JSON.stringify({ id: "c1", queuedAt: "t" }))).toEqual({ id: "c1", queuedAt: "t" });
  expect(parseEntry("c1.del", JSON.stringify({ id: "c2" }))).toMatch(/differs/);
  expect(parseEntry(".x.del", JSON.stringify({ id: ".x" }))).toMatch(/invalid/);
  expect(parseEntry("c1", "{}")).toMatch(/not an entry/);
  expect(parseEntry("c1.del", "{")).toBe("not JSON");

  const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "tcd-queue-")), "q");
  try {
    queueDeletion(dir, "b", new Date("2026-01-02T00:00:00Z"));
    queueDeletion(dir, "a", new Date("2026-01-01T00:00:00Z"));
    queueDeletion(dir, "a", new Date("2026-01-01T00:00:00Z"));
    expect(readQueue(dir).map((e) => e.id)).toEqual(["a", "b"]); // oldest first, one per id
    fs.writeFileSync(path.join(dir, "big.del"), JSON.stringify({ id: "big", pad: "x".repeat(2000) }));
    const refused: string[] = [];
    expect(readQueue(dir, (f) => refused.push(f)).map((e) => e.id)).toEqual(["a", "b"]);
    expect(refused).toEqual(["big.del"]);
    expect(fs.existsSync(path.join(dir, "big.del"))).toBe(false);
    // Bounded: once full, a new id is refused; an id already queued may still be re-queued.
    for (let i = fs.readdirSync(dir).length; i < MAX_QUEUE_ENTRIES; i++) fs.writeFileSync(path.join(dir, `f${i}.del`), JSON.stringify({ id: `f${i}` }));
    expect(() => queueDeletion(dir, "one-more")).toThrow(/full/);
    expect(() => queueDeletion(dir, "a")).not.toThrow();
    expect(fs.readdirSync(dir)).toHaveLength(MAX_QUEUE_ENTRIES);
  } finally {
    fs.rmSync(path.dirname(dir), { recursive: true, force: true });
  }
});

test("a plugin that queued tries the agent once more: an agent that came up meanwhile gets the delete and the entry goes", async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "tcd-race-"));
  const socket = path.join(root, "agent.sock");
  const queue = deletionQueueDir(socket);
  try {
    const deleted: string[] = [];
    // The agent answers the second call (it started between the two): nothing stays queued.
    await queueDeletionWhileDown(socket, "c-up", async () => void deleted.push("c-up"));
    expect(deleted).toEqual(["c-up"]);
    expect(fs.readdirSync(queue)).toEqual([]);
    // Still down: the entry stays for the next start.
    await queueDeletionWhileDown(socket, "c-down", async () => {
      throw new Error("ECONNREFUSED");
    });
    expect(readQueue(queue).map((e) => e.id)).toEqual(["c-down"]);
    // A hostile id is refused as a bad CNI variable (code 4) before any file is made.
    for (const id of HOSTILE) await expect(queueDeletionWhileDown(socket, id, async () => undefined)).rejects.toMatchObject({ code: 4 });
    await expect(queueDeletionWhileDown(socket, "$(id)", async () => undefined)).rejects.toBeInstanceOf(CniError);
    expect(fs.readdirSync(queue)).toEqual(["c-down.del"]);
    expect(fs.readdirSync(root).sort()).toEqual(["cni-delete-queue"]);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
