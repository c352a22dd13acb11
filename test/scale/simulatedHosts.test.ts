// 200 simulated hosts (real allocator, registration on leases, 10 endpoint records each) and
// simulated agents (the agent's real watch → view → reconcile code into memory maps) against a
// 3-member etcd with TLS: every agent's tunnel map and ipcache converge on what etcd holds, a
// late agent's list gives the same maps, hosts joining and leaving and endpoints coming and
// going reach every agent, and no agent lists etcd again during the churn (bench/scale.ts runs
// the same at thousands of hosts).
import { Etcd3 } from "etcd3";
import { containerNetworkProvider } from "../../provider/network/containerNetwork";
import { connect } from "../../provider/etcd/etcdClient";
import { silentLogger } from "../../node-agent/daemon/log";
import { endpointAddress, simulatedEndpointRecord } from "../../node-agent/sim/simulatedHost";
import { Simulation, simulatedHostName, simulatedUnderlay } from "../../node-agent/sim/simulation";
import { endpointRows, etcdSimState } from "../support/simulatedState";
import { startThreeMemberEtcd, ThreeMemberEtcd } from "../support/threeMemberEtcd";

const HOSTS = 200;
const ENDPOINTS = 10;
const AGENTS = 4;
const DEADLINE_MS = 60_000;

let etcd: ThreeMemberEtcd;
let sim: Simulation;
let admin: Etcd3;
let prefix: string;

beforeAll(async () => {
  etcd = await startThreeMemberEtcd();
  admin = connect(etcd.connection);
  const c = await containerNetworkProvider.check!({} as never, { connection: etcd.connection, networkName: "tsc1", mode: "vxlan", clusterCidr: "10.0.0.0/10", hostPrefixLength: 24 } as never);
  expect(c.failures).toEqual([]);
  prefix = (await containerNetworkProvider.create(c.inputs!)).id;
  sim = new Simulation({ connection: etcd.connection, prefix, mode: "vxlan", hostsPerClient: 50, endpointsPerHost: ENDPOINTS, leaseTtlSeconds: 15, ipcache: true, log: silentLogger, coalesceMs: 50 });
}, 60_000);

afterAll(async () => {
  await sim?.stop();
  admin?.close();
  await etcd?.stop();
}, 60_000);

const fromEtcd = () => etcdSimState(admin, prefix);

test("pure helpers: endpoint addresses stay inside the pod CIDR, records carry the identity, names and underlays are unique", () => {
  expect(endpointAddress("10.1.2.0/24", 0)).toBe("10.1.2.2");
  expect(endpointAddress("10.1.2.0/24", 252)).toBe("10.1.2.254");
  expect(() => endpointAddress("10.1.2.0/24", 253)).toThrow(/does not fit/);
  expect(() => endpointAddress("10.1.2.0/24", -1)).toThrow(/does not fit/);
  // Hostile text is never taken as a CIDR.
  for (const bad of ["10.1.2.0/24; rm -rf /", "$(reboot)/24", "`id`", "10.1.2.0/24\n", "../10.1.2.0/24", "'10.1.2.0/24'"]) expect(() => endpointAddress(bad, 0)).toThrow(/not a CIDR/);
  const rec = JSON.parse(simulatedEndpointRecord("h 1;$(x)`y`", "ep0", "10.1.2.2", 300));
  expect(rec).toMatchObject({ host: "h 1;$(x)`y`", ip: "10.1.2.2", identity: 300 });
  expect(new Set(Array.from({ length: 5000 }, (_, i) => simulatedUnderlay(i))).size).toBe(5000);
  expect(simulatedHostName(42)).toBe("sim-00042");
});

test(`${HOSTS} simulated hosts converge on every simulated agent; a late agent lists the same; joins, leaves and endpoint churn reach all; no relist`, async () => {
  // Agents first: they see the ramp through their watches.
  const early = await sim.startAgents(AGENTS - 1);
  const t0 = Date.now();
  await sim.addHosts(HOSTS, 16);
  const rampMs = Date.now() - t0;
  const want = await fromEtcd();
  expect(want.tunnel.size).toBe(HOSTS);
  expect(want.endpoints.size).toBe(HOSTS * ENDPOINTS);
  const late = (await sim.startAgents(1))[0];
  const converged = () => sim.agents.every((a) => a.tunnel.size === HOSTS && endpointRows(a).size === HOSTS * ENDPOINTS);
  const deadline = Date.now() + DEADLINE_MS;
  while (!converged() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  for (const a of sim.agents) {
    expect(a.tunnel).toEqual(want.tunnel);
    expect(endpointRows(a)).toEqual(want.endpoints);
    expect(a.peers).toEqual(new Set(want.tunnel.values()));
  }
  expect(early.every((a) => a.stats.events >= HOSTS * (2 + ENDPOINTS))).toBe(true);
  expect(late.stats.listedKeys).toBe(HOSTS * (2 + ENDPOINTS)); // everything came in its one list
  expect(late.stats.events).toBe(0);

  // Churn: 5 hosts join one at a time, 5 leave, endpoints removed and added.
  sim.track(true);
  const joined: { cidr: string; at: number }[] = [];
  for (let i = 0; i < 5; i++) {
    const { host, allocatedAt } = await sim.join();
    joined.push({ cidr: host.podCidr!, at: allocatedAt });
  }
  const at = new Map(joined.map((j) => [j.cidr, j.at]));
  const joins = await sim.converge("tunnel", joined.map((j) => j.cidr), (k) => at.get(k)!, DEADLINE_MS);
  expect(joins.missing).toBe(0);
  expect(joins.latenciesMs).toHaveLength(5 * AGENTS);

  const leaving = [...sim.hosts.values()].slice(0, 5);
  const left = new Map<string, number>();
  for (const h of leaving) {
    await sim.leave(h.host);
    left.set(h.podCidr!, Date.now());
  }
  const leaves = await sim.converge("tunnel", [...left.keys()], (k) => left.get(k)!, DEADLINE_MS, true);
  expect(leaves.missing).toBe(0);
  expect(leaves.latenciesMs).toHaveLength(5 * AGENTS);

  const some = [...sim.hosts.values()].slice(10, 15);
  const removedAt = new Map<string, number>();
  for (const h of some) {
    await h.removeEndpoint(3);
    removedAt.set(`${endpointAddress(h.podCidr!, 3)}/32`, Date.now());
  }
  const removed = await sim.converge("ipcache", [...removedAt.keys()], (k) => removedAt.get(k)!, DEADLINE_MS, true);
  expect(removed.missing).toBe(0);
  const addedAt = new Map<string, number>();
  for (const h of some) {
    const { ip } = await h.addEndpoint(ENDPOINTS, 400);
    addedAt.set(`${ip}/32`, Date.now());
  }
  const added = await sim.converge("ipcache", [...addedAt.keys()], (k) => addedAt.get(k)!, DEADLINE_MS);
  expect(added.missing).toBe(0);
  expect(added.latenciesMs).toHaveLength(5 * AGENTS);
  sim.track(false);
  const p99 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.ceil(0.99 * xs.length) - 1];
  console.log(`ramp of ${HOSTS} hosts: ${rampMs} ms; p99 join ${p99(joins.latenciesMs)} ms, leave ${p99(leaves.latenciesMs)} ms, endpoint add ${p99(added.latenciesMs)} ms, remove ${p99(removed.latenciesMs)} ms`);

  // After the churn, every agent still equals etcd, and each watch listed exactly once.
  const after = await fromEtcd();
  for (const a of sim.agents) await a.settled();
  for (const a of sim.agents) {
    expect(a.tunnel).toEqual(after.tunnel);
    expect(endpointRows(a)).toEqual(after.endpoints);
    expect(a.stats.lists).toBe(3);
    expect(a.stats.compactions).toBe(0);
  }
  expect(after.tunnel.size).toBe(HOSTS);
  expect(after.endpoints.get([...addedAt.keys()][0])).toBe(400);
}, 170_000);
