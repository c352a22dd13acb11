// The root project through the real CLI (Automation API) on a fresh lab: TLS etcd on three
// hosts, the network spec, one allocation per host; idempotent re-run, host removal, drift on
// refresh, secrets at rest, and a destroy that leaves etcd stopped and the prefix empty.
import * as fs from "fs";
import * as path from "path";
import { Stack } from "@pulumi/pulumi/automation";
import { inventoryPath } from "../../lab/lab";
import { tryRun } from "../../lab/sh";
import { EtcdConnection, withEtcd } from "../../provider/etcd/etcdClient";
import { startTestLab, TestLab } from "../support/lab";
import { REPO, removeStack, rootProjectStack } from "../support/pulumi";

jest.setTimeout(300_000);

describe("root project: etcd + network + allocations through the real CLI", () => {
  let lab: TestLab;
  let stack: Stack;
  let etcd: EtcdConnection;
  const stackName = `ci-net-${process.pid}`;
  const prefix = `/bpfnet/${stackName}`;
  const keys = () => withEtcd(etcd, async (c) => (await c.getAll().prefix(`${prefix}/`).keys()).sort());
  const etcdProcesses = () => tryRun("pgrep", ["-af", `${lab.stateDir}/hosts/.*/etcd`]).stdout.split("\n").filter((l) => l.includes("etcd.conf.yml"));

  beforeAll(async () => {
    lab = await startTestLab("tpul", 224, "vxlan", 3);
    stack = await rootProjectStack(stackName, { "bpfnet:inventory": inventoryPath(lab.stateDir), "bpfnet:etcdHosts": "3", "bpfnet:agents": "false" });
  });

  afterAll(async () => {
    if (stack) await removeStack(stack);
    lab?.down();
  });

  test("pulumi up: a 3-member TLS etcd, the network spec and a pod CIDR per host", async () => {
    const up = await stack.up();
    expect(up.summary.result).toBe("succeeded");
    etcd = up.outputs.etcdConnection.value as EtcdConnection;
    expect(up.outputs.etcdConnection.secret).toBe(true);
    expect(etcd.endpoints).toEqual(lab.inventory.hosts.map((h) => `https://${h.ssh.host}:2379`));
    const podCidrs = up.outputs.podCidrs.value as Record<string, string>;
    expect(Object.keys(podCidrs).sort()).toEqual(["h1", "h2", "h3"]);
    expect(new Set(Object.values(podCidrs)).size).toBe(3);
    for (const cidr of Object.values(podCidrs)) expect(cidr).toMatch(/^10\.244\.\d+\.0\/24$/);
    expect(await keys()).toEqual([
      `${prefix}/config`,
      ...Object.values(podCidrs).map((c) => `${prefix}/ipam/v1/cidrs/${c.replace("/", "_")}`).sort(),
      `${prefix}/ipam/v1/hosts/h1`,
      `${prefix}/ipam/v1/hosts/h2`,
      `${prefix}/ipam/v1/hosts/h3`,
    ].sort());
    expect(etcdProcesses()).toHaveLength(3);
  });

  test("plain TCP without a client certificate is refused by etcd", async () => {
    await expect(withEtcd({ endpoints: etcd.endpoints, caPem: etcd.caPem }, (c) => c.get("x").string(), { callTimeoutMs: 3000 })).rejects.toThrow();
  });

  test("private keys are secret at rest", () => {
    const raw = fs.readFileSync(path.join(REPO, ".pulumi-state", ".pulumi", "stacks", "bpfnet", `${stackName}.json`), "utf8");
    expect(raw).not.toMatch(/PRIVATE KEY/);
    const member = JSON.parse(raw).checkpoint.latest.resources.find((r: { urn: string }) => r.urn.endsWith("EtcdMember::net-etcd-h1"));
    expect(member.outputs.keyPem).toHaveProperty("ciphertext");
    expect(member.outputs.privateKeys).toHaveProperty("ciphertext");
  });

  test("pulumi up again changes nothing", async () => {
    const again = await stack.up();
    expect(again.summary.resourceChanges).toEqual({ same: again.summary.resourceChanges!.same });
  });

  test("refresh shows an allocation deleted by hand; up restores the same CIDR", async () => {
    const before = (await stack.outputs()).podCidrs.value as Record<string, string>;
    await withEtcd(etcd, (c) => c.delete().key(`${prefix}/ipam/v1/hosts/h2`).exec());
    const refresh = await stack.refresh();
    expect(refresh.summary.resourceChanges).toHaveProperty("delete", 1);
    const up = await stack.up();
    expect(up.summary.resourceChanges).toHaveProperty("create", 1);
    expect((up.outputs.podCidrs.value as Record<string, string>).h2).toBe(before.h2);
    expect(await keys()).toContain(`${prefix}/ipam/v1/hosts/h2`);
  });

  test("refresh shows a network spec edited by hand; up writes it back", async () => {
    const configKey = `${prefix}/config`;
    const original = await withEtcd(etcd, (c) => c.get(configKey).string());
    await withEtcd(etcd, (c) => c.put(configKey).value(JSON.stringify({ ...JSON.parse(original!), mtu: 1300 })).exec());
    const refresh = await stack.refresh();
    expect(refresh.summary.resourceChanges).toHaveProperty("update", 1);
    const up = await stack.up();
    expect(up.summary.resourceChanges).toHaveProperty("update", 1);
    expect(JSON.parse((await withEtcd(etcd, (c) => c.get(configKey).string()))!).mtu).toBe(JSON.parse(original!).mtu);
  });

  test("a stopped etcd member shows as drift and pulumi up restarts it", async () => {
    const pidFile = `${lab.inventory.hosts[2].stateDir}/etcd`;
    tryRun("sh", ["-c", `touch ${pidFile}/STOP; kill $(cat ${pidFile}/supervisor.pid) $(cat ${pidFile}/bpfnet-etcd-h3.pid)`]);
    for (let i = 0; i < 100 && etcdProcesses().length > 2; i++) await new Promise((r) => setTimeout(r, 100));
    expect(etcdProcesses()).toHaveLength(2);
    const refresh = await stack.refresh();
    expect(refresh.summary.resourceChanges?.update ?? 0).toBeGreaterThanOrEqual(1);
    const h3 = (await stack.exportStack()).deployment.resources.find((r: { urn: string }) => r.urn.endsWith("net-etcd-h3"));
    expect(h3.outputs.running).toBe(false);
    await stack.up();
    expect(etcdProcesses()).toHaveLength(3);
    expect((await stack.preview()).changeSummary).not.toHaveProperty("update");
  });

  test("removing a host deletes only its allocation", async () => {
    const before = (await stack.outputs()).podCidrs.value as Record<string, string>;
    await stack.setConfig("bpfnet:hosts", { value: "h1,h2" });
    const up = await stack.up();
    // h3's allocation and its probe go; its etcd member stays (membership changes are explicit).
    expect(up.summary.resourceChanges).toHaveProperty("delete", 2);
    const after = up.outputs.podCidrs.value as Record<string, string>;
    expect(after).toEqual({ h1: before.h1, h2: before.h2 });
    expect(await keys()).not.toContain(`${prefix}/ipam/v1/hosts/h3`);
    expect(await keys()).not.toContain(`${prefix}/ipam/v1/cidrs/${before.h3.replace("/", "_")}`);
    await stack.removeConfig("bpfnet:hosts");
  });

  test("a bad cluster CIDR fails at preview and writes nothing", async () => {
    const before = await withEtcd(etcd, async (c) => JSON.stringify(await c.getAll().prefix("/").strings()));
    await stack.setConfig("bpfnet:clusterCidr", { value: "10.244.0.1/16" });
    await expect(stack.preview()).rejects.toThrow(/clusterCidr.*10\.244\.0\.1\/16/);
    await expect(stack.up()).rejects.toThrow(/clusterCidr/);
    await stack.removeConfig("bpfnet:clusterCidr");
    expect(await withEtcd(etcd, async (c) => JSON.stringify(await c.getAll().prefix("/").strings()))).toBe(before);
  });

  test("pulumi destroy empties the prefix and stops etcd", async () => {
    const destroy = await stack.destroy();
    expect(destroy.summary.result).toBe("succeeded");
    expect(etcdProcesses()).toHaveLength(0);
    for (const h of lab.inventory.hosts) expect(fs.existsSync(`${h.stateDir}/etcd`)).toBe(false);
  });
});
