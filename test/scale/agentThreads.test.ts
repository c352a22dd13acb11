// Simulated agents on worker threads of their own (node-agent/sim/agentThread.ts +
// agentWorker.ts): against a real TLS etcd, two threaded agents and one in-process agent watch
// 30 simulated hosts × 5 endpoints; the threaded agents' mirror maps equal the in-process
// agent's and what etcd holds, joins/leaves/endpoint removals reach them with their timestamps,
// their stats and heap come from the worker, an exception inside a worker or a thread killed
// mid-run reaches the harness as an error (no hang), and stop() ends every thread.
import { Etcd3 } from "etcd3";
import * as path from "path";
import { containerNetworkProvider } from "../../provider/network/containerNetwork";
import { connect } from "../../provider/etcd/etcdClient";
import { silentLogger } from "../../node-agent/daemon/log";
import { reconcileObservers } from "../../node-agent/daemon/reconcile";
import { endpointAddress } from "../../node-agent/sim/simulatedHost";
import { AgentThread, workerEntry } from "../../node-agent/sim/agentThread";
import { seenKey, SimAgent, Simulation, SimulationOptions, waitFor } from "../../node-agent/sim/simulation";
import { endpointRows, etcdSimState } from "../support/simulatedState";
import { startEtcd, TestEtcd } from "../support/etcd";

const HOSTS = 30;
const ENDPOINTS = 5;
const DEADLINE_MS = 30_000;

let etcd: TestEtcd;
let admin: Etcd3;
let options: SimulationOptions;
let sim: Simulation;
let simStopped = false;
const threads: AgentThread[] = [];
/** Reconcile passes this thread's observers saw: the in-process agent's and, forwarded, the workers'. */
let observedPasses = 0;
const countPass = () => void observedPasses++;

beforeAll(async () => {
  reconcileObservers.add(countPass);
  etcd = await startEtcd({ tls: true });
  admin = connect(etcd.connection);
  const c = await containerNetworkProvider.check!({} as never, { connection: etcd.connection, networkName: "tthreads", mode: "vxlan", clusterCidr: "10.0.0.0/10", hostPrefixLength: 24 } as never);
  expect(c.failures).toEqual([]);
  const prefix = (await containerNetworkProvider.create(c.inputs!)).id;
  options = { connection: etcd.connection, prefix, mode: "vxlan", hostsPerClient: 10, endpointsPerHost: ENDPOINTS, leaseTtlSeconds: 15, ipcache: true, log: silentLogger, coalesceMs: 20, agentThreads: true };
  sim = new Simulation(options);
}, 60_000);

afterAll(async () => {
  reconcileObservers.delete(countPass);
  if (!simStopped) await sim?.stop();
  await Promise.all(threads.map((t) => t.stop()));
  admin?.close();
  await etcd?.stop();
}, 60_000);

const fromEtcd = () => etcdSimState(admin, options.prefix);

/** The ipcache without the agent's own host rows (identity 1: its own underlay differs per agent). */
const sharedRows = (a: SimAgent) => new Map([...a.ipcache].filter(([, id]) => id !== 1));
/** The agent's own host rows: its underlay address and its pod CIDR's gateway (192.168.0.1 for every simulated agent). */
const ownRows = (a: SimAgent) => [...a.ipcache].filter(([, id]) => id === 1).map(([cidr]) => cidr).sort();

test("pure: the worker's entry is the compiled file beside a compiled module, else a ts-node bootstrap that names every path exactly", () => {
  expect(workerEntry("/opt/bpfnet/dist/node-agent/sim/agentThread.js", () => "/unused")).toEqual({ script: "/opt/bpfnet/dist/node-agent/sim/agentWorker.js", eval: false });
  // Hostile directory names stay data: the bootstrap requires exactly these paths.
  const dir = "/tmp/a b;$(reboot)`id`\n'\"/../x";
  const entry = workerEntry(`${dir}/node-agent/sim/agentThread.ts`, () => `${dir}/ts-node/index.js`);
  expect(entry.eval).toBe(true);
  const calls: string[] = [];
  const registered: unknown[] = [];
  new Function("require", entry.script)((p: string) => (calls.push(p), { register: (o: unknown) => registered.push(o) }));
  expect(calls).toEqual([`${dir}/ts-node/index.js`, path.join(dir, "node-agent/sim/agentWorker.ts")]);
  expect(registered).toEqual([{ transpileOnly: true, project: path.join(dir, "tsconfig.json") }]);
});

test("pure: the convergence clocks file a key's additions and removals apart", () => {
  expect(seenKey("tunnel", "10.0.1.0/24", false)).not.toBe(seenKey("tunnel", "10.0.1.0/24", true));
  expect(seenKey("tunnel", "10.0.1.0/24", false)).not.toBe(seenKey("ipcache", "10.0.1.0/24", false));
  expect(seenKey("peers", "10.0.0.1", true)).toBe(seenKey("peers", "10.0.0.1", true));
});

test(`${HOSTS} hosts × ${ENDPOINTS} endpoints: agents on threads mirror exactly what the in-process agent and etcd hold; joins, leaves and endpoint removals reach them; stop ends the threads`, async () => {
  const threaded = await sim.startAgents(2);
  const [inProcess] = await sim.startAgents(1, DEADLINE_MS, false);
  expect(threaded.every((a) => a instanceof AgentThread)).toBe(true);
  expect(inProcess instanceof AgentThread).toBe(false);
  await sim.addHosts(HOSTS, 8);
  const want = await fromEtcd();
  expect(want.tunnel.size).toBe(HOSTS);
  expect(want.endpoints.size).toBe(HOSTS * ENDPOINTS);
  await waitFor(() => sim.agents.every((a) => a.tunnel.size === HOSTS && endpointRows(a).size === HOSTS * ENDPOINTS), DEADLINE_MS, "every agent to hold the ramp");
  for (const a of sim.agents) await a.settled();
  for (const a of threaded) {
    expect(a.tunnel).toEqual(want.tunnel);
    expect(a.peers).toEqual(new Set(want.tunnel.values()));
    expect(endpointRows(a)).toEqual(want.endpoints);
    // The whole ipcache is the in-process agent's, but for the agent's own address.
    expect(sharedRows(a)).toEqual(sharedRows(inProcess));
    expect(ownRows(a)).toHaveLength(2);
    expect(ownRows(a)).toContain("192.168.0.1/32");
    expect(a.tunnel).toEqual(inProcess.tunnel);
  }

  // Churn, timed by the workers' own clocks: joins, leaves, endpoint removals.
  sim.track(true);
  const joinedAt = new Map<string, number>();
  for (let i = 0; i < 3; i++) {
    const { host, allocatedAt } = await sim.join();
    joinedAt.set(host.podCidr!, allocatedAt);
  }
  const joins = await sim.converge("tunnel", [...joinedAt.keys()], (k) => joinedAt.get(k)!, DEADLINE_MS);
  expect(joins.missing).toBe(0);
  expect(joins.latenciesMs).toHaveLength(3 * sim.agents.length);
  const leftAt = new Map<string, number>();
  for (const h of [...sim.hosts.values()].slice(0, 3)) {
    await sim.leave(h.host);
    leftAt.set(h.podCidr!, Date.now());
  }
  const leaves = await sim.converge("tunnel", [...leftAt.keys()], (k) => leftAt.get(k)!, DEADLINE_MS, true);
  expect(leaves.missing).toBe(0);
  expect(leaves.latenciesMs).toHaveLength(3 * sim.agents.length);
  const removedAt = new Map<string, number>();
  for (const h of [...sim.hosts.values()].slice(5, 8)) {
    await h.removeEndpoint(2);
    removedAt.set(`${endpointAddress(h.podCidr!, 2)}/32`, Date.now());
  }
  const removed = await sim.converge("ipcache", [...removedAt.keys()], (k) => removedAt.get(k)!, DEADLINE_MS, true);
  expect(removed.missing).toBe(0);
  expect(removed.latenciesMs).toHaveLength(3 * sim.agents.length);
  // A host that joins and leaves while tracked: its removal is timed by the agents' removals alone.
  const { host: brief } = await sim.join();
  await waitFor(() => sim.agents.every((a) => a.tunnel.has(brief.podCidr!)), DEADLINE_MS, "the brief host's join");
  await sim.leave(brief.host);
  const briefGone = Date.now();
  const gone = await sim.converge("tunnel", [brief.podCidr!], () => briefGone, DEADLINE_MS, true);
  expect(gone.missing).toBe(0);
  expect(gone.latenciesMs).toHaveLength(sim.agents.length);
  sim.track(false);
  for (const xs of [joins.latenciesMs, leaves.latenciesMs, removed.latenciesMs]) expect(xs.every((ms) => ms >= 0 && ms < DEADLINE_MS)).toBe(true);

  const after = await fromEtcd();
  for (const a of sim.agents) await a.settled();
  await sim.refreshStats();
  for (const a of threaded) {
    expect(a.tunnel).toEqual(after.tunnel);
    expect(endpointRows(a)).toEqual(after.endpoints);
    expect(sharedRows(a)).toEqual(sharedRows(inProcess));
    // Stats from the worker: one list per watch, the ramp and churn as watch events, the maps' sizes.
    expect(a.stats.lists).toBe(3);
    expect(a.stats.events).toBe(inProcess.stats.events);
    expect(a.stats.tunnel).toBe(after.tunnel.size);
    expect(a.stats.ipcache).toBe(inProcess.ipcache.size);
    expect((a as AgentThread).startedAt).toBeLessThanOrEqual(Date.now());
  }
  // Every pass of every agent reached this thread's observers (the bench times the workers' passes so).
  expect(observedPasses).toBe(sim.agents.reduce((n, a) => n + a.stats.passes, 0));
  expect(threaded.every((a) => a.stats.passes > 0)).toBe(true);
  const heap = await (threaded[0] as AgentThread).heap();
  expect(heap.baselineBytes).toBeGreaterThan(0);
  expect(heap.usedBytes).toBeGreaterThan(heap.baselineBytes);

  const stopped = sim.agents.filter((a): a is AgentThread => a instanceof AgentThread);
  expect(stopped).toHaveLength(2);
  simStopped = true;
  await sim.stop();
  expect(stopped.every((t) => !t.running && t.error === undefined)).toBe(true);
  await expect(stopped[0].settled()).rejects.toThrow(/stopping/);
}, 90_000);

test("an exception inside a worker reaches the harness as an error, the failed start ends its threads, stop() still resolves", async () => {
  // A client certificate without its key: the worker's etcd client throws as it is built.
  const broken = new Simulation({ ...options, connection: { endpoints: etcd.endpoints, certPem: "not a certificate" } });
  await expect(broken.startAgents(2, DEADLINE_MS)).rejects.toThrow(/Certificate chain must be given with accompanying private key/);
  expect(broken.agents).toHaveLength(0);
  await broken.stop();

  const t = new AgentThread({ connection: { endpoints: etcd.endpoints, certPem: "not a certificate" }, agent: { prefix: options.prefix, host: "agent-broken", underlayIp: "10.255.0.1", mode: "vxlan", podCidr: "192.168.0.0/24", ipcache: true } });
  threads.push(t);
  await expect(waitFor(() => t.synced, DEADLINE_MS, "the broken agent", () => t.error)).rejects.toThrow(/Certificate chain/);
  await expect(t.refresh()).rejects.toThrow(/Certificate chain/);
  await t.stop();
  expect(t.running).toBe(false);
}, 60_000);

test("a thread that ends while nobody asked (killed mid-run) fails the agent: converge throws at once instead of waiting out its deadline", async () => {
  const killed = new Simulation(options);
  try {
    const [agent] = await killed.startAgents(1);
    expect(agent.synced).toBe(true);
    // The fault: the worker's thread ends under the agent, as a crash would end it.
    await (agent as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
    await waitFor(() => agent.error !== undefined, DEADLINE_MS, "the agent's failure");
    expect(agent.error!.message).toMatch(/agent-0's thread exited with code/);
    const t0 = Date.now();
    await expect(killed.converge("tunnel", ["10.63.255.0/24"], () => t0, 10 * DEADLINE_MS)).rejects.toThrow(/exited with code/);
    await expect((agent as AgentThread).refresh()).rejects.toThrow(/exited with code/);
  } finally {
    await killed.stop();
  }
  expect(killed.agents.every((a) => !(a as AgentThread).running)).toBe(true);
}, 60_000);
