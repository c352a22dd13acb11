/**
 * Reliability scenario 5 (docs/reliability.md): a host that goes away and comes back with
 * stale state never overwrites newer state. h2's agent is frozen (SIGSTOP: it keeps its
 * in-memory state and its connections, and its lease runs out); meanwhile h2 is "replaced":
 * its allocation moves to another CIDR, a newer agent's node record and endpoint records are
 * written. When the old agent resumes it must leave all of it alone: no registration write,
 * no endpoint record written or pruned, no allocation touched; it reports why.
 */
import type { Etcd3, Lease } from "etcd3";
import type { AgentStatus } from "../../node-agent/api/types";
import { connectAgentClient } from "../../node-agent/daemon/etcd";
import { endpointKey, endpointsDir, hostKey, nodeKey } from "../../provider/etcd/keys";
import { listPrefix } from "../../provider/etcd/etcdOps";
import { allocate, release } from "../../provider/ipam/ipamStore";
import { addContainerNetns, LabAgent, removeContainers, waitFor } from "../agent/support/agents";
import { AgentLab, startAgentLab } from "./support/agentLab";

const PREFIX = "/bpfnet/trel5";
const CONTAINER = "trelc5b";

let env: AgentLab | undefined;
let client: Etcd3 | undefined;
let lease: Lease | undefined;
let agents: LabAgent[] = [];
let cidrs: Record<string, string> = {};

const get = async (key: string) => (await client!.get(key).exec()).kvs[0]?.value.toString();

beforeAll(async () => {
  // The container is on h2 only: h1 joins none.
  env = await startAgentLab({ lab: "trel5", octet: 169, hosts: 2, clusterCidr: "10.99.0.0/16", leaseTtlSeconds: 5 });
  ({ agents, cidrs } = env);
  client = connectAgentClient(env.etcd.connection);
  addContainerNetns(CONTAINER);
  await agents[1].client.addEndpoint({ id: CONTAINER, netns: `/run/netns/${CONTAINER}` });
}, 120_000);

afterAll(async () => {
  await env?.down([
    () => agents[1]?.proc?.pid && process.kill(agents[1].proc.pid, "SIGCONT"),
    () => lease?.revoke(),
    () => removeContainers([CONTAINER]),
    () => client?.close(),
  ]);
}, 60_000);

test("scenario 5: a frozen agent that comes back never overwrites its replacement's registration, endpoint records or allocation", async () => {
  const [h1, h2] = agents;
  const oldRecord = endpointKey(PREFIX, "h2", CONTAINER);
  await waitFor("h2's endpoint record", async () => (await get(oldRecord)) !== undefined);

  // h2 goes away with everything it knows.
  process.kill(h2.proc!.pid!, "SIGSTOP");
  const frozenAt = Date.now();
  await waitFor("h2's node key to expire with its lease", async () => (await get(nodeKey(PREFIX, "h2"))) === undefined, 30_000);

  // Its replacement: another CIDR, a newer agent's registration and endpoint records.
  const [a, b, c] = cidrs.h2.split(".").map(Number);
  const newCidr = `${a}.${b}.${(c + 1) % 256}.0/24`;
  expect(await release(client!, { prefix: PREFIX, host: "h2", allocationId: "alloc-h2" })).toBe("released");
  expect((await allocate(client!, { prefix: PREFIX, host: "h2", allocationId: "alloc-h2-new", requestedCidr: newCidr })).podCidr).toBe(newCidr);
  const allocation = await get(hostKey(PREFIX, "h2"));
  lease = client!.lease(30);
  const replacement = JSON.stringify({ schema: 1, host: "h2", underlayIp: h2.host.underlayIp, podCidr: newCidr, agentVersion: "0.2.0", incarnation: "replacement", startedAt: new Date().toISOString() });
  await lease.put(nodeKey(PREFIX, "h2")).value(replacement);
  await client!.delete().key(oldRecord).exec();
  const newRecordKey = endpointKey(PREFIX, "h2", "newpod");
  await client!.put(newRecordKey).value(JSON.stringify({ schema: 1, host: "h2", id: "newpod", ip: newCidr.replace(/0\/24$/, "2") })).exec();
  const records = async () => new Map((await listPrefix(client!, endpointsDir(PREFIX, "h2"))).map((kv) => [kv.key, kv.value]));
  const newerRecords = await records();

  // The old agent comes back.
  process.kill(h2.proc!.pid!, "SIGCONT");
  const s = (await waitFor("h2 to see it was superseded", async () => {
    const st = await h2.status();
    return st.problems.some((p) => p.startsWith("superseded: agent replacement")) ? st : undefined;
  }, 30_000))!;
  // Let every loop of the old agent run a few times: resyncs of the endpoint records, lease renewals.
  const passes = (st: AgentStatus) => st.reconcilers.find((r) => r.name === "endpoint-records")!.passes;
  const from = passes(s);
  await waitFor("two more endpoint-record passes", async () => passes(await h2.status()) >= from + 2, 30_000);

  expect(await get(nodeKey(PREFIX, "h2"))).toBe(replacement);
  expect(await records()).toEqual(newerRecords);
  expect(await get(hostKey(PREFIX, "h2"))).toBe(allocation);
  const after = await h2.status();
  expect(after.etcd.registered).toBe(false);
  expect(after.problems.some((p) => p.startsWith(`network changed in etcd (podCidr ${cidrs.h2} → ${newCidr}`))).toBe(true);
  // The rest of the network follows the newer state: h1 routes h2's new CIDR.
  await waitFor("h1's tunnel to h2's new CIDR", async () => (await h1.status()).tunnels.some((t) => t.cidr === newCidr && t.remote === h2.host.underlayIp));
  console.log(`scenario 5 (stale host): frozen ${Math.round((Date.now() - frozenAt) / 1000)} s; after resuming: registration, ${newerRecords.size} endpoint record(s) and allocation ${newCidr} unchanged; old agent reports: ${after.problems.join(" | ")}`);
}, 180_000);
