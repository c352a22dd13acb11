// NetworkPolicy through the real Pulumi CLI (project test/projects/policy, the provider in the
// CLI's dynamic provider process) against a throwaway etcd: a bad policy fails at preview
// naming the field and value with nothing written; up writes the record; a change is an update
// in place; refresh reports a hand edit and a removal, and up puts the policy back; destroy
// leaves the network's prefix empty.
import * as path from "path";
import { LocalWorkspace, PulumiCommand, Stack } from "@pulumi/pulumi/automation";
import { REPO, TOOLS, pulumiEnv, removeStack } from "../support/pulumi";
import { startEtcd, TestEtcd } from "../support/etcd";
import { deleteKey, getValue, keysUnder, putValue } from "../etcd/helpers";

const PROJECT = path.join(REPO, "test", "projects", "policy");
const NET = `tpol${process.pid}`;
const KEY = `/bpfnet/${NET}/policies/v1/api-from-web`;
let etcd: TestEtcd;
let stack: Stack | undefined;

const good = {
  endpointSelector: { app: "api" },
  ingress: [{ fromEndpoints: [{ app: "web" }], toPorts: [{ port: 8080, protocol: "TCP" }] }, { fromEntities: ["host"] }],
};

beforeAll(async () => {
  etcd = await startEtcd();
  const pulumiCommand = await PulumiCommand.get({ root: TOOLS });
  stack = await LocalWorkspace.createOrSelectStack({ stackName: `pol-${process.pid}`, workDir: PROJECT }, { pulumiCommand, envVars: pulumiEnv() });
  await stack.setConfig("policytest:etcd", { value: etcd.endpoints[0] });
  await stack.setConfig("policytest:networkName", { value: NET });
}, 120_000);

afterAll(async () => {
  try {
    if (stack) await removeStack(stack);
  } finally {
    await etcd?.stop();
  }
}, 180_000);

const setPolicy = (p: object) => stack!.setConfig("policytest:policy", { value: JSON.stringify(p) });

test("preview refuses a bad policy naming field and value; nothing is written", async () => {
  await setPolicy({ ...good, ingress: [{ toPorts: [{ port: 70000, protocol: "TCP" }] }, { fromEntities: ["internet"] }] });
  const err = await stack!.preview().then(
    () => undefined,
    (e: Error) => e.message,
  );
  expect(err).toContain("ingress[0].toPorts[0].port must be an integer in 1-65535 (omit it for every port), got 70000");
  // The CLI prints the value JSON-quoted (its quotes escaped once more).
  expect(err).toMatch(/ingress\[1\]\.fromEntities\[0\] must be one of host, remote-node, world, cluster, all, health, got \\*"internet\\*"/);
  expect(await keysUnder(etcd.connection, "/")).toEqual([]);
}, 180_000);

test("up writes the policy; a change updates it in place; refresh reports hand edits and removals; destroy empties the prefix", async () => {
  await setPolicy(good);
  const up = await stack!.up();
  expect(up.summary.resourceChanges).toMatchObject({ create: 3 });
  expect(up.outputs.policyKey.value).toBe(KEY);
  const first = JSON.parse((await getValue(etcd.connection, KEY))!);
  expect(first).toMatchObject({ schema: 1, policyName: "api-from-web", endpointSelector: { app: "api" }, audit: false, ingress: good.ingress });

  await setPolicy({ ...good, audit: true, egress: [{ toCidrs: ["10.213.0.0/24"] }] });
  const changed = await stack!.up();
  expect(changed.summary.resourceChanges).toMatchObject({ update: 1 });
  const second = JSON.parse((await getValue(etcd.connection, KEY))!);
  expect(second).toMatchObject({ audit: true, egress: [{ toCidrs: ["10.213.0.0/24"] }], policyId: first.policyId });

  // A hand edit shows on refresh; the next up writes the program's policy back.
  await putValue(etcd.connection, KEY, JSON.stringify({ ...second, endpointSelector: { app: "anything" } }));
  const refreshed = await stack!.refresh();
  expect(refreshed.summary.resourceChanges).toMatchObject({ update: 1 });
  await stack!.up();
  expect(JSON.parse((await getValue(etcd.connection, KEY))!).endpointSelector).toEqual({ app: "api" });

  // Removed by hand: refresh drops it from the state, up creates it again.
  await deleteKey(etcd.connection, KEY);
  const gone = await stack!.refresh();
  expect(gone.summary.resourceChanges).toMatchObject({ delete: 1 });
  const again = await stack!.up();
  expect(again.summary.resourceChanges).toMatchObject({ create: 1 });
  expect(await getValue(etcd.connection, KEY)).not.toBeNull();

  await stack!.destroy();
  expect(await keysUnder(etcd.connection, `/bpfnet/${NET}/`)).toEqual([]);
}, 600_000);
