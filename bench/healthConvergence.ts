// Health convergence: how long after a host's underlay link is cut (and restored) the other
// hosts' agents report it, measured against the probe interval of the same run (the baseline:
// a probe round can only notice a change at its next round, so ≤ 1–2 intervals is the floor).
//
//   npx tsc -p tsconfig.build.json        (the agents run from dist/)
//   npx ts-node bench/healthConvergence.ts [--rounds 5] [--interval 2]
//
// A 3-host vxlan lab (bhl1, 10.118.0.0/16: HEALTH's octet, so not beside test/observability/ui).
// Each round cuts h3's eth0, waits until h1 and h2 both report h3 unreachable (GET /v1/health),
// restores it and waits until both report it reachable. Per round and agent: the agent's own
// `since` minus the time of the cut (detection) or of the restore (recovery), in ms and in
// probe intervals; then median and max over all. Every wait is bounded; the lab is removed in
// `finally`.
import { spawnSync } from "child_process";
import { parseArgs } from "../node-agent/cli/main";
import { sleep, waitFor } from "../test/support/traffic";
import { AgentLab, startAgentLab } from "../test/observability/support/agentLab";

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const { flags } = parseArgs(process.argv.slice(2));
  const rounds = Number(flags.get("rounds") ?? 5);
  const intervalS = Number(flags.get("interval") ?? 2);
  let L: AgentLab | undefined;
  try {
    L = await startAgentLab({ name: "bhl1", octet: 118, topology: "vxlan", hosts: 3, clusterCidr: "10.86.0.0/16", healthIntervalSeconds: intervalS });
    const [h1, h2] = L.agents;
    const view = async () => Promise.all([h1, h2].map(async (a) => (await a.client.health()).peers.find((p) => p.peer === "h3")));
    await waitFor("h3 reachable from h1 and h2, both paths", async () => (await view()).every((p) => p?.reachable && p.endpoint.ok), 60_000, 200);
    const detect: number[] = [];
    const recover: number[] = [];
    for (let r = 0; r < rounds; r++) {
      await sleep(Math.random() * intervalS * 1000); // cut at any phase of the probe round
      const cutAt = Date.now();
      spawnSync("ip", ["-n", "bhl1-h3", "link", "set", "eth0", "down"]);
      const down = (await waitFor("h3 down on both", async () => {
        const v = await view();
        return v.every((p) => p && !p.reachable) ? v : undefined;
      }, 60_000, 100))!;
      detect.push(...down.map((p) => Date.parse(p!.since) - cutAt));
      await sleep(Math.random() * intervalS * 1000);
      const upAt = Date.now();
      spawnSync("ip", ["-n", "bhl1-h3", "link", "set", "eth0", "up"]);
      const up = (await waitFor("h3 back on both", async () => {
        const v = await view();
        return v.every((p) => p?.reachable) ? v : undefined;
      }, 60_000, 100))!;
      recover.push(...up.map((p) => Date.parse(p!.since) - upAt));
      console.log(`round ${r + 1}: detected ${down.map((p) => Date.parse(p!.since) - cutAt).join(", ")} ms, recovered ${up.map((p) => Date.parse(p!.since) - upAt).join(", ")} ms`);
    }
    const ivl = intervalS * 1000;
    const line = (what: string, xs: number[]) =>
      `${what}: median ${median(xs)} ms (${(median(xs) / ivl).toFixed(2)}× the interval), max ${Math.max(...xs)} ms (${(Math.max(...xs) / ivl).toFixed(2)}×), n=${xs.length}`;
    console.log(`\nprobe interval ${ivl} ms, ${rounds} rounds, 2 observers (h1, h2) of h3`);
    console.log(line("link cut → unreachable", detect));
    console.log(line("link back → reachable", recover));
  } finally {
    await L?.down();
  }
}

main().then(
  () => process.exit(0),
  (e: Error) => {
    console.error(e);
    process.exit(1);
  },
);
