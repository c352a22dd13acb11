// ContainerNetwork provider methods called directly against a real etcd.
import { ContainerNetworkInputs, ContainerNetworkOutputs, containerNetworkProvider as provider } from "../../provider/network/containerNetwork";
import * as etcdClient from "../../provider/etcd/etcdClient";
import { EtcdConnection, withEtcd } from "../../provider/etcd/etcdClient";
import { hostAllocationProvider } from "../../provider/ipam/hostAllocation";
import { audit } from "../../provider/ipam/ipamStore";
import { configKey, nodeKey } from "../../provider/etcd/keys";
import * as networkStore from "../../provider/network/networkStore";
import { readConfig } from "../../provider/network/networkStore";
import { UNKNOWN } from "../../provider/common/unknown";
import { startEtcd, TestEtcd } from "../support/etcd";
import { deleteKey, dumpAll, getValue, keysUnder, lossyClient, putValue } from "./helpers";

let etcd: TestEtcd;
let conn: EtcdConnection;

beforeAll(async () => {
  etcd = await startEtcd();
  conn = etcd.connection;
});
afterAll(async () => etcd?.stop());
afterEach(() => jest.restoreAllMocks());

function raw(over: Partial<ContainerNetworkInputs>): ContainerNetworkInputs {
  return { connection: conn, networkName: "dev", mode: "vxlan", clusterCidr: "10.244.0.0/16", ...over } as ContainerNetworkInputs;
}

async function checked(over: Partial<ContainerNetworkInputs>): Promise<ContainerNetworkInputs> {
  const r = await provider.check!({} as ContainerNetworkInputs, raw(over));
  expect(r.failures).toEqual([]);
  return r.inputs!;
}

async function create(over: Partial<ContainerNetworkInputs>) {
  const inputs = await checked(over);
  const r = await provider.create(inputs);
  return { inputs, id: r.id, outs: r.outs! };
}

test("create writes the versioned config; read returns it; outputs are plain JSON", async () => {
  const { id, outs } = await create({ networkName: "plain" });
  expect(id).toBe("/bpfnet/plain");
  const stored = JSON.parse((await getValue(conn, "/bpfnet/plain/config"))!);
  expect(stored).toEqual({
    schema: 1,
    networkId: outs.networkId,
    mode: "vxlan",
    clusterCidr: "10.244.0.0/16",
    hostPrefixLength: 24,
    vni: 42,
    vxlanPort: 8472,
    mtu: 1450,
    underlayMtu: 1500,
    underlayCidrs: [],
    hostAddresses: [],
  });
  expect(JSON.parse(JSON.stringify(outs))).toEqual(outs); // nothing undefined, nothing exotic
  expect(Object.values(outs).includes(undefined)).toBe(false);
  expect(outs.revision).toBeGreaterThan(0);
  const read = await provider.read!(id, outs);
  expect(read).toEqual({ id, props: outs });
});

test("every bad input fails in check with its field named, and nothing is written", async () => {
  const before = await dumpAll(conn);
  const bad: [Partial<ContainerNetworkInputs>, string, string][] = [
    [{ clusterCidr: "10.244.0.0/33" }, "clusterCidr", `clusterCidr must be an IPv4 CIDR like "10.0.0.0/16", got "10.244.0.0/33"`],
    [{ clusterCidr: "10.244.0.1/16" }, "clusterCidr", `clusterCidr "10.244.0.1/16" is not aligned: host bits are set past /16 (did you mean "10.244.0.0/16"?)`],
    [{ hostPrefixLength: 12 }, "hostPrefixLength", `hostPrefixLength 12 must be longer than the clusterCidr "10.244.0.0/16" prefix /16`],
    [{ hostPrefixLength: 31 }, "hostPrefixLength", `hostPrefixLength 31 is longer than /30: a host subnet needs a network, a gateway, a pod and a broadcast address`],
    [{ clusterCidr: "10.0.0.0/29", hostPrefixLength: 30 }, "hostPrefixLength", `hostPrefixLength 30 leaves 2 host subnets in clusterCidr "10.0.0.0/29"; at least 4 are required`],
    [{ underlayCidrs: ["10.244.8.0/24"] }, "clusterCidr", `clusterCidr "10.244.0.0/16" overlaps underlayCidrs[0] "10.244.8.0/24"`],
    [{ hostAddresses: ["10.244.0.10"] }, "clusterCidr", `clusterCidr "10.244.0.0/16" contains hostAddresses[0] "10.244.0.10"`],
    [{ serviceCidr: "10.0.0.0/8" }, "clusterCidr", `clusterCidr "10.244.0.0/16" overlaps serviceCidr "10.0.0.0/8"`],
    [{ vni: 0 }, "vni", `vni must be an integer in 1-16777215, got 0`],
    [{ vxlanPort: 65536 }, "vxlanPort", `vxlanPort must be an integer in 1-65535, got 65536`],
    [{ mtu: 1451 }, "mtu", `mtu 1451 does not fit mode "vxlan": underlayMtu 1500 minus 50 bytes of VXLAN overhead leaves at most 1450`],
    [{ mode: "ipip" }, "mode", `mode must be "vxlan" or "l3", got "ipip"`],
    [{ connection: { endpoints: [] } }, "connection", `connection.endpoints must be a non-empty list of client URLs like "https://10.0.0.5:2379", got []`],
    [{ adopt: "yes" as unknown as boolean }, "adopt", `adopt must be true or false, got "yes"`],
  ];
  for (const [over, property, reason] of bad) {
    const r = await provider.check!({} as ContainerNetworkInputs, raw({ networkName: "bad", ...over }));
    expect(r.failures).toEqual([{ property, reason }]);
    // Even if an engine called create anyway, nothing would be written.
    await expect(provider.create(r.inputs!)).rejects.toThrow(reason.slice(0, 20));
  }
  expect(await dumpAll(conn)).toEqual(before);
});

test("check and diff tolerate unknown values during preview", async () => {
  const r = await provider.check!({} as ContainerNetworkInputs, raw({ clusterCidr: UNKNOWN, connection: UNKNOWN as never, mtu: UNKNOWN as never }));
  expect(r.failures).toEqual([]);
  const { outs } = await create({ networkName: "unknowns" });
  const d = await provider.diff!("/bpfnet/unknowns", outs, { ...(await checked({ networkName: "unknowns" })), clusterCidr: UNKNOWN, mtu: UNKNOWN as never });
  expect(d).toEqual({ changes: true, replaces: ["clusterCidr"], deleteBeforeReplace: true });
});

test("diff: mode, clusterCidr, prefix or host prefix replace; the rest updates in place", async () => {
  const { outs } = await create({ networkName: "diffs" });
  const same = await checked({ networkName: "diffs" });
  const diff = (n: ContainerNetworkInputs) => provider.diff!("/bpfnet/diffs", outs, n);
  expect(await diff(same)).toEqual({ changes: false, replaces: [], deleteBeforeReplace: true });
  expect((await diff(await checked({ networkName: "diffs", mode: "l3" }))).replaces).toEqual(["mode"]);
  expect((await diff(await checked({ networkName: "diffs", clusterCidr: "10.245.0.0/16" }))).replaces).toEqual(["clusterCidr"]);
  expect((await diff(await checked({ networkName: "other" }))).replaces).toEqual(["prefix"]);
  expect((await diff(await checked({ networkName: "diffs", hostPrefixLength: 25 }))).replaces).toEqual(["hostPrefixLength"]);
  for (const over of [{ mtu: 1400 }, { vni: 7 }, { vxlanPort: 4789 }, { serviceCidr: "10.96.0.0/12" }, { hostAddresses: ["192.168.1.5"] }]) {
    expect(await diff(await checked({ networkName: "diffs", ...over }))).toEqual({ changes: true, replaces: [], deleteBeforeReplace: true });
  }
  const moved = { ...same, connection: { endpoints: [...conn.endpoints, "http://127.0.0.1:1"] } };
  expect(await diff(moved)).toEqual({ changes: true, replaces: [], deleteBeforeReplace: true });
});

test("update rewrites the config in place and bumps the revision", async () => {
  const { id, outs } = await create({ networkName: "upd" });
  const news = await checked({ networkName: "upd", mtu: 1400, vni: 9 });
  const u = await provider.update!(id, outs, news);
  expect(u.outs).toMatchObject({ mtu: 1400, vni: 9, networkId: outs.networkId });
  expect(u.outs!.revision).toBeGreaterThan(outs.revision);
  expect(JSON.parse((await getValue(conn, configKey("/bpfnet/upd")))!)).toMatchObject({ mtu: 1400, vni: 9 });
});

test("refresh shows drift: a hand edit is read back, an update restores it; a deleted config drops the resource", async () => {
  const { id, inputs, outs } = await create({ networkName: "drift" });
  const key = configKey("/bpfnet/drift");
  const edited = { ...JSON.parse((await getValue(conn, key))!), mtu: 1300 };
  await putValue(conn, key, JSON.stringify(edited));
  const read = await provider.read!(id, outs);
  expect(read.id).toBe(id);
  expect(read.props).toMatchObject({ mtu: 1300 });
  expect(read.props!.revision).toBeGreaterThan(outs.revision);
  const d = await provider.diff!(id, read.props!, inputs);
  expect(d).toEqual({ changes: true, replaces: [], deleteBeforeReplace: true });
  await provider.update!(id, read.props!, inputs);
  expect(JSON.parse((await getValue(conn, key))!).mtu).toBe(1450);

  await deleteKey(conn, key);
  expect(await provider.read!(id, outs)).toEqual({ id: "" });
  // `pulumi up` then creates it again.
  const again = await provider.create(inputs);
  expect(again.id).toBe(id);
});

test("a second network on a taken prefix is refused unless it adopts; the loser's delete leaves it alone", async () => {
  const first = await create({ networkName: "taken" });
  await expect(provider.create(await checked({ networkName: "taken", mode: "l3" }))).rejects.toThrow(
    /a network config already exists at \/bpfnet\/taken\/config \(networkId [0-9a-f-]+, mode vxlan, clusterCidr 10\.244\.0\.0\/16\): another ContainerNetwork owns this prefix/,
  );
  const second = await provider.create(await checked({ networkName: "taken", mode: "l3", adopt: true }));
  expect(second.outs!.networkId).not.toBe(first.outs.networkId);
  expect(JSON.parse((await getValue(conn, "/bpfnet/taken/config"))!).mode).toBe("l3");
  expect(await provider.read!(first.id, first.outs)).toEqual({ id: "" });
  await provider.delete!(first.id, first.outs);
  expect(await getValue(conn, "/bpfnet/taken/config")).not.toBeNull();
  await expect(provider.update!(first.id, first.outs, first.inputs)).rejects.toThrow(/now belongs to network .* another ContainerNetwork took this prefix over/);
});

test("delete refuses while host allocations remain, then removes the whole prefix and nothing else", async () => {
  const net = await create({ networkName: "gone", clusterCidr: "10.50.0.0/24", hostPrefixLength: 28 });
  const sibling = await create({ networkName: "gone2", clusterCidr: "10.50.0.0/24", hostPrefixLength: 28 });
  const allocs = [];
  for (const host of ["h1", "h2"]) allocs.push((await hostAllocationProvider.create({ connection: conn, prefix: "/bpfnet/gone", host })).outs!);
  const sib = (await hostAllocationProvider.create({ connection: conn, prefix: "/bpfnet/gone2", host: "h1" })).outs!;
  await putValue(conn, nodeKey("/bpfnet/gone", "h1"), "{}");

  await expect(provider.delete!(net.id, net.outs)).rejects.toThrow(
    "network /bpfnet/gone still has host allocations (h1, h2): delete those HostAllocation resources first (Pulumi does when they depend on this network), or remove /bpfnet/gone/ipam/v1/hosts/ by hand",
  );
  for (const a of allocs) await hostAllocationProvider.delete!(a.hostKey, a);
  await provider.delete!(net.id, net.outs);
  expect(await keysUnder(conn, "/bpfnet/gone/")).toEqual([]);
  // The sibling prefix "/bpfnet/gone2" is untouched.
  expect((await keysUnder(conn, "/bpfnet/gone2/")).sort()).toEqual([
    "/bpfnet/gone2/config",
    "/bpfnet/gone2/ipam/v1/cidrs/" + sib.podCidr.replace("/", "_"),
    "/bpfnet/gone2/ipam/v1/hosts/h1",
  ]);
  expect((await withEtcd(conn, (c) => audit(c, "/bpfnet/gone2"))).problems).toEqual([]);
  // Deleting twice is fine.
  await provider.delete!(net.id, net.outs);
  await hostAllocationProvider.delete!(sib.hostKey, sib);
  await provider.delete!(sibling.id, sibling.outs);
  expect(await keysUnder(conn, "/bpfnet/gone2/")).toEqual([]);
});

test("an l3 network and an explicit prefix", async () => {
  const { id, outs } = await create({ prefix: "/org/bpfnet/l3net", networkName: undefined, mode: "l3", clusterCidr: "172.20.0.0/14", hostPrefixLength: 26 });
  expect(id).toBe("/org/bpfnet/l3net");
  expect(outs).toMatchObject({ mode: "l3", mtu: 1500, configKey: "/org/bpfnet/l3net/config" });
  expect("networkName" in outs).toBe(false);
  await provider.delete!(id, outs as ContainerNetworkOutputs);
  expect(await keysUnder(conn, "/org/bpfnet/l3net/")).toEqual([]);
});

describe("secured etcd", () => {
  test("mTLS: the client certificate from the connection is used; without it etcd refuses", async () => {
    const tlsEtcd = await startEtcd({ tls: true });
    try {
      const c = tlsEtcd.connection;
      expect(c.endpoints[0]).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const inputs = (await provider.check!({} as ContainerNetworkInputs, raw({ connection: c, networkName: "tls" }))).inputs!;
      const r = await provider.create(inputs);
      expect(JSON.parse((await getValue(c, "/bpfnet/tls/config"))!).networkId).toBe(r.outs!.networkId);
      const noCert = { endpoints: c.endpoints, caPem: c.caPem };
      await expect(withEtcd(noCert, (cl) => readConfig(cl, "/bpfnet/tls"))).rejects.toThrow();
      await provider.delete!(r.id, r.outs!);
    } finally {
      await tlsEtcd.stop();
    }
  });

  test("password auth: the credentials from the connection are used; a wrong password is a clear, immediate error", async () => {
    const authEtcd = await startEtcd({ auth: { username: "bpfnet", password: "s3cret" } });
    try {
      const c = authEtcd.connection;
      const r = await provider.create((await provider.check!({} as ContainerNetworkInputs, raw({ connection: c, networkName: "auth" }))).inputs!);
      expect(r.outs!.connection.password).toBe("s3cret");
      const t0 = Date.now();
      const wrong = { ...c, password: "nope" };
      await expect(provider.read!(r.id, { ...r.outs!, connection: wrong })).rejects.toThrow(/auth/i);
      expect(Date.now() - t0).toBeLessThan(10_000);
      await provider.delete!(r.id, r.outs!);
    } finally {
      await authEtcd.stop();
    }
  });
});

test("an update that changes nothing in the spec (e.g. only the connection) does not rewrite the config", async () => {
  const { id, inputs, outs } = await create({ networkName: "noop" });
  const u = await provider.update!(id, outs, { ...inputs, connection: { endpoints: [...conn.endpoints] } });
  expect(u.outs!.revision).toBe(outs.revision);
});

test("a config write whose answer never comes: create fails with the id and networkId so the next run can finish it", async () => {
  const realWith = etcdClient.withEtcd;
  const realCreate = networkStore.createConfig;
  const inputs = await checked({ networkName: "limbo" });
  jest.spyOn(etcdClient, "withEtcd").mockImplementation((c, fn, o) => realWith(c, (cl) => fn(lossyClient(cl, "partition")), o));
  jest.spyOn(networkStore, "createConfig").mockImplementation((c, spec, id, adopt) => realCreate(c, spec, id, adopt, 1000));
  const err = await provider.create(inputs).then(
    () => undefined,
    (e) => e,
  );
  jest.restoreAllMocks();
  expect(err.message).toMatch(/^writing \/bpfnet\/limbo\/config did not finish within 1s/);
  expect(err.id).toBe("/bpfnet/limbo");
  expect(err.properties).toMatchObject({ prefix: "/bpfnet/limbo", networkId: expect.any(String), revision: 0 });
  // The write did land; the next `up` runs update with those properties and keeps it.
  expect(JSON.parse((await getValue(conn, "/bpfnet/limbo/config"))!).networkId).toBe(err.properties.networkId);
  const up = await provider.update!(err.id, err.properties, inputs);
  expect(up.outs!.networkId).toBe(err.properties.networkId);
  expect(up.outs!.revision).toBeGreaterThan(0);
});
