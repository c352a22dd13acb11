// The agent's start time on a new host: process spawn → API ready, and → its first endpoint
// added, for two builds alternating in one run (A = --before DIR, a copy of an earlier dist/
// with node_modules beside it; B = this checkout's dist/). Between starts the host is torn
// down (`bpfnet agent teardown`), so every start is a first start (no cache, no pins).
// Also prints the agent's own per-step figures ("agent ready" steps, node-agent/daemon/startClock.ts).
//
//   flock /run/lock/bpfnet-bench.lock npx ts-node bench/agentStart.ts --before DIR/dist [--rounds 6]
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { AgentClient } from "../node-agent/api/client";
import { checkBuilt, CLI, LabAgent, seedNetwork, addContainerNetns, removeContainers } from "../test/agent/support/agents";
import { startEtcdOn, LabEtcd } from "../test/agent/support/etcd";
import { startTestLab, TestLab } from "../test/support/lab";
import { msSince, now, sleep } from "./lib/proc";
import { fmt, median } from "./lib/stats";

const LAB = "tst2";
const OCTET = 196;
const PREFIX = "/bpfnet/tst2";

interface Sample { ready: number; endpoint: number; steps?: Record<string, number> }

function lastReadySteps(logPath: string): Record<string, number> | undefined {
  const lines = fs.readFileSync(logPath, "utf8").split("\n").filter((l) => l.includes("agent ready"));
  const m = lines.at(-1)?.match(/"steps":(\{[^}]*\})/);
  return m ? (JSON.parse(m[1]) as Record<string, number>) : undefined;
}

async function oneStart(agent: LabAgent, cli: string, netns: string, round: number): Promise<Sample> {
  const teardown = spawnSync("ip", ["netns", "exec", agent.netns, process.execPath, CLI, "agent", "teardown", "--config", agent.configPath], { encoding: "utf8" });
  if (teardown.status !== 0) throw new Error(`teardown: ${teardown.stderr}`);
  const log = fs.openSync(agent.logPath, "a");
  const t0 = now();
  const proc = spawn("ip", ["netns", "exec", agent.netns, process.execPath, cli, "agent", "--config", agent.configPath], { stdio: ["ignore", log, log] });
  fs.closeSync(log);
  const client = new AgentClient(agent.socket, 5_000);
  try {
    let ready: number | undefined;
    const deadline = Date.now() + 30_000;
    while (ready === undefined) {
      if (proc.exitCode !== null) throw new Error(`agent exited ${proc.exitCode}`);
      if (Date.now() > deadline) throw new Error("not ready in 30 s");
      const s = await client.status().catch(() => undefined);
      if (s?.agent.ready) ready = msSince(t0);
      else await sleep(2);
    }
    await client.addEndpoint({ id: `tst-ep${round}`, netns: `/run/netns/${netns}` });
    const endpoint = msSince(t0);
    await client.deleteEndpoint(`tst-ep${round}`);
    return { ready, endpoint, steps: lastReadySteps(agent.logPath) };
  } finally {
    if (proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGTERM");
      await exited;
    }
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const before = args[args.indexOf("--before") + 1];
  const rounds = args.includes("--rounds") ? Number(args[args.indexOf("--rounds") + 1]) : 6;
  if (!args.includes("--before") || !fs.existsSync(path.join(before, "node-agent", "cli", "main.js"))) throw new Error("--before DIR: a dist/ copy with node-agent/cli/main.js");
  checkBuilt();
  let lab: TestLab | undefined;
  let etcd: LabEtcd | undefined;
  const netns = "tagtcst2";
  try {
    lab = await startTestLab(LAB, OCTET, "vxlan", 2);
    etcd = await startEtcdOn(`10.${OCTET}.0.254`);
    await seedNetwork(etcd.connection, { prefix: PREFIX, mode: "vxlan", clusterCidr: "10.197.0.0/16", vni: 19 }, ["h1", "h2"]);
    const peer = new LabAgent(lab.inventory.hosts[0], { prefix: PREFIX, etcd: etcd.connection, leaseTtlSeconds: 10 });
    await peer.start();
    const agent = new LabAgent(lab.inventory.hosts[1], { prefix: PREFIX, etcd: etcd.connection, leaseTtlSeconds: 10 });
    addContainerNetns(netns);
    const builds: [string, string][] = [["before", path.join(before, "node-agent", "cli", "main.js")], ["after", CLI]];
    const out: Record<string, Sample[]> = { before: [], after: [] };
    await oneStart(agent, CLI, netns, 0); // warm the page cache for both
    await oneStart(agent, builds[0][1], netns, 0);
    for (let r = 1; r <= rounds; r++) {
      for (const [name, cli] of r % 2 ? builds : [...builds].reverse()) {
        const s = await oneStart(agent, cli, netns, r);
        out[name].push(s);
        console.log(`round ${r} ${name}: ready ${fmt(s.ready, 0)} ms, endpoint ${fmt(s.endpoint, 0)} ms${s.steps ? ` steps ${JSON.stringify(s.steps)}` : ""}`);
      }
    }
    const m = (k: string, f: keyof Sample) => median(out[k].map((s) => s[f] as number));
    console.log(`load ${fs.readFileSync("/proc/loadavg", "utf8").trim()}`);
    console.log(`median ready: before ${fmt(m("before", "ready"), 0)} ms, after ${fmt(m("after", "ready"), 0)} ms (after/before ${fmt(m("after", "ready") / m("before", "ready"), 2)}x)`);
    console.log(`median first endpoint: before ${fmt(m("before", "endpoint"), 0)} ms, after ${fmt(m("after", "endpoint"), 0)} ms (after/before ${fmt(m("after", "endpoint") / m("before", "endpoint"), 2)}x)`);
    await peer.stop();
  } finally {
    removeContainers([netns]);
    await etcd?.stop();
    await lab?.down();
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
