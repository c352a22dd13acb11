// The allocator's free-slot hint: the slot choice (pure), and against a real etcd: a pool filled
// to the last slot by 8 concurrent lanes with no duplicate, a hint made stale by another
// allocator and by a release still never duplicates and finds the freed slot, and a host whose
// key was deleted by hand gets its orphaned CIDR back (nothing leaks).
import { Etcd3 } from "etcd3";
import { containerNetworkProvider } from "../../provider/network/containerNetwork";
import { connect, EtcdConnection } from "../../provider/etcd/etcdClient";
import { listPrefix } from "../../provider/etcd/etcdOps";
import { hostKey, ipamHostsDir } from "../../provider/etcd/keys";
import { allocate, audit, isIpamError, release } from "../../provider/ipam/ipamStore";
import { newHint, slotFreed, slotTaken, takeSlot, unreserveSlot } from "../../provider/ipam/freeSlotHint";
import { startEtcd, TestEtcd } from "../support/etcd";

let etcd: TestEtcd;
let conn: EtcdConnection;
let client: Etcd3;
beforeAll(async () => {
  etcd = await startEtcd({ tls: true });
  conn = etcd.connection;
  client = connect(conn);
});
afterAll(async () => {
  client?.close();
  await etcd?.stop();
});

async function network(name: string, clusterCidr: string, hostPrefixLength: number): Promise<string> {
  const c = await containerNetworkProvider.check!({} as never, { connection: conn, networkName: name, mode: "vxlan", clusterCidr, hostPrefixLength } as never);
  expect(c.failures).toEqual([]);
  return (await containerNetworkProvider.create(c.inputs!)).id;
}

async function cidrsOf(prefix: string): Promise<string[]> {
  return (await listPrefix(client, ipamHostsDir(prefix))).map((kv) => JSON.parse(kv.value).cidr as string);
}

test("slot choice: the preferred slot when free, else the next from the cursor; reserved slots are skipped; none when all are taken", () => {
  const h = newHint("pool", 8, [1, 2], () => 0.25); // cursor 2
  expect(takeSlot(h, 0)).toBe(0);
  expect(takeSlot(h, 0)).toBe(3); // 0 reserved, cursor at 2 (taken) → 3
  expect(takeSlot(h, 1)).toBe(4);
  unreserveSlot(h, 3);
  slotTaken(h, 0);
  slotTaken(h, 4);
  expect(takeSlot(h, 3)).toBe(3);
  for (const i of [5, 6, 7]) expect(takeSlot(h, i)).toBe(i);
  expect(takeSlot(h, 0)).toBeUndefined();
  slotFreed(h, 1);
  expect(takeSlot(h, 0)).toBe(1);
});

test("8 lanes fill a 256-slot pool to the last slot: no duplicate, audit clean, then exhausted", async () => {
  const prefix = await network("hint-full", "10.70.0.0/16", 24);
  const hosts = Array.from({ length: 256 }, (_, i) => `h${i}`);
  const lanes = Array.from({ length: 8 }, () => connect(conn));
  try {
    await Promise.all(
      lanes.map(async (c) => {
        for (let h = hosts.shift(); h !== undefined; h = hosts.shift()) await allocate(c, { prefix, host: h, allocationId: `${h}-id` });
      }),
    );
  } finally {
    lanes.forEach((c) => c.close());
  }
  const cidrs = await cidrsOf(prefix);
  expect(cidrs).toHaveLength(256);
  expect(new Set(cidrs).size).toBe(256);
  expect((await audit(client, prefix)).problems).toEqual([]);
  const full = await allocate(client, { prefix, host: "one-too-many", allocationId: "x" }).catch((e) => e);
  expect(isIpamError(full) && full.code).toBe("exhausted");
});

test("a hint made stale by another allocator and by a release never duplicates, and finds the freed slot", async () => {
  const prefix = await network("hint-stale", "10.71.0.0/20", 24); // 16 slots
  await allocate(client, { prefix, host: "a0", allocationId: "a0" }); // this process's hint is made here
  // Another allocator (no hint: another process as far as this one knows) takes 10 slots.
  for (let i = 0; i < 10; i++) await allocate(client, { prefix, host: `other${i}`, allocationId: `o${i}`, hint: false });
  for (let i = 1; i < 5; i++) await allocate(client, { prefix, host: `a${i}`, allocationId: `a${i}` });
  let cidrs = await cidrsOf(prefix);
  expect(new Set(cidrs).size).toBe(15);
  // A release by another client frees a slot this hint believes taken: the pool looks full to
  // the hint, the full path finds the slot.
  const freed = JSON.parse((await client.get(hostKey(prefix, "other3")).string())!).cidr as string;
  const other = connect(conn);
  await release(other, { prefix, host: "other3", allocationId: "o3" });
  other.close();
  await allocate(client, { prefix, host: "a5", allocationId: "a5" });
  await allocate(client, { prefix, host: "a6", allocationId: "a6" });
  cidrs = await cidrsOf(prefix);
  expect(cidrs).toHaveLength(16);
  expect(cidrs).toContain(freed); // 16 hosts in 16 slots: the freed one was found
  expect(new Set(cidrs).size).toBe(16);
  expect((await audit(client, prefix)).problems).toEqual([]);
});

test("a host whose key was deleted by hand gets its orphaned CIDR back through the hinted path", async () => {
  const prefix = await network("hint-orphan", "10.72.0.0/16", 24);
  const first = await allocate(client, { prefix, host: "o1", allocationId: "id1" });
  await allocate(client, { prefix, host: "o2", allocationId: "id2" });
  await client.delete().key(hostKey(prefix, "o1"));
  const again = await allocate(client, { prefix, host: "o1", allocationId: "id3" });
  expect(again.podCidr).toBe(first.podCidr);
  expect(again.outcome).toBe("reclaimed");
  expect((await audit(client, prefix)).problems).toEqual([]);
  const cidrs = await cidrsOf(prefix);
  expect(new Set(cidrs).size).toBe(2);
});

test("concurrent allocations of one host (a retry racing the first) in one burst with others: one CIDR for it, no error, no duplicate", async () => {
  const prefix = await network("hint-same", "10.73.0.0/16", 24);
  const calls = [
    ...Array.from({ length: 4 }, () => allocate(client, { prefix, host: "twin", allocationId: "twin-id" })),
    ...Array.from({ length: 20 }, (_, i) => allocate(client, { prefix, host: `n${i}`, allocationId: `n${i}` })),
  ];
  const results = await Promise.all(calls);
  expect(new Set(results.slice(0, 4).map((r) => r.podCidr)).size).toBe(1);
  const cidrs = await cidrsOf(prefix);
  expect(cidrs).toHaveLength(21);
  expect(new Set(cidrs).size).toBe(21);
  expect((await audit(client, prefix)).problems).toEqual([]);
});
