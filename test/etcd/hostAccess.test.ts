// Least privilege in etcd, against a real etcd with TLS, client-cert-auth and auth on: the
// providers (EtcdAuth, EtcdHostAccess) run as the engine would call them, and the hosts use the
// agent's own etcd client, registration and watch code with their own certificates.
import type { Etcd3 } from "etcd3";
import { EtcdConnection, withEtcd } from "../../provider/etcd/etcdClient";
import { etcdAuthProvider } from "../../provider/etcd/etcdAuth";
import { etcdHostAccessProvider } from "../../provider/etcd/etcdHostAccess";
import { hostRoleName } from "../../provider/etcd/hostAccessSpec";
import { CertAndKey, certFacts, generateCa, issueClientCert, issueHostCert, issueMemberCert } from "../../provider/etcd/pki";
import { cidrKey, configKey, endpointKey, endpointsDir, healthDir, hostKey, identitiesDir, nodeKey, nodesDir } from "../../provider/etcd/keys";
import { listPrefix } from "../../provider/etcd/etcdOps";
import { connectAgentClient } from "../../node-agent/daemon/etcd";
import { Registration } from "../../node-agent/daemon/registration";
import { IdentityAllocator } from "../../node-agent/policy/identityAllocator";
import { PrefixWatch, WatchBatch } from "../../node-agent/daemon/watch";
import { createLogger, silentLogger } from "../../node-agent/daemon/log";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { startEtcd, TestEtcd } from "../support/etcd";
import { callFresh, serialize } from "../support/serialized";

jest.setTimeout(120_000);

const PREFIX = "/bpfnet/tacl";
const OTHER = "/bpfnet/tacl-other";
const DENIED = /permission denied/i;

type Outs = Record<string, any>;

async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ""}`);
}

describe("per-host etcd identities with auth on", () => {
  let etcd: TestEtcd;
  let ca: CertAndKey;
  let admin: EtcdConnection;
  const access: Record<string, Outs> = {};
  const clients: Etcd3[] = [];
  const client = (conn: EtcdConnection) => {
    const c = connectAgentClient(conn, 3000);
    clients.push(c);
    return c;
  };
  const create = async (host: string, extra: Outs = {}) => {
    const inputs = { connection: admin, networkPrefix: PREFIX, hostName: host, ca, ...extra };
    const checked = await etcdHostAccessProvider.check!({}, inputs);
    expect(checked.failures).toEqual([]);
    return (access[host] = (await etcdHostAccessProvider.create!(inputs)).outs as Outs);
  };

  beforeAll(async () => {
    ca = generateCa("tacl");
    const server = issueMemberCert(ca, "tacl", { name: "test", ips: ["127.0.0.1"] });
    const root = issueClientCert(ca, "tacl");
    etcd = await startEtcd({
      tls: true,
      tlsMaterial: { caPem: ca.certPem, serverCertPem: server.certPem, serverKeyPem: server.keyPem, clientCertPem: root.certPem, clientKeyPem: root.keyPem },
    });
    admin = etcd.connection;
    // What Pulumi writes before any agent runs: the network, two allocations, another network.
    await withEtcd(admin, async (c) => {
      await c.put(configKey(PREFIX)).value(JSON.stringify({ mode: "vxlan" })).exec();
      await c.put(hostKey(PREFIX, "h1")).value("h1 allocation").exec();
      await c.put(hostKey(PREFIX, "h2")).value("h2 allocation").exec();
      await c.put(cidrKey(PREFIX, "10.155.1.0/24")).value("owner h1").exec();
      await c.put(configKey(OTHER)).value("other network").exec();
    });
    const auth = await etcdAuthProvider.create!({ connection: admin });
    expect(auth.outs.enabled).toBe(true);
    await create("h1");
    await create("h2");
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await etcd?.stop();
  });

  test("auth is on: refresh says so, and a certificate of no known user is refused", async () => {
    const read = await etcdAuthProvider.read!("etcd-auth", { connection: admin, enabled: true });
    expect(read.props.enabled).toBe(true);
    const stranger = issueHostCert(ca, "nobody-we-know", 1);
    const c = client({ ...admin, certPem: stranger.certPem, keyPem: stranger.keyPem });
    await expect(c.get(configKey(PREFIX)).string()).rejects.toThrow(DENIED);
  });

  test("EtcdAuth is idempotent; auth turned off by hand is drift, and the next up turns it on again", async () => {
    const again = await etcdAuthProvider.update!("etcd-auth", { connection: admin, enabled: true }, { connection: admin });
    expect(again.outs.enabled).toBe(true);
    await withEtcd(admin, (c) => c.auth.authDisable());
    const h1 = client(access.h1.agentConnection);
    await h1.put(configKey(PREFIX)).value(JSON.stringify({ mode: "vxlan" })).exec(); // auth off: nothing is checked
    const read = await etcdAuthProvider.read!("etcd-auth", { connection: admin, enabled: true });
    expect(read.props.enabled).toBe(false);
    expect((await etcdAuthProvider.diff!("etcd-auth", read.props, { connection: admin })).changes).toBe(true);
    await etcdAuthProvider.update!("etcd-auth", read.props, { connection: admin });
    expect((await etcdAuthProvider.read!("etcd-auth", read.props)).props.enabled).toBe(true);
    await expect(h1.put(configKey(PREFIX)).value("{}").exec()).rejects.toThrow(DENIED);
    expect((await etcdAuthProvider.diff!("etcd-auth", { connection: admin, enabled: true }, { connection: admin })).changes).toBe(false);
  });

  test("each host's certificate names its own user, signed by the cluster's CA", () => {
    for (const h of ["h1", "h2"]) {
      const facts = certFacts(access[h].agentConnection.certPem, ca);
      expect(facts.signedByCa).toBe(true);
      expect(facts.commonName).toBe(access[h].userName);
      expect(facts.commonName.startsWith(hostRoleName(PREFIX, h))).toBe(true);
      expect(access[h].agentConnection.keyPem).toMatch(/PRIVATE KEY/);
      expect(access[h].agentConnection.certPem).not.toBe(admin.certPem);
    }
  });

  test("h2 cannot write h1's registration, the config, IPAM, h1's endpoints or another network", async () => {
    const h2 = client(access.h2.agentConnection);
    const attempts: [string, () => Promise<unknown>][] = [
      ["h1's registration", () => h2.put(nodeKey(PREFIX, "h1")).value("{}").exec()],
      ["delete h1's registration", () => h2.delete().key(nodeKey(PREFIX, "h1")).exec()],
      ["the network's config", () => h2.put(configKey(PREFIX)).value("{}").exec()],
      ["h1's allocation", () => h2.put(hostKey(PREFIX, "h1")).value("{}").exec()],
      ["its own allocation (IPAM is Pulumi's)", () => h2.put(hostKey(PREFIX, "h2")).value("{}").exec()],
      ["a CIDR's owner", () => h2.put(cidrKey(PREFIX, "10.155.1.0/24")).value("owner h2").exec()],
      ["h1's endpoints", () => h2.put(endpointKey(PREFIX, "h1", "web")).value("{}").exec()],
      ["wipe every endpoint", () => h2.delete().prefix(endpointsDir(PREFIX)).exec()],
      ["h1's health", () => h2.put(`${healthDir(PREFIX, "h1")}h2`).value("{}").exec()],
      ["another network's config", () => h2.put(configKey(OTHER)).value("{}").exec()],
      ["read another network", () => h2.get(configKey(OTHER)).string()],
      ["a key outside every network", () => h2.put("/elsewhere").value("x").exec()],
    ];
    for (const [what, attempt] of attempts) {
      await expect(attempt().then(() => `${what}: allowed`)).rejects.toThrow(DENIED);
    }
    // Nothing changed.
    await withEtcd(admin, async (c) => {
      expect(await c.get(configKey(PREFIX)).string()).toBe(JSON.stringify({ mode: "vxlan" }));
      expect(await c.get(hostKey(PREFIX, "h1")).string()).toBe("h1 allocation");
      expect(await c.get(configKey(OTHER)).string()).toBe("other network");
      expect(await c.get("/elsewhere").string()).toBeNull();
    });
  });

  test("h2's own work continues: registration on its lease (agent code), endpoints, health, identities, a watch of the network", async () => {
    const h1 = client(access.h1.agentConnection);
    const h2 = client(access.h2.agentConnection);
    const seen: WatchBatch[] = [];
    const watch = new PrefixWatch({ client: h2, prefix: nodesDir(PREFIX), onBatch: (b) => seen.push(b), log: silentLogger });
    watch.start();
    const reg1 = new Registration(h1, nodeKey(PREFIX, "h1"), () => JSON.stringify({ host: "h1" }), 5, silentLogger);
    const reg2 = new Registration(h2, nodeKey(PREFIX, "h2"), () => JSON.stringify({ host: "h2" }), 5, silentLogger);
    reg1.start();
    reg2.start();
    try {
      await waitFor("both registrations", () => reg1.registered && reg2.registered);
      // h2's watch (read access to the network) sees h1's registration.
      await waitFor("h1's registration in h2's watch", () => seen.some((b) => b.events.some((e) => e.key === nodeKey(PREFIX, "h1") && e.type === "put")));
      // h2 cannot revoke h1's lease (that would delete h1's registration).
      const h1Lease = await waitFor("h1's lease", () => reg1.currentLeaseId);
      await expect(h2.leaseClient.leaseRevoke({ ID: h1Lease })).rejects.toThrow(DENIED);

      await h2.put(endpointKey(PREFIX, "h2", "web")).value("{\"ip\":\"10.155.2.2\"}").exec();
      await h2.put(`${healthDir(PREFIX, "h2")}h1`).value("{\"ok\":true}").exec();
      await h2.put(`${identitiesDir(PREFIX)}256`).value("{\"labels\":[\"app=web\"]}").exec();
      expect((await listPrefix(h2, endpointsDir(PREFIX, "h2"))).map((kv) => kv.key)).toEqual([endpointKey(PREFIX, "h2", "web")]);
      // What teardown does: its own registration and its own endpoints, by prefix.
      await h2.delete().prefix(endpointsDir(PREFIX, "h2")).exec();
      expect(await listPrefix(h2, endpointsDir(PREFIX, "h2"))).toEqual([]);
      // The whole network is readable (config, allocations, registrations).
      const keys = (await listPrefix(h2, `${PREFIX}/`)).map((kv) => kv.key);
      expect(keys).toEqual(expect.arrayContaining([configKey(PREFIX), hostKey(PREFIX, "h1"), nodeKey(PREFIX, "h1"), nodeKey(PREFIX, "h2")]));
    } finally {
      await reg1.stop();
      await reg2.stop();
      await watch.stop();
    }
  });

  test("the identity allocator (the agent's own code) works under the hosts' roles: shared numbers, per-host uses on each lease", async () => {
    const h1 = client(access.h1.agentConnection);
    const h2 = client(access.h2.agentConnection);
    const lease1 = await h1.lease(30).grant();
    const lease2 = await h2.lease(30).grant();
    const a1 = new IdentityAllocator(h1, PREFIX, "h1", () => lease1);
    const a2 = new IdentityAllocator(h2, PREFIX, "h2", () => lease2);
    const web = await a1.allocate({ app: "tacl-web" });
    expect(await a2.allocate({ app: "tacl-web" })).toBe(web);
    const db = await a2.allocate({ app: "tacl-db" });
    expect(db).not.toBe(web);
    expect((await a1.list()).get(db)).toEqual({ app: "tacl-db" });
    await a2.release({ app: "tacl-db" });
    await a1.release({ app: "tacl-web" });
    await a2.release({ app: "tacl-web" });
  });

  test("refresh finds a user deleted or a role widened by hand; update repairs both", async () => {
    const h1 = access.h1;
    await withEtcd(admin, async (c) => {
      await c.auth.userDelete({ name: h1.userName });
      await c.auth.roleGrantPermission({ name: h1.roleName, perm: { permType: "Readwrite", key: Buffer.from(configKey(PREFIX)), range_end: Buffer.from("") } });
    });
    const read = await etcdHostAccessProvider.read!(h1.roleName, h1);
    expect(read.props!.drift).toMatch(/user .* is missing/);
    expect(read.props!.drift).toMatch(/1 extra grant/);
    const diff = await etcdHostAccessProvider.diff!(h1.roleName, read.props, { connection: admin, networkPrefix: PREFIX, hostName: "h1", ca });
    expect(diff.changes).toBe(true);
    const updated = (await etcdHostAccessProvider.update!(h1.roleName, read.props, { connection: admin, networkPrefix: PREFIX, hostName: "h1", ca })).outs as Outs;
    expect(updated.userName).toBe(h1.userName); // no rotation asked: same credentials
    expect((await etcdHostAccessProvider.read!(h1.roleName, updated)).props!.drift).toBe("");
    const c1 = client(updated.agentConnection);
    await c1.put(nodeKey(PREFIX, "h1")).value("{}").exec();
    await expect(c1.put(configKey(PREFIX)).value("{}").exec()).rejects.toThrow(DENIED);
    access.h1 = updated;
  });

  test("rotation on demand: new certificate and user, the old certificate is refused at once", async () => {
    const before = access.h1;
    const inputs = { connection: admin, networkPrefix: PREFIX, hostName: "h1", ca, rotation: "2026-11-30" };
    expect((await etcdHostAccessProvider.diff!(before.roleName, before, inputs)).changes).toBe(true);
    const after = (await etcdHostAccessProvider.update!(before.roleName, before, inputs)).outs as Outs;
    expect(after.agentConnection.certPem).not.toBe(before.agentConnection.certPem);
    expect(after.userName).not.toBe(before.userName);
    expect(certFacts(after.agentConnection.certPem).commonName).toBe(after.userName);
    await client(after.agentConnection).put(nodeKey(PREFIX, "h1")).value("{\"rotated\":true}").exec();
    await expect(client(before.agentConnection).get(configKey(PREFIX)).string()).rejects.toThrow(DENIED);
    // Nothing else is due: a second up changes nothing.
    expect((await etcdHostAccessProvider.diff!(after.roleName, after, inputs)).changes).toBe(false);
    access.h1 = after;
  });

  test("rotation near expiry: a certificate inside renewBeforeDays is re-issued by the next up", async () => {
    const short = await create("h3", { validityDays: 10, renewBeforeDays: 5 });
    const same = { connection: admin, networkPrefix: PREFIX, hostName: "h3", ca, validityDays: 10, renewBeforeDays: 5 };
    expect((await etcdHostAccessProvider.diff!(short.roleName, short, same)).changes).toBe(false);
    // The same certificate, judged with a longer renewal window: now it is due.
    const due = { ...same, renewBeforeDays: 11, validityDays: 30 };
    expect((await etcdHostAccessProvider.diff!(short.roleName, short, due)).changes).toBe(true);
    const renewed = (await etcdHostAccessProvider.update!(short.roleName, short, due)).outs as Outs;
    const days = (new Date(renewed.notAfter).getTime() - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(29);
    await client(renewed.agentConnection).put(nodeKey(PREFIX, "h3")).value("{}").exec();
    await expect(client(short.agentConnection).put(nodeKey(PREFIX, "h3")).value("{}").exec()).rejects.toThrow(DENIED);
    await etcdHostAccessProvider.delete!(renewed.roleName, renewed);
  });

  test("EtcdAuth and EtcdHostAccess run from their serialized text in a fresh process (as the provider host runs them)", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tacl-serialized-"));
    try {
      const authFile = (await serialize(dir, "auth", etcdAuthProvider)).file;
      const accessText = await serialize(dir, "access", etcdHostAccessProvider);
      expect(accessText.text).toContain('require("etcd3")');
      expect(accessText.text).toContain('require("node-forge")');
      expect(accessText.text).not.toContain("@pulumi/pulumi");
      expect((await callFresh(authFile, "read", "etcd-auth", { connection: admin, enabled: true })).props.enabled).toBe(true);
      const inputs = { connection: admin, networkPrefix: PREFIX, hostName: "h4", ca };
      const created = await callFresh(accessText.file, "create", inputs);
      expect(certFacts(created.outs.agentConnection.certPem, ca).commonName).toBe(created.outs.userName);
      const c4 = client(created.outs.agentConnection);
      await c4.put(nodeKey(PREFIX, "h4")).value("{}").exec();
      await expect(c4.put(nodeKey(PREFIX, "h1")).value("{}").exec()).rejects.toThrow(DENIED);
      expect((await callFresh(accessText.file, "read", created.id, created.outs)).props.drift).toBe("");
      await callFresh(accessText.file, "delete", created.id, created.outs);
      await expect(c4.get(configKey(PREFIX)).string()).rejects.toThrow(DENIED);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test("an etcd bpfnet did not provision (no CA key): a password user with the same role, over a transport certificate of no user", async () => {
    const transport = issueHostCert(ca, "bpfnet-agent-transport (no such user)", 30);
    const inputs = { connection: admin, networkPrefix: PREFIX, hostName: "h5", transport };
    const outs = (await etcdHostAccessProvider.create!(inputs)).outs as Outs;
    expect(outs.agentConnection).toEqual({ endpoints: admin.endpoints, caPem: admin.caPem, certPem: transport.certPem, keyPem: transport.keyPem, username: outs.userName, password: expect.any(String) });
    expect(outs.agentConnection.password.length).toBeGreaterThanOrEqual(32);
    const h5 = client(outs.agentConnection);
    await h5.put(nodeKey(PREFIX, "h5")).value("{}").exec();
    await expect(h5.put(nodeKey(PREFIX, "h1")).value("{}").exec()).rejects.toThrow(DENIED);
    await expect(h5.put(configKey(PREFIX)).value("{}").exec()).rejects.toThrow(DENIED);
    // The transport certificate alone opens nothing.
    await expect(client({ ...admin, certPem: transport.certPem, keyPem: transport.keyPem }).get(configKey(PREFIX)).string()).rejects.toThrow(DENIED);
    // Rotation changes the password and the user; the old login is refused.
    const rotated = (await etcdHostAccessProvider.update!(outs.roleName, outs, { ...inputs, rotation: "now" })).outs as Outs;
    expect(rotated.agentConnection.password).not.toBe(outs.agentConnection.password);
    await client(rotated.agentConnection).put(nodeKey(PREFIX, "h5")).value("{}").exec();
    await expect(client(outs.agentConnection).get(configKey(PREFIX)).string()).rejects.toThrow(/authentication failed|permission denied|invalid/i);
    await etcdHostAccessProvider.delete!(rotated.roleName, rotated);
  });

  test("with auth off, a per-host user is refused at create with a message saying why", async () => {
    const plain = await startEtcd();
    try {
      await expect(etcdHostAccessProvider.create!({ connection: plain.connection, networkPrefix: PREFIX, hostName: "h6" })).rejects.toThrow(
        /has authentication off, so a per-host user would not limit host h6: .*etcd.hostCredentials: "shared"/,
      );
    } finally {
      await plain.stop();
    }
  });

  test("after h2's access is deleted, h2's credentials are refused for everything", async () => {
    const h2 = client(access.h2.agentConnection);
    await h2.put(nodeKey(PREFIX, "h2")).value("{}").exec(); // still works before
    // A watch opened before the revocation (docs/security.md, limits), and h2's agent keeping
    // its registration alive on its lease (the agent's own code).
    const early: string[] = [];
    const watcher = await h2.watch().prefix(`${PREFIX}/`).create();
    watcher.on("put", (kv) => early.push(kv.key.toString()));
    const logged: string[] = [];
    const reg = new Registration(h2, nodeKey(PREFIX, "h2"), () => JSON.stringify({ host: "h2" }), 30, createLogger("warn", "h2", (l) => logged.push(l)));
    reg.start();
    await waitFor("h2 registered on its lease", () => reg.registered && reg.currentLeaseId);
    await etcdHostAccessProvider.delete!(access.h2.roleName, access.h2);
    // Its lease was revoked with it: the registration is gone and h2 cannot write it back.
    const gone = () => withEtcd(admin, (c) => c.get(nodeKey(PREFIX, "h2")).string());
    await waitFor("h2's registration gone", async () => (await gone()) === null);
    // The agent notices, tries to register again, and is refused.
    await waitFor("h2's agent refused", () => logged.some((l) => /registration failed/.test(l) && DENIED.test(l)));
    expect(await gone()).toBeNull();
    await reg.stop();
    await expect(h2.get(configKey(PREFIX)).string()).rejects.toThrow(DENIED);
    await expect(h2.put(nodeKey(PREFIX, "h2")).value("{}").exec()).rejects.toThrow(DENIED);
    await expect(h2.put(endpointKey(PREFIX, "h2", "web")).value("{}").exec()).rejects.toThrow(DENIED);
    await expect(listPrefix(h2, `${PREFIX}/`)).rejects.toThrow(DENIED);
    await withEtcd(admin, async (c) => {
      expect((await c.auth.userList()).users).not.toContain(access.h2.userName);
      expect((await c.auth.roleList()).roles).not.toContain(access.h2.roleName);
    });
    // h1 is untouched.
    await client(access.h1.agentConnection).put(nodeKey(PREFIX, "h1")).value("{}").exec();
    // etcd checks a watch's permission when it is created only: the early watch still sees h1's
    // write, which is why removing a host stops its agent before revoking its user.
    await waitFor("the early watch to see h1's write", () => early.includes(nodeKey(PREFIX, "h1")));
    await watcher.cancel();
    // Deleting again (a retried destroy) is fine.
    await etcdHostAccessProvider.delete!(access.h2.roleName, access.h2);
  });
});

describe("upgrading a deployment from before per-host identities (auth goes on under running agents)", () => {
  test("the old shared certificate loses reads and writes, its registration stays alive on its lease, and the host's own credentials take over", async () => {
    const ca = generateCa("tacl-up");
    const server = issueMemberCert(ca, "tacl-up", { name: "test", ips: ["127.0.0.1"] });
    const root = issueClientCert(ca, "tacl-up");
    const etcd = await startEtcd({
      tls: true,
      tlsMaterial: { caPem: ca.certPem, serverCertPem: server.certPem, serverKeyPem: server.keyPem, clientCertPem: root.certPem, clientKeyPem: root.keyPem },
    });
    const admin = etcd.connection;
    // Before: every agent used one client certificate whose CN is no etcd user.
    const shared = issueHostCert(ca, "tacl-up bpfnet client", 30);
    const old = connectAgentClient({ ...admin, certPem: shared.certPem, keyPem: shared.keyPem }, 3000);
    const reg = new Registration(old, nodeKey(PREFIX, "h1"), () => JSON.stringify({ host: "h1" }), 6, silentLogger);
    let fresh: Etcd3 | undefined;
    try {
      reg.start();
      await waitFor("the old agent registered", () => reg.registered);
      await etcdAuthProvider.create!({ connection: admin });
      await expect(old.put(endpointKey(PREFIX, "h1", "web")).value("{}").exec()).rejects.toThrow(DENIED);
      await expect(old.get(configKey(PREFIX)).string()).rejects.toThrow(DENIED);
      // Its keepalives still pass (etcd does not check them): the lease's remaining TTL is seen
      // to grow again after auth went on (renewed), and the registration is there.
      const lease = reg.currentLeaseId!;
      let lowest = Infinity;
      await waitFor("a keepalive accepted after auth went on", async () => {
        const left = Number((await withEtcd(admin, (c) => c.leaseClient.leaseTimeToLive({ ID: lease }))).TTL);
        expect(left).toBeGreaterThan(0); // not expired
        lowest = Math.min(lowest, left);
        return left > lowest; // it only grows again when renewed
      });
      expect(await withEtcd(admin, (c) => c.get(nodeKey(PREFIX, "h1")).string())).not.toBeNull();
      // The redeployed agent: its own credentials.
      const access = (await etcdHostAccessProvider.create!({ connection: admin, networkPrefix: PREFIX, hostName: "h1", ca })).outs as Outs;
      fresh = connectAgentClient(access.agentConnection, 3000);
      await fresh.put(endpointKey(PREFIX, "h1", "web")).value("{}").exec();
    } finally {
      await reg.stop();
      old.close();
      fresh?.close();
      await etcd.stop();
    }
  });
});
