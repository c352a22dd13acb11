// Agents watching through etcd gRPC proxies (one per rack in production, docs/scale.md): 6
// simulated agents through 2 proxies (TLS both ways) converge on exactly what etcd holds for 60
// hosts, a host's join and leave reach them all, and the members serve fewer watchers than the
// agents hold (identical watches coalesced by each proxy). Ports 23800-23801 / 23810-23811.
import { Etcd3 } from "etcd3";
import { containerNetworkProvider } from "../../provider/network/containerNetwork";
import { connect } from "../../provider/etcd/etcdClient";
import { listPrefix } from "../../provider/etcd/etcdOps";
import { ipamHostsDir, nodesDir } from "../../provider/etcd/keys";
import { silentLogger } from "../../node-agent/daemon/log";
import { Simulation, waitFor } from "../../node-agent/sim/simulation";
import { GrpcProxies, startGrpcProxies, startThreeMemberEtcd, ThreeMemberEtcd } from "../support/threeMemberEtcd";

const HOSTS = 60;
const AGENTS = 6;
const WATCHES_PER_AGENT = 3; // node records, allocations, endpoint records

let etcd: ThreeMemberEtcd;
let proxies: GrpcProxies;
let sim: Simulation;
let admin: Etcd3;

beforeAll(async () => {
  etcd = await startThreeMemberEtcd();
  proxies = await startGrpcProxies(etcd, 2);
  admin = connect(etcd.connection);
}, 90_000);

afterAll(async () => {
  await sim?.stop();
  await proxies?.stop();
  admin?.close();
  await etcd?.stop();
}, 60_000);

async function watchersOnMembers(): Promise<number> {
  let n = 0;
  for (const m of etcd.members) n += Number(/^etcd_debugging_mvcc_watcher_total ([0-9.e+]+)$/m.exec(await (await fetch(m.metricsUrl)).text())![1]);
  return n;
}

test("agents behind two proxies converge on etcd's state, see joins and leaves, and etcd carries fewer watchers than they hold", async () => {
  const c = await containerNetworkProvider.check!({} as never, { connection: etcd.connection, networkName: "tsc3", mode: "vxlan", clusterCidr: "10.0.0.0/10", hostPrefixLength: 24 } as never);
  expect(c.failures).toEqual([]);
  const prefix = (await containerNetworkProvider.create(c.inputs!)).id;
  sim = new Simulation({
    connection: etcd.connection,
    prefix,
    mode: "vxlan",
    hostsPerClient: 30,
    endpointsPerHost: 2,
    leaseTtlSeconds: 15,
    ipcache: true,
    log: silentLogger,
    coalesceMs: 50,
    agentEndpoints: proxies.endpoints,
  });
  const agents = await sim.startAgents(AGENTS);
  await sim.addHosts(HOSTS, 8);
  const underlays = new Map((await listPrefix(admin, nodesDir(prefix))).map((kv) => [kv.key.slice(nodesDir(prefix).length), JSON.parse(kv.value).underlayIp as string]));
  const want = new Map((await listPrefix(admin, ipamHostsDir(prefix))).map((kv) => JSON.parse(kv.value) as { host: string; cidr: string }).map((r) => [r.cidr, underlays.get(r.host)!]));
  expect(want.size).toBe(HOSTS);
  await waitFor(() => agents.every((a) => a.tunnel.size === HOSTS), 60_000, "every agent's tunnel map");
  for (const a of agents) expect(new Map(a.tunnel)).toEqual(want);

  const j = await sim.join();
  await waitFor(() => agents.every((a) => a.tunnel.has(j.host.podCidr!)), 30_000, "the joined host on every agent");
  await sim.leave(j.host.host);
  await waitFor(() => agents.every((a) => !a.tunnel.has(j.host.podCidr!)), 30_000, "the leaver gone from every agent");

  // Every agent holds its watches, but each proxy forwards identical ones as one upstream watch.
  let watchers = await watchersOnMembers();
  for (const deadline = Date.now() + 20_000; watchers >= AGENTS * WATCHES_PER_AGENT && Date.now() < deadline; ) {
    await new Promise((r) => setTimeout(r, 200));
    watchers = await watchersOnMembers();
  }
  expect(watchers).toBeLessThan(AGENTS * WATCHES_PER_AGENT);
  process.stderr.write(`watchers on the members: ${watchers} for ${AGENTS * WATCHES_PER_AGENT} agent watches through 2 proxies\n`);
  for (const a of agents) expect(a.stats.lists).toBe(WATCHES_PER_AGENT); // listed once each, no relist
}, 180_000);
