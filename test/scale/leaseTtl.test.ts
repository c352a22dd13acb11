// The agents' registration lease TTL, configurable from the program (agents.leaseTtlSeconds →
// NodeAgent's spec → the agent's config → the lease etcd grants): the trade-off between etcd's
// keepalive load and how long a dead host stays routed (docs/scale.md). Hostile values are
// refused at preview naming the field; a valid one reaches etcd as the lease's granted TTL.
import type { Etcd3 } from "etcd3";
import type { NetworkArgs } from "../../components/network";
import { networkArgsProblems } from "../../components/networkValidation";
import { DEFAULT_LEASE_TTL_SECONDS, parseAgentConfig } from "../../node-agent/config";
import { silentLogger } from "../../node-agent/daemon/log";
import { Registration } from "../../node-agent/daemon/registration";
import { nodeAgentProvider } from "../../provider/agent/nodeAgent";
import { agentConfig } from "../../provider/agent/nodeAgentSpec";
import { BUNDLE_SHA256, MINIMAL_NODE_AGENT_SPEC } from "../support/nodeAgentSpec";
import { MAX_LEASE_TTL_SECONDS } from "../../provider/common/validate";
import { connect } from "../../provider/etcd/etcdClient";
import { startEtcd, TestEtcd } from "../support/etcd";

const HOSTILE: unknown[] = ["60", "60; reboot", "$(reboot)", "`id`", "6\n0", "..", '"60"', " 60", 0, -15, 1.5, MAX_LEASE_TTL_SECONDS + 1, Number.NaN, null, {}, [60], true];
const message = (field: string, v: unknown) => `${field} must be an integer from 1 to ${MAX_LEASE_TTL_SECONDS} (seconds a silent host stays registered), got ${JSON.stringify(v)}`;

const SPEC = MINIMAL_NODE_AGENT_SPEC;
const SHA = BUNDLE_SHA256;
const NETWORK = {
  hosts: [],
  mode: "vxlan",
  clusterCidr: "10.244.0.0/16",
  etcd: { existing: { endpoints: ["https://127.0.0.1:2379"] } },
} as unknown as NetworkArgs;

describe("refused at preview, naming the field and the value", () => {
  test.each(HOSTILE)("Network agents.leaseTtlSeconds %j", (bad) => {
    const problems = networkArgsProblems("prod", { ...NETWORK, agents: { leaseTtlSeconds: bad as number } });
    expect(problems).toContain(message("agents.leaseTtlSeconds", bad));
  });

  test.each(HOSTILE)("NodeAgent spec.leaseTtlSeconds %j", async (bad) => {
    const checked = await nodeAgentProvider.check!({}, { connection: {}, spec: { ...SPEC, leaseTtlSeconds: bad }, bundleSha256: SHA });
    expect(checked.failures).toContainEqual({ property: "spec", reason: expect.stringContaining(message("spec.leaseTtlSeconds", bad)) });
  });

  test.each(HOSTILE)("the agent's config leaseTtlSeconds %j", (bad) => {
    const cfg = JSON.parse(agentConfig(SPEC, { endpoints: ["http://10.0.0.254:2379"] }, SHA));
    expect(() => parseAgentConfig({ ...cfg, leaseTtlSeconds: bad })).toThrow(`leaseTtlSeconds must be an integer from 1 to ${MAX_LEASE_TTL_SECONDS}, got ${JSON.stringify(bad)}`);
  });

  test("the bounds and the default pass; the config carries the TTL only when set", async () => {
    for (const ok of [1, 15, 60, MAX_LEASE_TTL_SECONDS]) {
      expect(networkArgsProblems("prod", { ...NETWORK, agents: { leaseTtlSeconds: ok } }).filter((p) => p.includes("leaseTtlSeconds"))).toEqual([]);
      const checked = await nodeAgentProvider.check!({}, { connection: {}, spec: { ...SPEC, leaseTtlSeconds: ok }, bundleSha256: SHA });
      expect((checked.failures ?? []).filter((f) => f.reason.includes("leaseTtlSeconds"))).toEqual([]);
    }
    const plainConfig = JSON.parse(agentConfig(SPEC, { endpoints: ["http://10.0.0.254:2379"] }, SHA));
    expect(plainConfig).not.toHaveProperty("leaseTtlSeconds"); // an existing network's configs are unchanged
    expect(parseAgentConfig(plainConfig).leaseTtlSeconds).toBe(DEFAULT_LEASE_TTL_SECONDS);
  });
});

describe("a valid TTL reaches etcd", () => {
  let etcd: TestEtcd;
  let client: Etcd3;
  beforeAll(async () => {
    etcd = await startEtcd();
    client = connect(etcd.connection);
  }, 60_000);
  afterAll(async () => {
    client?.close();
    await etcd?.stop();
  });

  test("NodeAgent's spec → the agent's config → the registration's lease, granted with that TTL", async () => {
    const written = agentConfig({ ...SPEC, leaseTtlSeconds: 90 }, etcd.connection, SHA);
    const cfg = parseAgentConfig(JSON.parse(written));
    expect(cfg.leaseTtlSeconds).toBe(90);
    const key = "/bpfnet/t/state/nodes/v1/h1";
    const reg = new Registration(client, key, () => JSON.stringify({ host: "h1" }), cfg.leaseTtlSeconds, silentLogger);
    reg.start();
    try {
      const deadline = Date.now() + 20_000;
      while (!reg.registered && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(reg.registered).toBe(true);
      const kv = (await client.get(key).exec()).kvs[0];
      expect(kv.lease).toBe(reg.currentLeaseId);
      const ttl = await client.leaseClient.leaseTimeToLive({ ID: kv.lease });
      expect(Number(ttl.grantedTTL)).toBe(90);
      expect(Number(ttl.TTL)).toBeGreaterThan(60); // kept alive: far from running out
    } finally {
      await reg.deregister();
    }
    expect((await client.get(key).exec()).kvs).toHaveLength(0);
  });
});
