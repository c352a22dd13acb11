// The providers survive Pulumi's closure serialization and run in a fresh Node process the way
// the dynamic provider host loads them (require-from-string of the text, then `.handler()`).
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { ContainerNetwork, containerNetworkProvider } from "../../provider/network/containerNetwork";
import { EtcdConnection } from "../../provider/etcd/etcdClient";
import { HostAllocation, hostAllocationProvider } from "../../provider/ipam/hostAllocation";
import { cidrKey, hostKey } from "../../provider/etcd/keys";
import { startEtcd, TestEtcd } from "../support/etcd";
import { callFresh, serialize as serializeInto } from "../support/serialized";
import { getValue, keysUnder } from "./helpers";

let etcd: TestEtcd;
let conn: EtcdConnection;
let dir: string;

beforeAll(async () => {
  etcd = await startEtcd();
  conn = etcd.connection;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "bpfnet-serialized-"));
});
afterAll(async () => {
  await etcd?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

const serialize = (name: string, provider: object) => serializeInto(dir, name, provider);

test("the serialized text requires etcd3 at run time and captures no module internals or paths", async () => {
  for (const [name, p] of [
    ["cn", containerNetworkProvider],
    ["ha", hostAllocationProvider],
  ] as const) {
    const { text } = await serialize(name, p);
    expect(text).toContain('require("etcd3")');
    expect(text).not.toContain("ConnectionPool");
    expect(text).not.toContain("__dirname");
    expect(text).not.toContain("@pulumi/pulumi");
    expect(text.length).toBeLessThan(200_000);
  }
});

test("ContainerNetwork: check, create, read and delete run from the serialized text in a fresh process", async () => {
  const { file } = await serialize("containerNetwork", containerNetworkProvider);
  const checked = await callFresh(file, "check", {}, { connection: conn, networkName: "ser", mode: "vxlan", clusterCidr: "10.90.0.0/16" });
  expect(checked.failures).toEqual([]);
  const bad = await callFresh(file, "check", {}, { connection: conn, networkName: "ser", mode: "vxlan", clusterCidr: "10.90.0.1/16" });
  expect(bad.failures[0].property).toBe("clusterCidr");
  const created = await callFresh(file, "create", checked.inputs);
  expect(created.id).toBe("/bpfnet/ser");
  expect(JSON.parse((await getValue(conn, "/bpfnet/ser/config"))!).networkId).toBe(created.outs.networkId);
  expect(await callFresh(file, "read", created.id, created.outs)).toEqual({ id: created.id, props: created.outs });
  await callFresh(file, "delete", created.id, created.outs);
  expect(await keysUnder(conn, "/bpfnet/ser/")).toEqual([]);
});

test("HostAllocation: read and delete run from the serialized text against an allocation made here", async () => {
  const net = await containerNetworkProvider.create(
    (await containerNetworkProvider.check!({} as never, { connection: conn, networkName: "ser2", mode: "l3", clusterCidr: "10.91.0.0/24", hostPrefixLength: 28 } as never)).inputs!,
  );
  const made = await hostAllocationProvider.create({ connection: conn, prefix: "/bpfnet/ser2", host: "n1" });
  const { file } = await serialize("hostAllocation", hostAllocationProvider);
  expect(await callFresh(file, "read", made.id, made.outs)).toEqual({ id: made.id, props: made.outs });
  const fresh = await callFresh(file, "create", { connection: conn, prefix: "/bpfnet/ser2", host: "n2" });
  expect(fresh.outs.podCidr).not.toBe(made.outs!.podCidr);
  await callFresh(file, "delete", made.id, made.outs);
  await callFresh(file, "delete", fresh.id, fresh.outs);
  expect(await getValue(conn, hostKey("/bpfnet/ser2", "n1"))).toBeNull();
  expect(await getValue(conn, cidrKey("/bpfnet/ser2", made.outs!.podCidr))).toBeNull();
  await containerNetworkProvider.delete!(net.id, net.outs!);
  expect(await keysUnder(conn, "/bpfnet/ser2/")).toEqual([]);
});

describe("resource classes (Pulumi mocks)", () => {
  const registered: pulumi.runtime.MockResourceArgs[] = [];
  beforeAll(() => {
    pulumi.runtime.setMocks(
      {
        newResource: (args) => {
          registered.push(args);
          return { id: `${args.name}-id`, state: { ...args.inputs, prefix: args.inputs.prefix ?? "/bpfnet/m", clusterCidr: args.inputs.clusterCidr ?? "10.1.0.0/16" } };
        },
        call: (args) => args.inputs,
      },
      "bpfnet",
      "test",
      false,
    );
  });

  test("register dynamic resources with the serialized provider and a secret connection", async () => {
    // The provider's own code, not the stub a current dist/ gets (test/scale/providerStub.test.ts covers that):
    // whether dist/ is current must not decide what this test sees.
    const stub = process.env.BPFNET_PROVIDER_STUB;
    process.env.BPFNET_PROVIDER_STUB = "0";
    let net: ContainerNetwork, alloc: HostAllocation;
    try {
      net = new ContainerNetwork("net", {
        connection: { endpoints: ["https://10.0.0.5:2379"], caPem: "CA", certPem: "CERT", keyPem: "KEY" },
        networkName: "m",
        mode: "vxlan",
        clusterCidr: "10.1.0.0/16",
      });
      alloc = new HostAllocation("node-1", { network: net, host: "node-1" });
    } finally {
      if (stub === undefined) delete process.env.BPFNET_PROVIDER_STUB;
      else process.env.BPFNET_PROVIDER_STUB = stub;
    }
    const [netConnSecret, allocConnSecret] = await Promise.all([
      (net.connection as any).isSecret as Promise<boolean>,
      (alloc.connection as any).isSecret as Promise<boolean>,
    ]);
    expect(netConnSecret).toBe(true);
    expect(allocConnSecret).toBe(true);
    await new Promise<void>((r) => alloc.urn.apply(() => r()));
    expect(registered.map((r) => r.type)).toEqual(["pulumi-nodejs:dynamic/bpfnet:ContainerNetwork", "pulumi-nodejs:dynamic/bpfnet:HostAllocation"]);
    const [netArgs, allocArgs] = registered;
    expect(typeof netArgs.inputs.__provider).toBe("string");
    expect(netArgs.inputs.__provider).toContain('require("etcd3")');
    // The connection goes to the engine wrapped as a secret (the engine keeps the output secret too).
    const secretSig = "1b47061264138c4ac30d75fd1eb44270";
    expect(netArgs.inputs.connection).toEqual({
      "4dabf18193072939515e22adb298388d": secretSig,
      value: { endpoints: ["https://10.0.0.5:2379"], caPem: "CA", certPem: "CERT", keyPem: "KEY" },
    });
    expect(allocArgs.inputs.connection["4dabf18193072939515e22adb298388d"]).toBe(secretSig);
    expect(allocArgs.inputs).toMatchObject({ host: "node-1", prefix: "/bpfnet/m", clusterCidr: "10.1.0.0/16" });
  });
});
