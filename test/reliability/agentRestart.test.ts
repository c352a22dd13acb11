/**
 * Reliability scenario 4 (docs/reliability.md): 10 long-lived TCP flows between containers on
 * two hosts (plus a 20 pps ping) while each agent is killed with SIGKILL and later replaced
 * host by host by another build (an unpacked agent bundle reporting another version, a
 * rolling upgrade). Expected: 0 resets (the flows and the containers' TCP counters), 0 drops in
 * the datapath's counters, every echo back in order, and traffic flowing while an agent is down.
 */
import { LabAgent, tcpResets, waitFor } from "../agent/support/agents";
import { unpackUpgrade, UnpackedUpgrade } from "../agent/support/upgrade";
import { AgentLab, startAgentLab } from "./support/agentLab";
import { startFlows, startPing } from "./support/flows";

const CONTAINERS = ["trelc4a", "trelc4b"];
const FLOWS = 10;
const UPGRADE_VERSION = "0.1.0-rel-upgrade";

let env: AgentLab | undefined;
let agents: LabAgent[] = [];
let upgrade: UnpackedUpgrade | undefined;

beforeAll(async () => {
  env = await startAgentLab({ lab: "trel4", octet: 168, hosts: 2, clusterCidr: "10.98.0.0/16", leaseTtlSeconds: 10, containers: CONTAINERS });
  agents = env.agents;
  upgrade = unpackUpgrade(UPGRADE_VERSION, "trel4-bundle-");
}, 120_000);

afterAll(async () => {
  await env?.down([() => upgrade?.remove()]);
}, 60_000);

test(`scenario 4: agent kill -9 and a rolling upgrade during ${FLOWS} long-lived TCP flows: 0 resets, 0 drops`, async () => {
  const resetsBefore = CONTAINERS.map(tcpResets);
  const dropsBefore = await Promise.all(agents.map(async (a) => (await a.status()).counters.dropped));
  const flows = await startFlows(CONTAINERS[0], CONTAINERS[1], env!.ips[CONTAINERS[1]], Array.from({ length: FLOWS }, (_, i) => 7401 + i), env!.children);
  const pinger = startPing(CONTAINERS[0], env!.ips[CONTAINERS[1]], env!.children);
  await waitFor("the flows to carry echoes", () => flows.echoed() > FLOWS * 10);
  /** Waits until the flows carried `n` more echoes: traffic moves. */
  const moves = async (what: string, n = FLOWS * 100) => {
    const from = flows.echoed();
    await waitFor(`echoes while ${what}`, () => flows.echoed() >= from + n, 30_000, 20);
  };

  // kill -9, one host at a time: traffic continues while the agent is down, then it restarts.
  const downFor: number[] = [];
  for (const a of agents) {
    const t0 = Date.now();
    await a.stop("SIGKILL");
    await moves(`${a.host.name}'s agent is dead`);
    await a.start();
    downFor.push(Date.now() - t0);
    await moves(`${a.host.name}'s agent is back`);
  }

  // Rolling upgrade: each agent is replaced by the new build once the previous one is ready.
  const cli = upgrade!.cli;
  for (const a of agents) {
    const before = (await a.status()).agent.incarnation;
    await a.stop("SIGTERM");
    await moves(`${a.host.name}'s agent is being upgraded`);
    await a.start(30_000, cli);
    const s = await a.status();
    expect(s.agent).toMatchObject({ version: UPGRADE_VERSION, ready: true });
    expect(s.agent.incarnation).not.toBe(before);
    await waitFor(`${a.host.name} registered`, async () => (await a.status()).etcd.registered);
    await moves(`${a.host.name} runs the new version`);
  }

  const results = await flows.stop();
  const pinged = await pinger.stop();
  for (const r of results) expect({ port: r.port, error: r.error ?? "none", corrupt: r.corrupt, lost: r.sent - r.echoed }).toEqual({ port: r.port, error: "none", corrupt: false, lost: 0 });
  expect(pinged.transmitted - pinged.received).toBeLessThanOrEqual(1); // the last one may be in flight at SIGINT
  const resetsAfter = CONTAINERS.map(tcpResets);
  expect(resetsAfter).toEqual(resetsBefore);
  const dropsAfter = await Promise.all(agents.map(async (a) => (await a.status()).counters.dropped));
  expect(dropsAfter).toEqual(dropsBefore);
  for (const a of agents) expect((await a.status()).problems).toEqual([]);

  const echoes = results.reduce((n, r) => n + r.echoed, 0);
  console.log(
    `scenario 4 (kill -9 + rolling upgrade): ${FLOWS} flows, ${echoes} echoes in order, 0 resets (EstabResets/OutRsts unchanged), 0 drops; ` +
      `max gap per flow ${Math.max(...results.map((r) => r.maxGapMs))} ms; ping ${pinged.received}/${pinged.transmitted}; ` +
      `agent down (kill → ready again) ${downFor.join(" ms, ")} ms; upgraded to ${UPGRADE_VERSION} host by host`,
  );
}, 300_000);
