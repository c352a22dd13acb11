/**
 * Reliability scenario 3 (docs/reliability.md): etcd down for BPFNET_OUTAGE_SECONDS (default
 * 600, the 10 minutes; every member stopped) in a 2-host lab with real agents:
 *
 *  - established flows (2 long-lived TCP connections, a 20 pps ping) and new connections
 *    between existing endpoints carry on through the whole outage;
 *  - both agents report degraded (API and `bpfnet status`);
 *  - a `pulumi up` that writes to etcd meanwhile fails with a message naming etcd, and
 *    succeeds when retried after etcd is back;
 *  - after etcd returns every agent resyncs (connected, registered, sees a change written
 *    after the return) within 30 s; the time is measured.
 */
import * as path from "path";
import type { Etcd3 } from "etcd3";
import { LocalWorkspace, PulumiCommand, Stack } from "@pulumi/pulumi/automation";
import { connectAgentClient } from "../../node-agent/daemon/etcd";
import { hostKey, nodeKey } from "../../provider/etcd/keys";
import { allocate } from "../../provider/ipam/ipamStore";
import { pulumiEnv, removeStack, TOOLS } from "../support/pulumi";
import { LabAgent, sleep, tcpTransfer, waitFor } from "../agent/support/agents";
import { AgentLab, startAgentLab } from "./support/agentLab";
import { startFlows, startPing } from "./support/flows";

const OCTET = 167;
const PREFIX = "/bpfnet/trel3";
const CONTAINERS = ["trelc3a", "trelc3b"];
const OUTAGE_S = Number(process.env.BPFNET_OUTAGE_SECONDS ?? 600);
const PROJECT = path.join(__dirname, "..", "projects", "reliability");

let env: AgentLab | undefined;
let client: Etcd3 | undefined;
let agents: LabAgent[] = [];
let stack: Stack | undefined;
let ips: string[] = [];

beforeAll(async () => {
  env = await startAgentLab({ lab: "trel3", octet: OCTET, hosts: 2, clusterCidr: "10.97.0.0/16", leaseTtlSeconds: 10, containers: CONTAINERS });
  agents = env.agents;
  ips = CONTAINERS.map((c) => env!.ips[c]);
  client = connectAgentClient(env.etcd.connection);
  const pulumiCommand = await PulumiCommand.get({ root: TOOLS });
  stack = await LocalWorkspace.createOrSelectStack({ stackName: `rel-outage-${process.pid}`, workDir: PROJECT }, { pulumiCommand, envVars: pulumiEnv() });
  await stack.setConfig("reltest:etcdEndpoint", { value: env.etcd.connection.endpoints[0] });
  await stack.setConfig("reltest:prefix", { value: PREFIX });
  await stack.setConfig("reltest:hosts", { value: "x1" });
  await stack.up();
}, 300_000);

afterAll(async () => {
  await env?.down([
    () => env!.etcd.restart(), // a failed test may leave it halted: destroy needs it
    () => stack && removeStack(stack),
    () => client?.close(),
  ]);
}, 180_000);

test(`scenario 3: etcd down ${OUTAGE_S} s: traffic unaffected, agents degraded, pulumi up fails clearly then succeeds, resync within 30 s`, async () => {
  const [a, b] = agents;
  const flows = await startFlows(CONTAINERS[0], CONTAINERS[1], ips[1], [7301, 7302], env!.children);
  const pinger = startPing(CONTAINERS[0], ips[1], env!.children);
  await waitFor("the flows to carry echoes", () => flows.echoed() > 20);
  const dropsBefore = await Promise.all(agents.map(async (x) => (await x.status()).counters.dropped));

  await env!.etcd.halt();
  const down = Date.now();
  await waitFor("both agents to report etcd degraded", async () => (await Promise.all(agents.map((x) => x.status()))).every((s) => s.etcd.state === "degraded"), 30_000);
  for (const x of agents) {
    const s = await x.status();
    expect(s.problems.some((p) => p.startsWith("etcd unreachable since"))).toBe(true);
    expect(s.agent.ready).toBe(true);
    // `bpfnet status` says so and exits 1.
    expect(() => x.cli("status")).toThrow(/exited 1[\s\S]*DEGRADED since/);
  }

  // A write through `pulumi up` while etcd is down fails, naming etcd.
  await stack!.setConfig("reltest:hosts", { value: "x1,x2" });
  const failed = await stack!.up().then(
    () => undefined,
    (e: Error) => e.message,
  );
  const upFailedMs = Date.now() - down;
  expect(failed).toBeDefined();
  console.log(`pulumi up during the outage failed after ${upFailedMs} ms:\n${failed}`);
  // The resource's error names the operation, etcd as unreachable, and that nothing was written.
  const etcdLine = failed!.split("\n").find((l) => /error: allocating a pod CIDR for host "x2" .*etcd unreachable: .*nothing was written/.test(l));
  expect(etcdLine).toBeDefined();

  // New connections between the existing endpoints, in both directions, all through the outage.
  let newConnections = 0;
  let port = 7400;
  do {
    for (const [from, to, ip] of [
      [CONTAINERS[0], CONTAINERS[1], ips[1]],
      [CONTAINERS[1], CONTAINERS[0], ips[0]],
    ]) {
      const t = await tcpTransfer(from, to, ip, 64 * 1024, port++, env!.children);
      expect(t.received).toEqual({ n: t.sent, sha: t.sha });
      newConnections++;
    }
    await sleep(Math.min(10_000, OUTAGE_S * 250));
  } while (Date.now() - down < OUTAGE_S * 1000);
  const outageMs = Date.now() - down;
  expect((await a.status()).etcd.state).toBe("degraded");

  // etcd returns: every agent resyncs and sees a change written after the return.
  await env!.etcd.restart();
  const back = Date.now();
  const qq = await allocate(client!, { prefix: PREFIX, host: "qq", allocationId: "alloc-qq" });
  await client!.put(nodeKey(PREFIX, "qq")).value(JSON.stringify({ schema: 1, host: "qq", underlayIp: `10.${OCTET}.1.99`, podCidr: qq.podCidr, agentVersion: "test", incarnation: "qq1", startedAt: new Date().toISOString() })).exec();
  const resyncMs: number[] = [];
  await Promise.all(
    agents.map(async (x) => {
      await waitFor(
        `${x.host.name} to resync`,
        async () => {
          const s = await x.status();
          return s.etcd.state === "connected" && s.etcd.registered && s.peers.some((p) => p.host === "qq") && s.problems.length === 0;
        },
        30_000,
        50,
      );
      resyncMs.push(Date.now() - back);
    }),
  );

  const results = await flows.stop();
  const pinged = await pinger.stop();
  for (const r of results) expect({ port: r.port, error: r.error ?? "none", corrupt: r.corrupt, lost: r.sent - r.echoed }).toEqual({ port: r.port, error: "none", corrupt: false, lost: 0 });
  expect(pinged.transmitted - pinged.received).toBeLessThanOrEqual(1); // the last one may be in flight at SIGINT
  const dropsAfter = await Promise.all(agents.map(async (x) => (await x.status()).counters.dropped));
  expect(dropsAfter).toEqual(dropsBefore);
  expect(b.cli("status")).toMatch(/etcd\s+registered/);

  // The same `pulumi up` now succeeds.
  const retried = await stack!.up();
  expect(Object.keys(retried.outputs.podCidrs.value as Record<string, string>).sort()).toEqual(["x1", "x2"]);
  expect((await client!.get(hostKey(PREFIX, "x2")).exec()).kvs).toHaveLength(1);

  const gaps = results.map((r) => r.maxGapMs);
  console.log(
    `scenario 3 (etcd down ${Math.round(outageMs / 1000)} s): ${results.length} long-lived flows ${results.map((r) => r.echoed).join("/")} echoes, 0 resets, max gap ${Math.max(...gaps)} ms; ` +
      `ping ${pinged.received}/${pinged.transmitted}; ${newConnections} new TCP connections, all intact; drops unchanged; ` +
      `resync after etcd's return: ${resyncMs.sort((x, y) => x - y).join(" ms, ")} ms (goal ≤ 30000 ms); pulumi up during the outage: "${etcdLine!.trim().slice(0, 160)}", retried: ok`,
  );
}, (Number(process.env.BPFNET_OUTAGE_SECONDS ?? 600) + 300) * 1000);
