// Least privilege in etcd through the real CLI: `pulumi up` of the root project on a 2-host vxlan
// lab turns etcd's auth on and gives each host's agent its own certificate (its own etcd user);
// the agents register and publish their endpoints under their roles, and a container ping
// crosses hosts. With h2's deployed credentials, etcd refuses writes to h1's keys, the config
// and IPAM. Rotation re-issues every host's credentials and revokes the old ones; removing a
// host revokes its user.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { Stack } from "@pulumi/pulumi/automation";
import { InventoryHost } from "../../lab/inventory";
import { inventoryPath } from "../../lab/lab";
import { EtcdConnection, withEtcd } from "../../provider/etcd/etcdClient";
import { listPrefix } from "../../provider/etcd/etcdOps";
import { configKey, endpointsDir, hostKey, nodeKey } from "../../provider/etcd/keys";
import { hostUserName } from "../../provider/etcd/hostAccessSpec";
import { certFacts } from "../../provider/etcd/pki";
import { cleanupAll } from "../support/cleanup";
import { startTestLab, TestLab } from "../support/lab";
import { REPO, removeStack, rootProjectStack } from "../support/pulumi";
import { inNetns, ping, waitFor } from "../support/traffic";

jest.setTimeout(600_000);

const CONTAINERS = ["tacl1ca", "tacl1cb"];
const DENIED = /permission denied/i;

describe("etcd auth on, one identity per host, through the real CLI", () => {
  let lab: TestLab;
  let stack: Stack;
  let admin: EtcdConnection;
  let prefix: string;
  const ips: string[] = [];
  const stackName = `ci-acl-${process.pid}`;
  const host = (name: string): InventoryHost => lab.inventory.hosts.find((h) => h.name === name)!;
  const agentJson = (h: InventoryHost) => `${h.stateDir}/agent/agent.json`;
  const agentEtcd = (h: InventoryHost) => (JSON.parse(fs.readFileSync(agentJson(h), "utf8")) as { etcd: EtcdConnection }).etcd;
  const bpfnet = (h: InventoryHost, ...args: string[]) => inNetns(h.netns!, [process.execPath, path.join(REPO, "bin", "bpfnet"), ...args, "--socket", `${h.stateDir}/agent/agent.sock`]);
  /** What etcd answers `conn` for `op`: "ok" or the error's message. */
  const attempt = (conn: EtcdConnection, op: (c: import("etcd3").Etcd3) => Promise<unknown>) =>
    withEtcd(conn, op, { callTimeoutMs: 5000 }).then(() => "ok", (e: Error) => e.message);

  beforeAll(async () => {
    lab = await startTestLab("tacl1", 155, "vxlan", 2);
    stack = await rootProjectStack(stackName, { "bpfnet:inventory": inventoryPath(lab.stateDir) });
  });

  afterAll(async () => {
    await cleanupAll([
      ...CONTAINERS.map((c, i) => () => lab && bpfnet(lab.inventory.hosts[i], "endpoint", "del", "--id", c)),
      ...CONTAINERS.map((c) => () => spawnSync("ip", ["netns", "del", c])),
      () => stack && removeStack(stack),
      () => lab?.down(),
    ]);
  });

  test("pulumi up: auth on, each agent registered with its own certificate (agent.json 0600)", async () => {
    const up = await stack.up();
    expect(up.summary.result).toBe("succeeded");
    admin = up.outputs.etcdConnection.value as EtcdConnection;
    prefix = up.outputs.networkPrefix.value as string;
    const seen = new Set<string>();
    for (const h of lab.inventory.hosts) {
      expect(fs.statSync(agentJson(h)).mode & 0o777).toBe(0o600);
      const conn = agentEtcd(h);
      expect(conn.certPem).not.toBe(admin.certPem);
      expect(certFacts(conn.certPem!).commonName).toBe(hostUserName(prefix, h.name, 1));
      seen.add(conn.keyPem!);
      const reg = await withEtcd(admin, (c) => c.get(nodeKey(prefix, h.name)).string());
      expect(JSON.parse(reg!).incarnation).toBe((up.outputs.agents.value as Record<string, string>)[h.name]);
    }
    expect(seen.size).toBe(2);
  });

  test("a second up changes nothing (no credentials re-issued)", async () => {
    const preview = await stack.preview();
    expect(Object.keys(preview.changeSummary).filter((k) => k !== "same")).toEqual([]);
  });

  test("containers on both hosts join (agents publish their endpoints under their roles) and ping across hosts", async () => {
    CONTAINERS.forEach((c, i) => {
      spawnSync("ip", ["netns", "del", c]);
      spawnSync("ip", ["netns", "add", c]);
      const r = bpfnet(lab.inventory.hosts[i], "endpoint", "add", "--netns", `/run/netns/${c}`, "--id", c, "--json");
      expect(r.stderr).toBe("");
      ips.push((JSON.parse(r.stdout) as { endpoint: { address: string } }).endpoint.address.split("/")[0]);
    });
    expect(ping(CONTAINERS[0], ips[1], 3).received).toBe(3);
    expect(ping(CONTAINERS[1], ips[0], 3).received).toBe(3);
    for (const [i, h] of lab.inventory.hosts.entries()) {
      await waitFor(`${h.name}'s endpoint record in etcd`, async () => (await withEtcd(admin, (c) => listPrefix(c, endpointsDir(prefix, h.name)))).some((kv) => kv.key.endsWith(`/${CONTAINERS[i]}`)));
    }
  });

  test("with h2's deployed credentials, etcd refuses h1's registration, the config and IPAM; h2's own key is writable", async () => {
    const h2 = agentEtcd(host("h2"));
    expect(await attempt(h2, (c) => c.put(nodeKey(prefix, "h1")).value("{}").exec())).toMatch(DENIED);
    expect(await attempt(h2, (c) => c.put(configKey(prefix)).value("{}").exec())).toMatch(DENIED);
    expect(await attempt(h2, (c) => c.put(hostKey(prefix, "h1")).value("{}").exec())).toMatch(DENIED);
    expect(await attempt(h2, (c) => c.delete().prefix(endpointsDir(prefix, "h1")).exec())).toMatch(DENIED);
    expect(await attempt(h2, (c) => c.get(configKey(prefix)).string())).toBe("ok");
    expect(await attempt(h2, (c) => c.put(`${endpointsDir(prefix, "h2")}probe`).value("{}").exec())).toBe("ok");
    // The agent's reconciler owns that directory: it removes the stray record again.
    await waitFor("h2's agent to prune the stray record", async () => (await attempt(admin, async (c) => { if (await c.get(`${endpointsDir(prefix, "h2")}probe`).string()) throw new Error("still there"); })) === "ok", 60_000, 500);
  });

  test("credentialRotation: new certificates, agents redeployed and registered again, old certificates refused, traffic flows", async () => {
    const old = lab.inventory.hosts.map((h) => agentEtcd(h));
    await stack.setConfig("bpfnet:credentialRotation", { value: "2026-11-30T00:00" });
    const up = await stack.up();
    expect(up.summary.result).toBe("succeeded");
    const agents = up.outputs.agents.value as Record<string, string>;
    for (const [i, h] of lab.inventory.hosts.entries()) {
      const conn = agentEtcd(h);
      expect(certFacts(conn.certPem!).commonName).toBe(hostUserName(prefix, h.name, 2));
      expect(await attempt(old[i], (c) => c.get(configKey(prefix)).string())).toMatch(DENIED);
      expect(JSON.parse((await withEtcd(admin, (c) => c.get(nodeKey(prefix, h.name)).string()))!).incarnation).toBe(agents[h.name]);
    }
    expect(ping(CONTAINERS[0], ips[1], 3).received).toBe(3);
  });

  test("removing h2 from the program revokes its etcd user", async () => {
    const h2 = agentEtcd(host("h2"));
    expect(await attempt(h2, (c) => c.get(configKey(prefix)).string())).toBe("ok");
    bpfnet(host("h2"), "endpoint", "del", "--id", CONTAINERS[1]);
    await stack.setConfig("bpfnet:hosts", { value: "h1" });
    const up = await stack.up();
    expect(up.summary.result).toBe("succeeded");
    expect(await attempt(h2, (c) => c.get(configKey(prefix)).string())).toMatch(DENIED);
    expect(await attempt(h2, (c) => c.put(nodeKey(prefix, "h2")).value("{}").exec())).toMatch(DENIED);
    const users = await withEtcd(admin, async (c) => (await c.auth.userList()).users);
    expect(users.filter((u) => u.includes(":h2:"))).toEqual([]);
    expect(users).toContain(hostUserName(prefix, "h1", 2));
  });
});
