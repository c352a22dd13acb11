// Node monitor overhead: what the events cost forwarded traffic when nobody listens, measured
// as ratios against baselines in the same lab and run.
//
//   npx tsc -p tsconfig.build.json                     (the agents run from dist/)
//   npx ts-node bench/monitor.ts [--rounds 5] [--seconds 5] [--rr 1000]
//
// A 2-host vxlan lab (tmon3, 10.112.0.0/16) with real agents, one container per host; iperf3
// TCP throughput and a 64-byte TCP request/response from h1's container to h2's, in three
// variants measured in rotating order each round (drift hits all alike):
//   compiled out  the datapath built with -DBPFNET_NO_EVENTS (agents restarted on those objects)
//   switch off    the normal datapath, bpfnet_config.flags EVENTS_OFF on both hosts
//   on            the normal datapath, events on, no API listener (the default)
// The goal (issue 11): "on" ≥ 0.97× the throughput of monitoring off. Prints a markdown table
// for docs/benchmarks.md; removes the lab, its processes and the variant build on exit.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ConfigMap } from "../bpf";
import { withMonitorFlags } from "../bpf/abi";
import { startAgentLab, AgentLab } from "../test/reliability/support/agentLab";
import { LabAgent } from "../test/agent/support/agents";
import { Children } from "./lib/proc";
import { fmt, markdownTable, median, percentile, ratio } from "./lib/stats";
import { iperf, requestResponse, startEchoServer, startIperfServer } from "./lib/traffic";

const LAB = "tmon3";
const OCTET = 112;
const IPERF_PORT = 5201;
const ECHO_PORT = 7100;
const REPO = path.resolve(__dirname, "..");
const CONTAINERS = ["tmoncb1", "tmoncb2"];

type Variant = "compiled out" | "switch off" | "on";

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

/** Restarts an agent on another object directory (undefined: the normal build). */
async function restartOn(a: LabAgent, objectDir: string | undefined): Promise<void> {
  const cfg = JSON.parse(fs.readFileSync(a.configPath, "utf8")) as Record<string, unknown>;
  if (objectDir) cfg.bpfObjectDir = objectDir;
  else delete cfg.bpfObjectDir;
  fs.writeFileSync(a.configPath, JSON.stringify(cfg, null, 2));
  await a.stop();
  await a.start(60_000);
}

function setEventsOff(agents: LabAgent[], off: boolean): void {
  for (const a of agents) {
    const config = ConfigMap.open(a.host.bpffsDir);
    try {
      const cur = config.get();
      config.set({ ...cur, flags: withMonitorFlags(cur.flags ?? 0, { eventsOff: off }) });
    } finally {
      config.raw.close();
    }
  }
}

async function main(): Promise<void> {
  const rounds = arg("rounds", 5);
  const seconds = arg("seconds", 5);
  const rrCount = arg("rr", 1000);
  const variantDir = fs.mkdtempSync(path.join(os.tmpdir(), "bpfnet-noevents-"));
  const children = new Children();
  let env: AgentLab | undefined;
  const results: Record<Variant, { gbps: number[]; rrP50: number[]; rr: number[] }> = {
    "compiled out": { gbps: [], rrP50: [], rr: [] },
    "switch off": { gbps: [], rrP50: [], rr: [] },
    on: { gbps: [], rrP50: [], rr: [] },
  };
  const load = () => os.loadavg().map((l) => l.toFixed(2)).join(" ");
  const loadBefore = load();
  try {
    execFileSync("make", ["-s", "-C", path.join(REPO, "bpf"), `OUT=${variantDir}`, "EXTRA_CFLAGS=-DBPFNET_NO_EVENTS"], { stdio: "inherit" });
    env = await startAgentLab({ lab: LAB, octet: OCTET, hosts: 2, clusterCidr: `10.${OCTET}.128.0/17`, leaseTtlSeconds: 10, containers: CONTAINERS });
    const [client, server] = CONTAINERS;
    const serverIp = env.ips[server];
    await startIperfServer(children, server, IPERF_PORT);
    await startEchoServer(children, server, ECHO_PORT);
    let onVariantObjects = false;
    const prepare = async (v: Variant) => {
      const wantVariant = v === "compiled out";
      if (wantVariant !== onVariantObjects) {
        await Promise.all(env!.agents.map((a) => restartOn(a, wantVariant ? variantDir : undefined)));
        onVariantObjects = wantVariant;
      }
      setEventsOff(env!.agents, v === "switch off");
    };
    const order: Variant[] = ["compiled out", "switch off", "on"];
    for (let r = 0; r < rounds; r++) {
      for (const v of r % 2 === 0 ? order : [...order].reverse()) {
        await prepare(v);
        const t = await iperf(children, client, serverIp, IPERF_PORT, seconds);
        const rr = await requestResponse(children, client, serverIp, ECHO_PORT, rrCount);
        results[v].gbps.push(t.gbps);
        results[v].rr.push(...rr);
        results[v].rrP50.push(percentile(rr, 50));
        console.error(`round ${r + 1}/${rounds} ${v}: ${fmt(t.gbps, 2)} Gbit/s, rr p50 ${fmt(percentile(rr, 50), 0)} µs`);
      }
    }
  } finally {
    await children.killAll();
    await env?.down();
    fs.rmSync(variantDir, { recursive: true, force: true });
  }
  const base = results["compiled out"];
  const rows = (Object.keys(results) as Variant[]).map((v) => {
    const x = results[v];
    return [
      v,
      fmt(median(x.gbps), 2),
      fmt(ratio(median(x.gbps), median(base.gbps)), 3),
      fmt(percentile(x.rr, 50), 0),
      fmt(ratio(percentile(x.rr, 50), percentile(base.rr, 50)), 3),
      x.gbps.map((g) => fmt(g, 2)).join(" "),
    ];
  });
  const on = median(results.on.gbps);
  console.log(markdownTable(["variant", "throughput Gbit/s (median)", "× compiled out", "rr p50 µs (pooled)", "× compiled out", "per round Gbit/s"], rows));
  console.log(
    `\non / switch off throughput: ${fmt(ratio(on, median(results["switch off"].gbps)), 3)}×; on / compiled out: ${fmt(ratio(on, median(base.gbps)), 3)}× ` +
      `(goal ≥ 0.97). ${rounds} rounds × ${seconds} s iperf3, ${rrCount} request/responses per variant and round; load average before ${loadBefore}, after ${load()}.`,
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
