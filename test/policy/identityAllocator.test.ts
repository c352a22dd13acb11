// The cluster-wide identity allocator against a real etcd: one number per label set shared by
// every host, reference counts, uses bound to the agent's lease, grace-period GC, restore after
// restart, concurrent hosts, and label text that must never break out of its key.
import type { Etcd3, Lease } from "etcd3";
import { connect } from "../../provider/etcd/etcdClient";
import { identitiesDir, identityIdKey } from "../../provider/etcd/keys";
import { IdentityAllocator, labelsSegment } from "../../node-agent/policy/identityAllocator";
import { startEtcd, TestEtcd } from "../support/etcd";
import { getValue, keysUnder } from "../etcd/helpers";

let etcd: TestEtcd;
let client: Etcd3;
const leases: Lease[] = [];

beforeAll(async () => {
  etcd = await startEtcd();
  client = connect(etcd.connection);
});
afterAll(async () => {
  for (const l of leases) await l.revoke().catch(() => undefined);
  client?.close();
  await etcd?.stop();
});

interface TestAgent {
  alloc: IdentityAllocator;
  /** The agent's current lease. */
  lease: Lease;
  /** A fresh lease, as the registration grants one after losing the old. */
  renew(): Promise<void>;
}

async function agent(prefix: string, host: string): Promise<TestAgent> {
  const grant = async () => {
    const lease = client.lease(30, { autoKeepAlive: true });
    leases.push(lease);
    return { lease, id: await lease.grant() };
  };
  let current = await grant();
  return {
    alloc: new IdentityAllocator(client, prefix, host, () => current.id),
    get lease() {
      return current.lease;
    },
    renew: async () => {
      current = await grant();
    },
  };
}

test("one number per label set, shared by hosts, from 256; references counted; the last release removes only this host's use", async () => {
  const P = "/bpfnet/id1";
  const a = await agent(P, "h1");
  const b = await agent(P, "h2");
  const web = await a.alloc.allocate({ app: "web" });
  expect(web).toBe(256);
  expect(await b.alloc.allocate({ app: "web" })).toBe(256);
  expect(await a.alloc.allocate({ app: "api" })).toBe(257);
  expect(await a.alloc.allocate({ app: "web" })).toBe(256); // second local reference
  expect(JSON.parse((await getValue(etcd.connection, identityIdKey(P, 256)))!)).toEqual({ schema: 1, labels: { app: "web" } });
  expect(await keysUnder(etcd.connection, `${identitiesDir(P)}value/app=web/`)).toEqual([`${P}/identities/v1/value/app=web/h1`, `${P}/identities/v1/value/app=web/h2`]);

  await a.alloc.release({ app: "web" });
  expect(await keysUnder(etcd.connection, `${identitiesDir(P)}value/app=web/`)).toHaveLength(2);
  await a.alloc.release({ app: "web" });
  expect(await keysUnder(etcd.connection, `${identitiesDir(P)}value/app=web/`)).toEqual([`${P}/identities/v1/value/app=web/h2`]);
  expect(Object.fromEntries(await a.alloc.list())).toEqual({ 256: { app: "web" }, 257: { app: "api" } });
  // Order of labels does not matter; the empty set is an identity too.
  expect(await b.alloc.allocate({ tier: "x", app: "api" })).toBe(258);
  expect(await a.alloc.allocate({ app: "api", tier: "x" })).toBe(258);
  expect(await a.alloc.allocate({})).toBe(259);
});

test("concurrent hosts allocating the same label sets agree on one distinct number each", async () => {
  const P = "/bpfnet/id2";
  const hosts = await Promise.all(["h1", "h2", "h3"].map((h) => agent(P, h)));
  const sets = Array.from({ length: 8 }, (_, i) => ({ app: `svc${i}` }));
  const results = await Promise.all(hosts.map((h) => Promise.all(sets.map((s) => h.alloc.allocate(s)))));
  expect(results[1]).toEqual(results[0]);
  expect(results[2]).toEqual(results[0]);
  expect(new Set(results[0]).size).toBe(sets.length);
  expect((await hosts[0].alloc.list()).size).toBe(sets.length);
}, 30_000);

test("uses die with the agent's lease; gc deletes a number only after the grace period, and never one in use", async () => {
  const P = "/bpfnet/id3";
  const a = await agent(P, "h1");
  const b = await agent(P, "h2");
  const gone = await a.alloc.allocate({ app: "gone" });
  const shared = await a.alloc.allocate({ app: "shared" });
  await b.alloc.allocate({ app: "shared" });
  await a.lease.revoke(); // host h1's agent died
  expect(await keysUnder(etcd.connection, `${identitiesDir(P)}value/app=gone/`)).toEqual([]);

  expect(await b.alloc.gc(1_000, 60_000)).toEqual([]); // first sighting starts the grace period
  expect(await b.alloc.gc(30_000, 60_000)).toEqual([]); // still within it
  expect(await getValue(etcd.connection, identityIdKey(P, gone))).not.toBeNull();
  expect(await b.alloc.gc(61_001, 60_000)).toEqual([gone]);
  expect(await getValue(etcd.connection, identityIdKey(P, gone))).toBeNull();
  expect(await getValue(etcd.connection, identityIdKey(P, shared))).not.toBeNull();
});

test("an orphan taken back during its grace period keeps its number and is not collected", async () => {
  const P = "/bpfnet/id4";
  const a = await agent(P, "h1");
  const b = await agent(P, "h2");
  const id = await a.alloc.allocate({ app: "blink" });
  await a.alloc.release({ app: "blink" });
  expect(await b.alloc.gc(0, 10)).toEqual([]);
  expect(await b.alloc.allocate({ app: "blink" })).toBe(id);
  expect(await b.alloc.gc(100, 10)).toEqual([]);
  expect(await getValue(etcd.connection, identityIdKey(P, id))).not.toBeNull();
});

test("restart: restore takes back held numbers under the new lease before anything is allocated; a number now meaning other labels is not", async () => {
  const P = "/bpfnet/id5";
  const old = await agent(P, "h1");
  const web = await old.alloc.allocate({ app: "web" });
  const db = await old.alloc.allocate({ app: "db" });
  await old.lease.revoke();
  // Meanwhile 'db' was collected and its number handed to other labels.
  await client.delete().key(identityIdKey(P, db)).exec();
  await client.put(identityIdKey(P, db)).value(JSON.stringify({ schema: 1, labels: { app: "other" } })).exec();

  const fresh = await agent(P, "h1");
  const restored = await fresh.alloc.restore([{ labels: { app: "web" }, id: web }, { labels: { app: "db" }, id: db }]);
  expect([...restored]).toEqual([["app=web", web]]);
  expect(await keysUnder(etcd.connection, `${identitiesDir(P)}value/app=web/`)).toEqual([`${P}/identities/v1/value/app=web/h1`]);
  const dbAgain = await fresh.alloc.allocate({ app: "db" });
  expect(dbAgain).not.toBe(db);
  expect(await fresh.alloc.allocate({ app: "web" })).toBe(web);
  expect(fresh.alloc.holdings().find((h) => h.id === web)!.refs).toBe(2);
});

test("after losing its lease the agent writes its uses again under the new one", async () => {
  const P = "/bpfnet/id6";
  const a = await agent(P, "h1");
  await a.alloc.allocate({ app: "web" });
  await a.lease.revoke();
  expect(await keysUnder(etcd.connection, `${identitiesDir(P)}value/`)).toEqual([]);
  await a.renew();
  await a.alloc.reassert();
  expect(await keysUnder(etcd.connection, `${identitiesDir(P)}value/`)).toEqual([`${P}/identities/v1/value/app=web/h1`]);
});

test("hostile label text stays inside one key segment under the network's identities", async () => {
  const P = "/bpfnet/id7";
  const a = await agent(P, "h1");
  const hostile = { "../../config": "x", app: "a/b\n$(id)`x`;'\"" };
  const seg = labelsSegment(hostile);
  expect(seg).not.toContain("/");
  expect(seg).not.toContain("\n");
  const id = await a.alloc.allocate(hostile);
  const keys = await keysUnder(etcd.connection, "/");
  expect(keys.filter((k) => k.startsWith(`${P}/`)).sort()).toEqual([identityIdKey(P, id), `${P}/identities/v1/value/${seg}/h1`].sort());
  expect(keys.some((k) => k.startsWith(`${P}/config`))).toBe(false);
  expect((await a.alloc.list()).get(id)).toEqual(hostile);
});

test("an agent without a lease refuses to allocate rather than write a use that never expires", async () => {
  const a = new IdentityAllocator(client, "/bpfnet/id8", "h1", () => undefined);
  await expect(a.allocate({ app: "x" })).rejects.toThrow(/lease/);
  expect(await keysUnder(etcd.connection, "/bpfnet/id8/")).toEqual([]);
});
