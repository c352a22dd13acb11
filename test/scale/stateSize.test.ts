// The state a real `pulumi up` stores (test/scale/projects/stateSize: a ContainerNetwork and
// HostAllocations on a TLS etcd): every dynamic resource stores a stub provider, not its code; a
// stack made with the providers' code (as before the stub) still refreshes, updates and destroys
// after the upgrade and takes the stub on its next update; refresh sees drift; no credential is
// stored in plaintext. HostAllocations served by a SharedEtcdConnection store the connection's
// hash, the connection once in the provider's config; an old stack moves to it in place.
import * as path from "path";
import { LocalWorkspace, PulumiCommand, Stack } from "@pulumi/pulumi/automation";
import { startEtcd, TestEtcd } from "../support/etcd";
import { pulumiEnv, removeStack, TOOLS } from "../support/pulumi";
import { sizeByType, storedState } from "../support/stateSize";
import { deleteKey, getValue, keysUnder, putValue } from "../etcd/helpers";
import { compiledModule } from "../../provider/common/providerStub";
import { cidrKey, hostKey } from "../../provider/etcd/keys";

const PROJECT = path.join(__dirname, "projects", "stateSize");
const PREFIX = "/bpfnet/statesize";
let etcd: TestEtcd;
let stack: Stack;
let shared: Stack | undefined;

/**
 * Switches the provider the program registers: its own code ("0", as stacks made before the stub
 * hold) or the stub ("force": dist/ was current at the start; a source someone edits meanwhile
 * must not switch the stub off mid-test).
 */
function useStub(on: boolean): void {
  (stack.workspace as LocalWorkspace).envVars.BPFNET_PROVIDER_STUB = on ? "force" : "0";
}

beforeAll(async () => {
  // As the lab tests: the stub needs dist/ built from the current sources (else the program registers the providers' code).
  if (!compiledModule(path.resolve(__dirname, "../../provider/network/containerNetwork.ts"))) {
    throw new Error("dist/ is older than the sources: rebuild it (npx tsc -p tsconfig.build.json) before this test");
  }
  etcd = await startEtcd({ tls: true });
  const pulumiCommand = await PulumiCommand.get({ root: TOOLS });
  stack = await LocalWorkspace.createOrSelectStack({ stackName: `statesize-${process.pid}`, workDir: PROJECT }, { pulumiCommand, envVars: { ...pulumiEnv() } });
  await stack.setConfig("statesize:etcd", { value: JSON.stringify(etcd.connection), secret: true });
  await stack.setConfig("statesize:hosts", { value: "2" });
}, 120_000);

afterAll(async () => {
  if (shared) await removeStack(shared);
  if (stack) await removeStack(stack);
  await etcd?.stop();
}, 300_000);

test("an old stack (providers' code in state) upgrades to the stub: refresh, update, drift, destroy; nothing stored in plaintext", async () => {
  // The stack as it was before: every resource carries its provider's code.
  useStub(false);
  await stack.up();
  const old = sizeByType((await storedState(stack)).resources);
  expect(old["bpfnet:ContainerNetwork"].provider).toBeGreaterThan(20_000);
  expect(old["bpfnet:HostAllocation"].provider).toBeGreaterThan(20_000);

  // After the upgrade: a refresh runs the stored code; a no-op up changes nothing.
  useStub(true);
  await stack.refresh();
  const noop = await stack.up();
  expect(noop.summary.resourceChanges).toEqual({ same: 4 });

  // Drift: the network's config changed behind Pulumi's back; refresh reads it, the next up puts it back.
  const configKey = `${PREFIX}/config`;
  const stored = JSON.parse((await getValue(etcd.connection, configKey))!);
  await putValue(etcd.connection, configKey, JSON.stringify({ ...stored, vni: 77 }));
  await stack.refresh();
  const refreshed = (await storedState(stack)).resources.find((r) => r.type.endsWith("bpfnet:ContainerNetwork"))!;
  expect(refreshed.outputs?.vni).toBe(77);
  const repaired = await stack.up();
  expect(repaired.summary.resourceChanges).toEqual({ same: 3, update: 1 });
  expect(JSON.parse((await getValue(etcd.connection, configKey))!).vni).toBe(42);

  // An update and a create store the stub, and the stub does the work (a third host allocated).
  await stack.setConfig("statesize:vni", { value: "43" });
  await stack.setConfig("statesize:hosts", { value: "3" });
  const grown = await stack.up();
  expect(grown.summary.resourceChanges).toEqual({ same: 3, update: 1, create: 1 });
  expect(JSON.parse((await getValue(etcd.connection, configKey))!).vni).toBe(43);
  expect(await getValue(etcd.connection, `${PREFIX}/ipam/v1/hosts/host-2`)).not.toBeNull();

  const { text, resources } = await storedState(stack);
  const now = sizeByType(resources);
  const network = resources.find((r) => r.type.endsWith("bpfnet:ContainerNetwork"))!;
  const third = resources.find((r) => r.type.endsWith("bpfnet:HostAllocation") && r.outputs?.host === "host-2")!;
  for (const r of [network, third]) {
    expect(JSON.stringify(r.inputs?.__provider).length).toBeLessThan(3_500);
    expect(JSON.stringify(r.outputs?.__provider).length).toBeLessThan(3_500);
  }
  // Secrets stay secret: no PEM, no key body, no part of the client key in the stored text.
  expect(text).not.toMatch(/BEGIN|PRIVATE KEY|CERTIFICATE/);
  const keyBody = etcd.connection.keyPem!.split(/\r?\n/)[3];
  expect(text).not.toContain(keyBody);
  expect(network.outputs?.connection).toEqual(expect.objectContaining({ ciphertext: expect.any(String) }));
  process.stderr.write(`stored bytes per resource, providers' code: ${JSON.stringify(old)}\nafter the upgrade's update/create: ${JSON.stringify(now)}\n`);

  // The old allocations (their state still holds the providers' code in outputs) and the new one are released.
  await stack.destroy();
  expect(await keysUnder(etcd.connection, `${PREFIX}/`)).toEqual([]);
}, 600_000);

test("a SharedEtcdConnection holds the connection once: allocations store its hash, upgrade in place, refresh, drift, destroy", async () => {
  const pulumiCommand = await PulumiCommand.get({ root: TOOLS });
  // "force": the stub (and its forwarding of the provider's config) even if someone edits a source meanwhile; dist/ was current at the start.
  shared = await LocalWorkspace.createOrSelectStack({ stackName: `statesize-shared-${process.pid}`, workDir: PROJECT }, { pulumiCommand, envVars: { ...pulumiEnv(), BPFNET_PROVIDER_STUB: "force" } });
  const prefix = "/bpfnet/shared";
  await shared.setConfig("statesize:etcd", { value: JSON.stringify(etcd.connection), secret: true });
  await shared.setConfig("statesize:name", { value: "shared" });
  await shared.setConfig("statesize:hosts", { value: "2" });
  // As a stack made before: every allocation stores the connection (inputs and outputs).
  const before = await shared.up();
  const inline = sizeByType((await storedState(shared)).resources)["bpfnet:HostAllocation"];
  expect(inline.credentials).toBeGreaterThan(6_000);

  // The upgrade: the allocations move to the shared provider in place (updated, not replaced: same CIDRs).
  await shared.setConfig("statesize:shared", { value: "true" });
  const moved = await shared.up();
  expect(moved.summary.resourceChanges).toEqual({ same: 2, create: 1, update: 2 }); // the provider created
  expect(moved.outputs.podCidrs.value).toEqual(before.outputs.podCidrs.value);
  const { text, resources } = await storedState(shared);
  const sizes = sizeByType(resources);
  process.stderr.write(`HostAllocation stored bytes, connection inline: ${JSON.stringify(inline)}; by reference: ${JSON.stringify(sizes["bpfnet:HostAllocation"])}\n`);
  expect(sizes["bpfnet:HostAllocation"].credentials).toBeLessThan(1_000);
  expect(sizes["bpfnet:HostAllocation"].provider).toBeLessThan(2 * 3_500); // the stub, inputs and outputs
  const providerState = resources.find((r) => r.type === "pulumi:providers:pulumi-nodejs" && String(r.urn).endsWith("::etcd"))!;
  expect(providerState.inputs?.["bpfnet:etcdConnection"]).toEqual(expect.objectContaining({ ciphertext: expect.any(String) }));
  expect(text).not.toMatch(/BEGIN|PRIVATE KEY|CERTIFICATE/);
  expect(text).not.toContain(etcd.connection.keyPem!.split(/\r?\n/)[3]);

  // Refresh reads through the provider's config; drift (an allocation released behind Pulumi) is seen and repaired.
  expect((await shared.up()).summary.resourceChanges).toEqual({ same: 5 });
  const released = moved.outputs.podCidrs.value[1] as string;
  await deleteKey(etcd.connection, hostKey(prefix, "host-1"));
  await deleteKey(etcd.connection, cidrKey(prefix, released));
  await shared.refresh();
  expect((await storedState(shared)).resources.filter((r) => r.type.endsWith("bpfnet:HostAllocation")).length).toBe(1);
  expect((await shared.up()).summary.resourceChanges).toEqual({ same: 4, create: 1 });
  expect(await getValue(etcd.connection, hostKey(prefix, "host-1"))).not.toBeNull();

  // Destroy releases every allocation with the connection from the provider's config.
  await shared.destroy();
  expect(await keysUnder(etcd.connection, `${prefix}/`)).toEqual([]);
}, 600_000);
