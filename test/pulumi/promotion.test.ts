// Environment promotion: a second stack (like `staging`) runs beside the first (like `dev`) in
// the same lab and the same etcd, reached through a stack reference, under its own prefix.
// Destroying the first leaves the second's keys untouched.
import { Stack } from "@pulumi/pulumi/automation";
import { inventoryPath } from "../../lab/lab";
import { EtcdConnection, withEtcd } from "../../provider/etcd/etcdClient";
import { startTestLab, TestLab } from "../support/lab";
import { removeStack, rootProjectStack } from "../support/pulumi";

jest.setTimeout(300_000);

describe("promotion: two stacks, one etcd, separate prefixes", () => {
  let lab: TestLab;
  let first: Stack;
  let second: Stack;
  const firstName = `ci-dev-${process.pid}`;
  const secondName = `ci-stg-${process.pid}`;

  beforeAll(async () => {
    lab = await startTestLab("tpro", 227, "vxlan", 2);
    const inventory = inventoryPath(lab.stateDir);
    // The stack that provisions etcd keeps it on destroy: the other stack's network lives in it too.
    first = await rootProjectStack(firstName, { "bpfnet:inventory": inventory, "bpfnet:etcdRetainOnDelete": "true", "bpfnet:agents": "false" });
    second = await rootProjectStack(secondName, {
      "bpfnet:inventory": inventory,
      "bpfnet:etcdFromStack": `organization/bpfnet/${firstName}`,
      "bpfnet:clusterCidr": "10.245.0.0/16",
      "bpfnet:agents": "false",
    });
  });

  afterAll(async () => {
    for (const s of [second, first]) if (s) await removeStack(s);
    lab?.down();
  });

  test("both stacks deploy into one etcd under their own prefixes and pools", async () => {
    const a = await first.up();
    const b = await second.up();
    expect(b.outputs.etcdEndpoints.value).toEqual(a.outputs.etcdEndpoints.value);
    expect(a.outputs.networkPrefix.value).toBe(`/bpfnet/${firstName}`);
    expect(b.outputs.networkPrefix.value).toBe(`/bpfnet/${secondName}`);
    for (const c of Object.values(b.outputs.podCidrs.value as Record<string, string>)) expect(c).toMatch(/^10\.245\./);
  });

  test("destroying the first stack leaves the second untouched", async () => {
    const etcd = (await first.outputs()).etcdConnection.value as EtcdConnection;
    const secondKeys = () => withEtcd(etcd, async (c) => (await c.getAll().prefix(`/bpfnet/${secondName}/`).strings()));
    const before = await secondKeys();
    expect(Object.keys(before).length).toBe(5); // config + 2 hosts × (host key, cidr key)
    await first.destroy();
    expect(await withEtcd(etcd, (c) => c.getAll().prefix(`/bpfnet/${firstName}/`).keys())).toEqual([]);
    expect(await secondKeys()).toEqual(before);
    // Only the stack reference changes (the first stack has no outputs now); every resource of
    // the second stack reads back exactly as it was.
    const changed: string[] = [];
    await second.refresh({
      onEvent: (e) => {
        const m = e.resOutputsEvent?.metadata;
        if (m && m.op !== "same") changed.push(m.type);
      },
    });
    expect(changed).toEqual(["pulumi:pulumi:StackReference"]);
    await second.destroy();
    expect(await secondKeys()).toEqual({});
  });
});
