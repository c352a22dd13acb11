// HostAllocation provider methods called directly against a real etcd.
import { parseCidr, containsCidr } from "../../provider/ipam/cidr";
import { containerNetworkProvider } from "../../provider/network/containerNetwork";
import * as etcdClient from "../../provider/etcd/etcdClient";
import { EtcdConnection, withEtcd } from "../../provider/etcd/etcdClient";
import { HostAllocationInputs, HostAllocationOutputs, hostAllocationProvider as provider } from "../../provider/ipam/hostAllocation";
import * as ipamStore from "../../provider/ipam/ipamStore";
import { audit } from "../../provider/ipam/ipamStore";
import { cidrKey, hostKey } from "../../provider/etcd/keys";
import { UNKNOWN } from "../../provider/common/unknown";
import { startEtcd, TestEtcd } from "../support/etcd";
import { deleteKey, deletePrefix, dumpAll, getValue, lossyClient } from "./helpers";

let etcd: TestEtcd;
let conn: EtcdConnection;
const P = "/bpfnet/alloc";

beforeAll(async () => {
  etcd = await startEtcd();
  conn = etcd.connection;
  await network(P, "10.60.0.0/24", 28);
});
afterAll(async () => etcd?.stop());
afterEach(() => jest.restoreAllMocks());

async function network(prefix: string, clusterCidr: string, hostPrefixLength: number) {
  const c = await containerNetworkProvider.check!({} as never, { connection: conn, prefix, mode: "l3", clusterCidr, hostPrefixLength } as never);
  expect(c.failures).toEqual([]);
  return containerNetworkProvider.create(c.inputs!);
}

async function alloc(host: string, over: Partial<HostAllocationInputs> = {}, prefix = P) {
  const c = await provider.check!({} as HostAllocationInputs, { connection: conn, prefix, host, ...over } as HostAllocationInputs);
  expect(c.failures).toEqual([]);
  const r = await provider.create(c.inputs!);
  return { id: r.id, outs: r.outs!, inputs: c.inputs! };
}

async function problems(prefix = P) {
  return (await withEtcd(conn, (c) => audit(c, prefix))).problems;
}

test("create allocates a host subnet inside the pool and records both keys", async () => {
  const { id, outs } = await alloc("a1");
  expect(id).toBe(hostKey(P, "a1"));
  expect(containsCidr(parseCidr("10.60.0.0/24")!, parseCidr(outs.podCidr)!)).toBe(true);
  expect(outs.podCidr).toMatch(/\/28$/);
  const base = outs.podCidr.split("/")[0].split(".");
  expect(outs.gatewayIp).toBe([...base.slice(0, 3), String(Number(base[3]) + 1)].join("."));
  expect(outs).toMatchObject({ prefix: P, host: "a1", clusterCidr: "10.60.0.0/24", hostPrefixLength: 28 });
  expect(JSON.parse(JSON.stringify(outs))).toEqual(outs);
  const hostRec = JSON.parse((await getValue(conn, hostKey(P, "a1")))!);
  const cidrRec = JSON.parse((await getValue(conn, cidrKey(P, outs.podCidr)))!);
  expect(hostRec).toMatchObject({ schema: 1, host: "a1", cidr: outs.podCidr, allocationId: outs.allocationId });
  expect(cidrRec).toMatchObject({ schema: 1, host: "a1", allocationId: outs.allocationId });
  // The revision output is the revision that wrote the host record.
  const kv = await withEtcd(conn, (c) => c.get(hostKey(P, "a1")).exec());
  expect(Number(kv.kvs[0].mod_revision)).toBe(outs.revision);
  expect(await provider.read!(id, outs)).toEqual({ id, props: outs });
  await provider.delete!(id, outs);
  expect(await getValue(conn, hostKey(P, "a1"))).toBeNull();
  expect(await getValue(conn, cidrKey(P, outs.podCidr))).toBeNull();
  await provider.delete!(id, outs); // twice is fine
});

test("sticky: a re-run after lost state gets the same CIDR back and fences the old resource", async () => {
  const first = await alloc("s1");
  const update = await provider.update!(first.id, first.outs, first.inputs);
  expect(update.outs).toEqual(first.outs); // same allocation, nothing written
  const rerun = await alloc("s1");
  expect(rerun.outs.podCidr).toBe(first.outs.podCidr);
  expect(rerun.outs.allocationId).not.toBe(first.outs.allocationId);
  // The old resource no longer owns it: its refresh drops it, its delete releases nothing.
  expect(await provider.read!(first.id, first.outs)).toEqual({ id: "" });
  await provider.delete!(first.id, first.outs);
  expect(JSON.parse((await getValue(conn, hostKey(P, "s1")))!).allocationId).toBe(rerun.outs.allocationId);
  await provider.delete!(rerun.id, rerun.outs);
  expect(await problems()).toEqual([]);
});

test("requestedCidr: free and aligned is granted; taken, outside or different from the held one are clear errors", async () => {
  const got = await alloc("r1", { requestedCidr: "10.60.0.224/28" });
  expect(got.outs.podCidr).toBe("10.60.0.224/28");
  expect(got.outs.requestedCidr).toBe("10.60.0.224/28");
  await expect(alloc("r2", { requestedCidr: "10.60.0.224/28" })).rejects.toThrow(`requestedCidr "10.60.0.224/28" is already allocated to host "r1" in ${P}`);
  await expect(alloc("r2", { requestedCidr: "10.61.0.0/28" })).rejects.toThrow(`requestedCidr "10.61.0.0/28" is not a /28 host subnet of pool 10.60.0.0/24`);
  await expect(alloc("r2", { requestedCidr: "10.60.0.0/27" })).rejects.toThrow(`requestedCidr "10.60.0.0/27" is not a /28 host subnet of pool 10.60.0.0/24`);
  await expect(alloc("r1", { requestedCidr: "10.60.0.240/28" })).rejects.toThrow(
    `host "r1" already holds 10.60.0.224/28 (allocation ${got.outs.allocationId}); requestedCidr "10.60.0.240/28" differs: delete that allocation first`,
  );
  const c = await provider.check!({} as HostAllocationInputs, { connection: conn, prefix: P, host: "r3", requestedCidr: "10.60.0.7/28" } as HostAllocationInputs);
  expect(c.failures).toEqual([{ property: "requestedCidr", reason: `requestedCidr "10.60.0.7/28" is not aligned: host bits are set past /28 (did you mean "10.60.0.0/28"?)` }]);
  await provider.delete!(got.id, got.outs);
});

test("a pool or network that does not match is refused before anything is written", async () => {
  const before = await dumpAll(conn);
  await expect(alloc("m1", { clusterCidr: "10.61.0.0/24" })).rejects.toThrow(`clusterCidr "10.61.0.0/24" differs from the network's 10.60.0.0/24 at ${P}/config`);
  await expect(alloc("m1", { hostPrefixLength: 27 })).rejects.toThrow(`hostPrefixLength 27 differs from the network's 28 at ${P}/config`);
  await expect(alloc("m1", {}, "/bpfnet/none")).rejects.toThrow(
    "no network at /bpfnet/none/config: create the ContainerNetwork (prefix /bpfnet/none) before allocating",
  );
  expect(await dumpAll(conn)).toEqual(before);
});

test("an exhausted pool is a clear error naming the pool and its size, and writes nothing", async () => {
  const prefix = "/bpfnet/small";
  await network(prefix, "10.70.0.0/28", 30);
  const held = [];
  for (let i = 0; i < 4; i++) held.push(await alloc(`x${i}`, {}, prefix));
  expect(new Set(held.map((h) => h.outs.podCidr)).size).toBe(4);
  const before = await dumpAll(conn);
  await expect(alloc("x4", {}, prefix)).rejects.toThrow(
    `pool 10.70.0.0/28 of network ${prefix} is exhausted: all 4 /30 host subnets are allocated (host "x4" got none)`,
  );
  expect(await dumpAll(conn)).toEqual(before);
  // Released space is reusable.
  await provider.delete!(held[2].id, held[2].outs);
  expect((await alloc("x4", {}, prefix)).outs.podCidr).toBe(held[2].outs.podCidr);
});

test("refresh shows a CIDR removed by hand as gone, and `up` brings it back", async () => {
  const a = await alloc("d1");
  // CIDR key removed: the host record still names it, create repairs it.
  await deleteKey(conn, cidrKey(P, a.outs.podCidr));
  expect(await problems()).toEqual([`host d1 holds ${a.outs.podCidr} but no CIDR record exists`]);
  expect(await provider.read!(a.id, a.outs)).toEqual({ id: "" });
  const b = await alloc("d1");
  expect(b.outs.podCidr).toBe(a.outs.podCidr);
  expect(await problems()).toEqual([]);

  // Host key removed: the orphaned CIDR record of this host is reclaimed, not leaked.
  await deleteKey(conn, hostKey(P, "d1"));
  expect(await provider.read!(b.id, b.outs)).toEqual({ id: "" });
  const c = await alloc("d1");
  expect(c.outs.podCidr).toBe(a.outs.podCidr);
  expect(await problems()).toEqual([]);

  // Both removed: a fresh allocation.
  await deleteKey(conn, hostKey(P, "d1"));
  await deleteKey(conn, cidrKey(P, a.outs.podCidr));
  expect(await provider.read!(c.id, c.outs)).toEqual({ id: "" });
  const d = await alloc("d1");
  expect(d.outs.podCidr).toMatch(/^10\.60\.0\.\d+\/28$/);
  expect(await problems()).toEqual([]);

  // A hand edit of the host record to another (consistent) CIDR is read back as drift.
  await provider.delete!(d.id, d.outs);
  const e = await alloc("d1", { requestedCidr: "10.60.0.16/28" });
  await withEtcd(conn, async (cl) => {
    const rec = JSON.parse((await cl.get(hostKey(P, "d1")).string())!);
    const owner = await cl.get(cidrKey(P, "10.60.0.16/28")).string();
    await cl.put(cidrKey(P, "10.60.0.32/28")).value(owner!).exec();
    await cl.delete().key(cidrKey(P, "10.60.0.16/28")).exec();
    await cl.put(hostKey(P, "d1")).value(JSON.stringify({ ...rec, cidr: "10.60.0.32/28" })).exec();
  });
  const read = await provider.read!(e.id, e.outs);
  expect(read.props).toMatchObject({ podCidr: "10.60.0.32/28", gatewayIp: "10.60.0.33" });
  expect(read.props!.revision).toBeGreaterThan(e.outs.revision);
  await provider.delete!(e.id, read.props as HostAllocationOutputs);
  expect(await problems()).toEqual([]);
});

test("diff: host, pool or a different requested CIDR replace (delete first); connection updates in place", async () => {
  const a = await alloc("f1");
  const diff = (over: Partial<HostAllocationInputs>) => provider.diff!(a.id, a.outs, { ...a.inputs, ...over });
  expect(await diff({})).toEqual({ changes: false, replaces: [], deleteBeforeReplace: true });
  expect(await diff({ host: "f2" })).toEqual({ changes: true, replaces: ["host"], deleteBeforeReplace: true });
  expect(await diff({ clusterCidr: "10.60.0.0/24" })).toEqual({ changes: false, replaces: [], deleteBeforeReplace: true });
  expect((await diff({ clusterCidr: "10.62.0.0/24" })).replaces).toEqual(["clusterCidr"]);
  expect((await diff({ clusterCidr: UNKNOWN })).replaces).toEqual(["clusterCidr"]);
  expect((await diff({ hostPrefixLength: UNKNOWN as never })).replaces).toEqual(["hostPrefixLength"]);
  expect((await diff({ requestedCidr: "10.60.0.240/28" })).replaces).toEqual(["requestedCidr"]);
  expect(await diff({ requestedCidr: a.outs.podCidr })).toEqual({ changes: true, replaces: [], deleteBeforeReplace: true });
  expect(await diff({ connection: { endpoints: [...conn.endpoints, "http://127.0.0.1:1"] } })).toEqual({ changes: true, replaces: [], deleteBeforeReplace: true });
  expect(await diff({ connection: UNKNOWN as never })).toEqual({ changes: true, replaces: [], deleteBeforeReplace: true });
  const c = await provider.check!({} as HostAllocationInputs, { connection: UNKNOWN, prefix: UNKNOWN, host: UNKNOWN } as unknown as HostAllocationInputs);
  expect(c.failures).toEqual([]);
  await provider.delete!(a.id, a.outs);
});

describe("writes whose answer is lost", () => {
  test("the allocator re-reads and adopts its own write instead of allocating twice", async () => {
    let lossy: ReturnType<typeof lossyClient> | undefined;
    const real = etcdClient.withEtcd;
    jest.spyOn(etcdClient, "withEtcd").mockImplementation((c, fn, o) => real(c, (cl) => fn((lossy = lossyClient(cl, "apply", 1))), o));
    const a = await alloc("lost1");
    expect(lossy!.lost).toBe(1);
    jest.restoreAllMocks();
    const audited = await withEtcd(conn, (c) => audit(c, P));
    expect(audited.problems).toEqual([]);
    expect([...audited.cidrs.values()].filter((o) => o.host === "lost1")).toHaveLength(1);
    expect(audited.hosts.get("lost1")).toMatchObject({ cidr: a.outs.podCidr, allocationId: a.outs.allocationId });
    await provider.delete!(a.id, a.outs);
  });

  test("when no answer ever comes, create fails with the resource's id and allocation id so the next run adopts it", async () => {
    const real = etcdClient.withEtcd;
    const realAllocate = ipamStore.allocate;
    jest.spyOn(ipamStore, "allocate").mockImplementation((c, req) => realAllocate(c, { ...req, deadlineMs: 1000 }));
    jest.spyOn(etcdClient, "withEtcd").mockImplementation((c, fn, o) => real(c, (cl) => fn(lossyClient(cl, "partition")), o));
    const err = await alloc("lost2").then(
      () => undefined,
      (e) => e,
    );
    jest.restoreAllMocks();
    expect(err.message).toMatch(/did not finish within 1s .*a write was sent and may have been applied under allocation id [0-9a-f-]+: re-run to adopt it/);
    expect(err.id).toBe(hostKey(P, "lost2"));
    expect(err.properties).toMatchObject({ host: "lost2", podCidr: "", allocationId: expect.any(String) });
    // The engine keeps it in the state; the next `pulumi up` updates it with the same id.
    const held = JSON.parse((await getValue(conn, hostKey(P, "lost2")))!);
    expect(held.allocationId).toBe(err.properties.allocationId);
    const up = await provider.update!(err.id, err.properties, { connection: conn, prefix: P, host: "lost2" });
    expect(up.outs).toMatchObject({ podCidr: held.cidr, allocationId: held.allocationId });
    expect(await problems()).toEqual([]);
    await provider.delete!(err.id, up.outs!);
  });

  test("when the write never landed, the error says nothing was written and carries no id", async () => {
    const realAllocate = ipamStore.allocate;
    jest.spyOn(ipamStore, "allocate").mockImplementation((c, req) => realAllocate(c, { ...req, deadlineMs: 800 }));
    const dead = { endpoints: ["http://127.0.0.1:1"] };
    const err = await provider.create({ connection: dead, prefix: P, host: "nowhere" }).then(
      () => undefined,
      (e) => e,
    );
    expect(err.message).toMatch(/did not finish within 1s .*; nothing was written/);
    expect(err.id).toBeUndefined();
  });

  test("a network config write whose answer was lost is recognised as ours", async () => {
    const real = etcdClient.withEtcd;
    jest.spyOn(etcdClient, "withEtcd").mockImplementation((c, fn, o) => real(c, (cl) => fn(lossyClient(cl, "apply", 1)), o));
    const r = await network("/bpfnet/lostnet", "10.80.0.0/16", 24);
    jest.restoreAllMocks();
    expect(JSON.parse((await getValue(conn, "/bpfnet/lostnet/config"))!).networkId).toBe(r.outs!.networkId);
    await deletePrefix(conn, "/bpfnet/lostnet/");
  });
});
