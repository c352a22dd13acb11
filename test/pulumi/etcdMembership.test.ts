// EtcdCluster membership through the real CLI: 1 → 3 members (each new member is added to the
// running cluster and joins it), then 3 → 1 (members removed from the membership before they
// stop), one host at a time, with the data intact and the cluster answering throughout.
import { Stack } from "@pulumi/pulumi/automation";
import { inventoryPath } from "../../lab/lab";
import { EtcdConnection, withEtcd } from "../../provider/etcd/etcdClient";
import { startTestLab, TestLab } from "../support/lab";
import { removeStack, rootProjectStack } from "../support/pulumi";

jest.setTimeout(300_000);

describe("etcd membership changes", () => {
  let lab: TestLab;
  let stack: Stack;
  const stackName = `ci-etcdm-${process.pid}`;
  const members = (conn: EtcdConnection) => withEtcd(conn, async (c) => (await c.cluster.memberList({ linearizable: true })).members.map((m) => m.name).sort());

  beforeAll(async () => {
    lab = await startTestLab("tetm", 218, "vxlan", 3);
    stack = await rootProjectStack(stackName, { "bpfnet:inventory": inventoryPath(lab.stateDir), "bpfnet:agents": "false", "bpfnet:etcdHosts": "1" });
  });

  afterAll(async () => {
    if (stack) await removeStack(stack);
    lab?.down();
  });

  test("grows from 1 to 3 members and shrinks back to 1, keeping its data", async () => {
    const one = await stack.up();
    const conn1 = one.outputs.etcdConnection.value as EtcdConnection;
    expect(await members(conn1)).toEqual(["h1"]);
    await withEtcd(conn1, (c) => c.put("/membership-test").value("kept").exec());

    await stack.setConfig("bpfnet:etcdHosts", { value: "3" });
    const three = await stack.up();
    expect(three.summary.resourceChanges).toMatchObject({ create: 2 });
    const conn3 = three.outputs.etcdConnection.value as EtcdConnection;
    expect(await members(conn3)).toEqual(["h1", "h2", "h3"]);
    // The joined member serves the data written before it existed.
    expect(await withEtcd({ ...conn3, endpoints: [conn3.endpoints[2]] }, (c) => c.get("/membership-test").string())).toBe("kept");

    await stack.setConfig("bpfnet:etcdHosts", { value: "1" });
    const back = await stack.up();
    expect(back.summary.resourceChanges).toMatchObject({ delete: 2 });
    expect(await members(conn1)).toEqual(["h1"]);
    expect(await withEtcd(conn1, (c) => c.get("/membership-test").string())).toBe("kept");
    expect((await stack.preview()).changeSummary).toEqual({ same: (await stack.preview()).changeSummary!.same });
  });
});
