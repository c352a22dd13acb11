// The agent's own watch loop and registration against a real etcd. The watcher's client goes
// through a TCP proxy the test can cut, so disconnects are real broken connections; etcd's
// history is compacted while the watcher is away.
import * as net from "net";
import type { Etcd3 } from "etcd3";
import { connectAgentClient } from "../../node-agent/daemon/etcd";
import { silentLogger } from "../../node-agent/daemon/log";
import { Registration } from "../../node-agent/daemon/registration";
import { PrefixWatch, WatchBatch } from "../../node-agent/daemon/watch";
import { listPrefix } from "../../provider/etcd/etcdOps";
import { freePort, startEtcd, TestEtcd } from "../support/etcd";
import { waitFor } from "./support/agents";

/** A TCP proxy that can drop every connection and refuse new ones until restored. */
class CuttableProxy {
  private readonly sockets = new Set<net.Socket>();
  private down = false;
  private server: net.Server | undefined;
  port = 0;

  constructor(private readonly target: { host: string; port: number }) {}

  async start(): Promise<void> {
    this.port = await freePort();
    this.server = net.createServer((client) => {
      if (this.down) return void client.destroy();
      const upstream = net.connect(this.target);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on("close", () => this.sockets.delete(s));
        s.on("error", () => undefined);
      }
      client.pipe(upstream).pipe(client);
      client.on("close", () => upstream.destroy());
      upstream.on("close", () => client.destroy());
    });
    await new Promise<void>((resolve) => this.server!.listen(this.port, "127.0.0.1", resolve));
  }

  cut(): void {
    this.down = true;
    for (const s of this.sockets) s.destroy();
  }

  restore(): void {
    this.down = false;
  }

  async stop(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }
}

const PREFIX = "/tagt/watch/";
let etcd: TestEtcd;
let proxy: CuttableProxy;
let direct: Etcd3;
let viaProxy: Etcd3;
let watch: PrefixWatch;
const batches: WatchBatch[] = [];

const put = async (key: string, value: string) => Number((await direct.put(key).value(value).exec()).header.revision);
const del = async (key: string) => Number((await direct.delete().key(key).exec()).header.revision);
const watchEvents = () => batches.filter((b) => !b.relist).flatMap((b) => b.events);

beforeAll(async () => {
  etcd = await startEtcd();
  const u = new URL(etcd.endpoints[0]);
  proxy = new CuttableProxy({ host: u.hostname, port: Number(u.port) });
  await proxy.start();
  direct = connectAgentClient(etcd.connection);
  viaProxy = connectAgentClient({ endpoints: [`http://127.0.0.1:${proxy.port}`] });
});

afterAll(async () => {
  await watch?.stop();
  viaProxy?.close();
  direct?.close();
  await proxy?.stop();
  await etcd?.stop();
});

test("lists, then resumes from the last event's revision + 1 after a disconnect", async () => {
  await put(`${PREFIX}k1`, "v1");
  await put(`${PREFIX}k2`, "v2");
  watch = new PrefixWatch({ client: viaProxy, prefix: PREFIX, onBatch: (b) => batches.push(b), log: silentLogger, backoff: { initialMs: 50, maxMs: 500 } });
  watch.start();
  await waitFor("the first list", () => watch.synced && watch.isConnected);
  expect(batches[0].relist).toBe(true);
  expect(batches[0].events.map((e) => `${e.type} ${e.key}`)).toEqual([`put ${PREFIX}k1`, `put ${PREFIX}k2`]);
  expect(watch.stats.watchStarts).toEqual([batches[0].revision + 1]);

  const r3 = await put(`${PREFIX}k3`, "v3");
  await waitFor("k3's event", () => watchEvents().some((e) => e.key === `${PREFIX}k3`));
  // Writes outside the prefix move etcd's revision (and response headers) past our last event.
  await put("/tagt/other/x", "1");
  await put("/tagt/other/y", "1");

  proxy.cut();
  await waitFor("the disconnect", () => watch.stats.disconnects >= 1);
  const r4 = await put(`${PREFIX}k4`, "v4");
  await del(`${PREFIX}k1`);
  await put(`${PREFIX}k2`, "v2b");
  proxy.restore();

  await waitFor("the events written while away", () => watchEvents().some((e) => e.key === `${PREFIX}k2`), 20_000);
  expect(watch.stats.lastEventRevisionAtDisconnect[0]).toBe(r3);
  // The resume point: last event + 1, not the header revision (which was r3 + 2 by then).
  expect(watch.stats.watchStarts[1]).toBe(r3 + 1);
  expect(watch.stats.lists).toBe(1);
  expect(watchEvents().map((e) => `${e.type} ${e.key.slice(PREFIX.length)} @${e.modRevision}`)).toEqual([
    `put k3 @${r3}`,
    `put k4 @${r4}`,
    `delete k1 @${r4 + 1}`,
    `put k2 @${r4 + 2}`,
  ]);
}, 60_000);

test("after a compaction it lists again, reports vanished keys as deleted, and watches from the list's revision + 1", async () => {
  const eventsBefore = watchEvents().length;
  proxy.cut();
  await waitFor("the disconnect", () => watch.stats.disconnects >= 2);
  await del(`${PREFIX}k2`);
  await put(`${PREFIX}k4`, "v4b");
  await put(`${PREFIX}k5`, "v5");
  const compactAt = await put("/tagt/other/z", "1");
  await direct.kv.compact({ revision: String(compactAt), physical: true });
  proxy.restore();

  await waitFor("the relist", () => watch.stats.lists === 2, 20_000);
  expect(watch.stats.compactions).toBe(1);
  const relist = batches.filter((b) => b.relist)[1];
  expect(relist.events.map((e) => `${e.type} ${e.key.slice(PREFIX.length)}`)).toEqual(["delete k2", "put k4", "put k5"]);
  await waitFor("the new watch", () => watch.isConnected);
  expect(watch.stats.watchStarts[watch.stats.watchStarts.length - 1]).toBe(relist.revision + 1);
  expect(watchEvents().length).toBe(eventsBefore); // nothing came twice as watch events

  const r6 = await put(`${PREFIX}k6`, "v6");
  await waitFor("an event after the relist", () => watchEvents().some((e) => e.key === `${PREFIX}k6` && e.modRevision === r6));
  const truth = new Map((await listPrefix(direct, PREFIX)).map((kv) => [kv.key, kv.value]));
  expect(watch.snapshot()).toEqual(truth);
}, 60_000);

test("a lost registration lease is replaced and the key written again", async () => {
  const key = "/tagt/reg/state/nodes/v1/h1";
  const reg = new Registration(direct, key, () => JSON.stringify({ host: "h1" }), 3, silentLogger);
  reg.start();
  try {
    await waitFor("the registration", () => reg.registered);
    const first = reg.currentLeaseId!;
    const kv = await direct.get(key).exec();
    expect(kv.kvs[0].lease).toBe(first);
    // Revoking the lease behind the agent's back deletes the key, as an expiry would.
    await direct.leaseClient.leaseRevoke({ ID: first });
    expect((await direct.get(key).exec()).kvs).toHaveLength(0);
    await waitFor("a new lease and key", async () => {
      const now = await direct.get(key).exec();
      return reg.registered && now.kvs.length === 1 && now.kvs[0].lease !== first;
    }, 20_000);
    expect(reg.stats.leasesLost).toBe(1);
    expect(reg.stats.leasesGranted).toBe(2);
  } finally {
    await reg.stop();
  }
  // stop() releases without revoking: the key outlives the agent until the TTL runs out.
  expect((await direct.get(key).exec()).kvs).toHaveLength(1);
  await waitFor("the key to expire with its lease", async () => (await direct.get(key).exec()).kvs.length === 0, 15_000);
}, 60_000);
