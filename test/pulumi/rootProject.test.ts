// The real CLI, end to end, through the Automation API: up, up again, refresh, destroy of the
// root project on a fresh lab. The dynamic provider runs in the CLI's own provider process,
// from the serialized code in state, on every step.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Stack } from "@pulumi/pulumi/automation";
import { inventoryPath } from "../../lab/lab";
import { startTestLab, TestLab } from "../support/lab";
import { REPO, removeStack, rootProjectStack } from "../support/pulumi";

describe("root project through the Automation API", () => {
  let lab: TestLab;
  let stack: Stack;
  const stackName = `ci-probe-${process.pid}`;

  beforeAll(async () => {
    lab = await startTestLab("tpul", 224, "vxlan", 3);
    stack = await rootProjectStack(stackName, { "bpfnet:inventory": inventoryPath(lab.stateDir) });
  }, 300_000);

  afterAll(async () => {
    if (stack) await removeStack(stack);
    lab?.down();
  }, 300_000);

  test("pulumi up probes every lab host over SSH with verified host keys", async () => {
    const up = await stack.up();
    expect(up.summary.result).toBe("succeeded");
    expect(up.summary.resourceChanges).toEqual({ create: 4 });
    const hosts = up.outputs.hosts.value as Record<string, { kernel: string; underlayIp: string }>;
    expect(Object.keys(hosts).sort()).toEqual(["h1", "h2", "h3"]);
    for (const h of lab.inventory.hosts) {
      expect(hosts[h.name].kernel).toBe(os.release());
      expect(hosts[h.name].underlayIp).toBe(h.underlayIp);
    }
  });

  test("private keys are secret in state, never plaintext", async () => {
    // The state file as the backend stores it (exportStack would decrypt).
    const file = path.join(REPO, ".pulumi-state", ".pulumi", "stacks", "bpfnet", `${stackName}.json`);
    const raw = fs.readFileSync(file, "utf8");
    expect(raw).not.toMatch(/PRIVATE KEY/);
    const probe = JSON.parse(raw).checkpoint.latest.resources.find((r: { urn: string }) => r.urn.endsWith("probe-h1"));
    expect(probe.outputs.privateKeys).toHaveProperty("ciphertext");
    expect(probe.outputs.connection.host).toBe(lab.inventory.hosts[0].ssh.host);
  });

  test("pulumi up again changes nothing", async () => {
    const again = await stack.up();
    expect(again.summary.resourceChanges).toEqual({ same: 4 });
  });

  test("pulumi refresh re-probes and finds no drift", async () => {
    const refresh = await stack.refresh();
    expect(refresh.summary.result).toBe("succeeded");
    expect(refresh.summary.resourceChanges).toEqual({ same: 4 });
  });

  test("a changed host key fails the update with a clear error, nothing recorded", async () => {
    const inv = JSON.parse(fs.readFileSync(inventoryPath(lab.stateDir), "utf8"));
    inv.hosts[0].ssh.hostKeyFingerprint = inv.hosts[1].ssh.hostKeyFingerprint;
    const badInventory = path.join(lab.stateDir, "inventory-wrong-key.json");
    fs.writeFileSync(badInventory, JSON.stringify(inv));
    await stack.setConfig("bpfnet:inventory", { value: badInventory });
    await expect(stack.up()).rejects.toThrow(/does not match the expected .*refusing to connect/);
    await stack.setConfig("bpfnet:inventory", { value: inventoryPath(lab.stateDir) });
    expect((await stack.preview()).changeSummary).toEqual({ same: 4 });
  });

  test("pulumi destroy removes everything", async () => {
    const destroy = await stack.destroy();
    expect(destroy.summary.resourceChanges).toEqual({ delete: 4 });
    await stack.workspace.removeStack(stackName);
    expect(fs.existsSync(path.join(REPO, `Pulumi.${stackName}.yaml`))).toBe(false);
  });
});
