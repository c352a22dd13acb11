// The agent's policy side on two "hosts" against a real etcd: identities allocated for local
// endpoints and shared across hosts, policies written by the NetworkPolicy provider reaching
// each host's computed rows and ipcache, live updates, restore after restart without new
// allocations, and release when an endpoint goes. The sink records what the datapath would get.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { Etcd3, Lease } from "etcd3";
import { connect } from "../../provider/etcd/etcdClient";
import { endpointKey, identitiesDir } from "../../provider/etcd/keys";
import { networkPolicyProvider as provider, NetworkPolicyInputs } from "../../provider/policy/networkPolicy";
import { ComputedPolicy, ENDPOINT_FLAGS as F } from "../../node-agent/policy/compute";
import { LocalEndpoint, PolicyAgent } from "../../node-agent/daemon/policy";
import { silentLogger } from "../../node-agent/daemon/log";
import { startEtcd, TestEtcd } from "../support/etcd";
import { waitFor } from "../support/traffic";
import { keysUnder } from "../etcd/helpers";

const P = "/bpfnet/tpolagent";
let etcd: TestEtcd;
let client: Etcd3;
let dir: string;
const leases: Lease[] = [];
const agents: PolicyAgent[] = [];
/** Record writes in flight: finished before etcd goes away. */
const publishing: Promise<void>[] = [];

beforeAll(async () => {
  etcd = await startEtcd();
  client = connect(etcd.connection);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "bpfnet-polagent-"));
});
afterAll(async () => {
  for (const a of agents) await a.stop();
  await Promise.allSettled(publishing);
  for (const l of leases) await l.revoke().catch(() => undefined);
  client?.close();
  await etcd?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

interface Host {
  agent: PolicyAgent;
  endpoints: LocalEndpoint[];
  last?: { computed: ComputedPolicy; ipcache: Map<string, number> };
  /** Revokes the agent's lease (its uses vanish) and grants a new one, as the registration does after losing it. */
  loseLease(): Promise<void>;
}

async function host(name: string, endpoints: LocalEndpoint[], underlay: string, other: string, gcIntervalMs = 200): Promise<Host> {
  const lease = client.lease(30, { autoKeepAlive: true });
  leases.push(lease);
  let leaseId = await lease.grant();
  let current = lease;
  const h: Host = {
    endpoints,
    loseLease: async () => {
      await current.revoke();
      current = client.lease(30, { autoKeepAlive: true });
      leases.push(current);
      leaseId = await current.grant();
    },
  } as Host;
  h.agent = new PolicyAgent({
    client,
    prefix: P,
    host: name,
    leaseId: () => leaseId,
    localEndpoints: () => h.endpoints,
    hostAddresses: () => ({ local: [underlay], remote: [other] }),
    stateFile: path.join(dir, `${name}-identities.json`),
    log: silentLogger,
    // The sink sees the policy when it was recomputed, and the ipcache's rows.
    sink: { apply: (computed, rows) => void (h.last = { computed: computed ?? h.last!.computed, ipcache: rows.rows() }) },
    // The agent's endpoint-records reconciler publishes identities; here the test does.
    onIdentities: () => void publishing.push(publish(name, h)),
    gcIntervalMs,
  });
  agents.push(h.agent);
  h.agent.start();
  return h;
}

async function publish(name: string, h: Host): Promise<void> {
  for (const e of h.endpoints) {
    const identity = h.agent.identityOf(e.id);
    if (identity !== undefined) await client.put(endpointKey(P, name, e.id)).value(JSON.stringify({ schema: 1, host: name, id: e.id, ip: e.ip, labels: e.labels, identity })).exec();
  }
}

const flagsOf = (h: Host, n: number) => h.last?.computed.endpoints.find((e) => e.endpointId === n)?.flags;

test("identities, policies, ipcache and live updates across two hosts; restore after restart; release", async () => {
  const h1 = await host("h1", [{ id: "web", number: 1, ip: "10.178.1.5", labels: { app: "web" } }, { id: "api", number: 2, ip: "10.178.1.6", labels: { app: "api" } }], "10.178.0.1", "10.178.0.2");
  const h2 = await host("h2", [{ id: "db", number: 1, ip: "10.178.2.5", labels: { app: "db" } }, { id: "intruder", number: 2, ip: "10.178.2.6", labels: {} }, { id: "web2", number: 3, ip: "10.178.2.7", labels: { app: "web" } }], "10.178.0.2", "10.178.0.1");

  await waitFor("identities for every endpoint", () => [...h1.endpoints, ...h2.endpoints].every((e) => (e.id === "web2" || e.id === "db" || e.id === "intruder" ? h2 : h1).agent.identityOf(e.id) !== undefined));
  const web = h1.agent.identityOf("web")!;
  expect(h2.agent.identityOf("web2")).toBe(web); // same labels, same number, on another host
  const ids = new Set(["web", "api"].map((e) => h1.agent.identityOf(e)).concat(["db", "intruder"].map((e) => h2.agent.identityOf(e))));
  expect(ids.size).toBe(4);
  const db = h2.agent.identityOf("db")!;

  // No policy: everything open, ipcache complete on both hosts.
  await waitFor("h1 ipcache has h2's endpoints", () => h1.last?.ipcache.get("10.178.2.5/32") === db && h1.last?.ipcache.get("10.178.2.7/32") === web);
  expect(Object.fromEntries(h1.last!.ipcache)).toMatchObject({ "10.178.0.1/32": 1, "10.178.0.2/32": 6, "10.178.1.5/32": web, "10.178.2.7/32": web });
  expect(flagsOf(h1, 2)).toBe(0);
  expect(h1.agent.endpointView("api")).toEqual({ identity: h1.agent.identityOf("api"), ingress: "open", egress: "open", policies: [] });

  // A policy through the provider reaches the host that runs the selected endpoint.
  const inputs = {
    connection: etcd.connection,
    prefix: P,
    policyName: "api-from-web",
    endpointSelector: { app: "api" },
    ingress: [{ fromEndpoints: [{ app: "web" }], toPorts: [{ port: 8080, protocol: "TCP" }] }],
  } as NetworkPolicyInputs;
  const made = await provider.create!((await provider.check!({} as NetworkPolicyInputs, inputs)).inputs!);
  await waitFor("api enforces ingress on h1", () => flagsOf(h1, 2) === F.ENFORCE_INGRESS);
  const rows = h1.last!.computed.endpoints.find((e) => e.endpointId === 2)!.entries;
  expect(rows.map((r) => [r.identity, r.dport, r.proto, r.direction])).toEqual([[web, 8080, 6, 1]]);
  expect(h1.agent.endpointView("api")).toMatchObject({ ingress: "enforced", egress: "open", policies: ["api-from-web"] });
  expect(flagsOf(h2, 1)).toBe(0);

  // Update to audit: applied live.
  const audit = { ...inputs, audit: true } as NetworkPolicyInputs;
  await provider.update!(made.id, made.outs!, (await provider.check!({} as NetworkPolicyInputs, audit)).inputs!);
  await waitFor("audit flags on h1", () => flagsOf(h1, 2) === (F.ENFORCE_INGRESS | F.AUDIT_INGRESS));
  expect(h1.agent.endpointView("api").ingress).toBe("audit");

  // Restart of h1's agent: the same identities come back, nothing new is allocated.
  const before = h1.agent.stats.allocations;
  expect(before).toBe(2);
  const apiId = h1.agent.identityOf("api");
  await h1.agent.stop();
  const h1b = await host("h1", h1.endpoints, "10.178.0.1", "10.178.0.2");
  await waitFor("h1 restarted and computed", () => flagsOf(h1b, 2) === (F.ENFORCE_INGRESS | F.AUDIT_INGRESS));
  expect(h1b.agent.identityOf("web")).toBe(web);
  expect(h1b.agent.identityOf("api")).toBe(apiId);
  expect(h1b.agent.stats.allocations).toBe(0);

  // Delete the policy: the endpoint opens again.
  await provider.delete!(made.id, made.outs!);
  await waitFor("api open again", () => flagsOf(h1b, 2) === 0);

  // h2 loses its lease: its uses vanish with it, and come back under the new lease.
  const used = await keysUnder(etcd.connection, `${identitiesDir(P)}value/`);
  expect(used.filter((k) => k.endsWith("/h2")).length).toBe(3);
  await h2.loseLease();
  expect((await keysUnder(etcd.connection, `${identitiesDir(P)}value/`)).filter((k) => k.endsWith("/h2"))).toEqual([]);
  await h2.agent.kick();
  expect((await keysUnder(etcd.connection, `${identitiesDir(P)}value/`)).filter((k) => k.endsWith("/h2")).length).toBe(3);

  // The intruder goes: h2 releases its use of the empty label set.
  h2.endpoints = h2.endpoints.filter((e) => e.id !== "intruder");
  await h2.agent.kick();
  expect(await keysUnder(etcd.connection, `${identitiesDir(P)}value/_/`)).toEqual([]);
  expect(h2.agent.identityOf("intruder")).toBeUndefined();
}, 60_000);

test("a pass another host's endpoint record caused still follows this host's endpoints (a kick lost to a race)", async () => {
  // No periodic pass during the test: only the record's event runs one.
  const h4 = await host("h4", [{ id: "solo", number: 1, ip: "10.178.4.5", labels: { app: "solo" } }], "10.178.0.4", "10.178.0.1", 600_000);
  await waitFor("h4 computed its endpoint", () => h4.last?.computed.endpoints.some((e) => e.endpointId === 1) === true);
  h4.endpoints[0].number = 9; // renumbered, and the kick that would say so never came
  await client.put(endpointKey(P, "h5", "y")).value(JSON.stringify({ schema: 1, host: "h5", id: "y", ip: "10.178.5.5", labels: {}, identity: 300 })).exec();
  await waitFor("h4's ipcache has h5's record", () => h4.last?.ipcache.get("10.178.5.5/32") === 300);
  expect(h4.last!.computed.endpoints.map((e) => e.endpointId)).toEqual([9]);
}, 60_000);
