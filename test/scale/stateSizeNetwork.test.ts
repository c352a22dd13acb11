// A Network's stack (bench/projects/networkScale: l3, a lab router, agents off, a TLS etcd) made
// with each allocation storing the etcd connection (as before SharedEtcdConnection) moves to the
// shared connection in place: the allocations update, none is replaced or deleted, every host
// keeps its CIDR and its route; the state then holds the connection once; destroy releases all.
import * as path from "path";
import { LocalWorkspace, PulumiCommand, Stack } from "@pulumi/pulumi/automation";
import { inventoryPath } from "../../lab/lab";
import { startTestLab, TestLab } from "../support/lab";
import { startEtcd, TestEtcd } from "../support/etcd";
import { pulumiEnv, removeStack, TOOLS } from "../support/pulumi";
import { sizeByType, storedState } from "../support/stateSize";
import { keysUnder } from "../etcd/helpers";

const PROJECT = path.resolve(__dirname, "../../bench/projects/networkScale");
let lab: TestLab | undefined;
let etcd: TestEtcd | undefined;
let stack: Stack | undefined;

beforeAll(async () => {
  lab = await startTestLab("tsa2", 191, "l3", 2);
  etcd = await startEtcd({ tls: true });
  const pulumiCommand = await PulumiCommand.get({ root: TOOLS });
  // Inline first: the allocations store the connection, as a stack made before the shared connection.
  stack = await LocalWorkspace.createOrSelectStack({ stackName: `statesize-net-${process.pid}`, workDir: PROJECT }, { pulumiCommand, envVars: { ...pulumiEnv(), BPFNET_SHARED_CONNECTION: "0" } });
  await stack.setConfig("networkscale:inventory", { value: inventoryPath(lab.stateDir) });
  await stack.setConfig("networkscale:etcd", { value: JSON.stringify(etcd.connection), secret: true });
  await stack.setConfig("networkscale:hosts", { value: "4" });
}, 300_000);

afterAll(async () => {
  if (stack) await removeStack(stack);
  await etcd?.stop();
  lab?.down();
}, 300_000);

test("an inline-connection Network moves to the shared connection in place; the state holds the connection once", async () => {
  const first = await stack!.up();
  expect(first.summary.resourceChanges).toEqual({ create: 12 }); // stack, Network, EtcdCluster, ContainerNetwork, 4 allocations, 4 routes
  const inline = sizeByType((await storedState(stack!)).resources)["bpfnet:HostAllocation"];

  (stack!.workspace as LocalWorkspace).envVars.BPFNET_SHARED_CONNECTION = "1";
  const moved = await stack!.up();
  // The provider is created, the 4 allocations update (same CIDR: their routes stay as they are).
  expect(moved.summary.resourceChanges).toEqual({ create: 1, update: 4, same: 8 });
  expect(moved.outputs.hosts.value).toBe(4);
  const { text, resources } = await storedState(stack!);
  const shared = sizeByType(resources)["bpfnet:HostAllocation"];
  process.stderr.write(`Network HostAllocation stored bytes, inline: ${JSON.stringify(inline)}; shared: ${JSON.stringify(shared)}\n`);
  expect(inline.credentials).toBeGreaterThan(6_000);
  expect(shared.credentials).toBeLessThan(1_000);
  expect(text).not.toMatch(/BEGIN|PRIVATE KEY/);
  expect((await stack!.up()).summary.resourceChanges).toEqual({ same: 13 });

  await stack!.destroy();
  expect(await keysUnder(etcd!.connection, "/bpfnet/scale/")).toEqual([]);
}, 900_000);
