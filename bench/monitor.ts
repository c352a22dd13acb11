// Node monitor overhead: what the events cost forwarded traffic when nobody listens, measured
// as ratios against a baseline in the same lab and run.
//
//   flock /run/lock/bpfnet-bench.lock npx ts-node bench/monitor.ts [--rounds 9] [--seconds 5] [--rr 1000]
//       [--compiled-out] [--drop-flood] [--write]
//
// The agents run from dist/: it is rebuilt first (npx tsc -p tsconfig.build.json).
//
// A 2-host vxlan lab (tmon3, 10.112.0.0/16) with real agents, one container per host; iperf3
// TCP throughput and a 64-byte TCP request/response from h1's container to h2's. Variants,
// measured in a rotating order in every round (drift hits all alike):
//   switch off      bpfnet_config.flags EVENTS_OFF on both hosts (set here, as monitorEvents: false does)
//   on, idle        the default: monitoring on, no API listener; the agents keep the datapath idle
//                   (their own setting, re-applied through PUT /v1/traces and checked here)
//   on, written     events written and read with nobody listening (what the agent did before it
//                   kept the datapath idle: EVENTS_OFF cleared here behind the agent's back)
//   compiled out    (--compiled-out) the datapath built with -DBPFNET_NO_EVENTS, agents restarted
// --drop-flood: meanwhile h1's container sends up to 5,000 UDP datagrams/s with a spoofed source
// (every one dropped by bpf_lxc, an event each when events are written): what drops cost when
// the datapath writes their events for nobody, against the idle datapath.
// Per variant: throughput, request/response p50, the events the agents read (status.monitor) and
// the agents' CPU time (/proc/PID/stat utime+stime) per second of traffic. The goal (issue 11):
// "on, idle" ≥ 0.97× the throughput of "switch off", judged on the median of per-round ratios;
// the run exits 1 when it is missed. --write puts the table into docs/benchmarks.md (between
// this bench's markers in "Node monitor overhead").
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ConfigMap } from "../bpf";
import { monitorSettings, withMonitorFlags } from "../bpf/abi";
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
const DOC = path.join(REPO, "docs", "benchmarks.md");
const CONTAINERS = ["tmoncb1", "tmoncb2"];
const GOAL = 0.97;
const begin = (kind: string) => `<!-- bench/monitor.ts ${kind}: begin (generated) -->`;
const end = (kind: string) => `<!-- bench/monitor.ts ${kind}: end -->`;
const CLK_TCK = 100; // USER_HZ on Linux
const SPOOFED = `10.${OCTET}.250.250`; // inside the cluster CIDR, nobody's address
/** 5 UDP datagrams per millisecond from the spoofed address (≤ 5,000/s): each one dropped by bpf_lxc. */
const SPOOF_FLOOD = `
const s = require("dgram").createSocket("udp4");
const [from, to] = process.argv.slice(1);
const buf = Buffer.alloc(16);
s.bind(0, from, () => setInterval(() => { for (let i = 0; i < 5; i++) s.send(buf, 9, to); }, 1));
`;

type Variant = "switch off" | "on, idle" | "on, written" | "compiled out";

interface Sample {
  gbps: number;
  rrP50: number;
  rr: number[];
  /** Events the agents read from their rings during the sample, per second. */
  eventsPerS: number;
  /** The agents' CPU time during the sample, ms per second of wall time. */
  agentCpuMsPerS: number;
}

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} must be a positive integer, got ${JSON.stringify(process.argv[i + 1])}`);
  return v;
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

/** Sets or clears EVENTS_OFF in both hosts' datapath config, as the agent would. */
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

function eventsOffIn(a: LabAgent): boolean {
  const config = ConfigMap.open(a.host.bpffsDir);
  try {
    return monitorSettings(config.get().flags ?? 0).eventsOff;
  } finally {
    config.raw.close();
  }
}

/** utime + stime of a process, in clock ticks. */
function cpuTicks(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" "); // fields from 3 (state) on
  return Number(fields[11]) + Number(fields[12]);
}

interface AgentCounters {
  ticks: number;
  events: number;
}

async function agentCounters(agents: LabAgent[]): Promise<AgentCounters> {
  let ticks = 0;
  let events = 0;
  for (const a of agents) {
    const s = await a.status();
    ticks += cpuTicks(s.agent.pid);
    const r = s.monitor?.received;
    events += r ? r.drop + r.verdict + r.trace : 0;
  }
  return { ticks, events };
}

/** Puts `text` between this bench's markers of its kind in docs/benchmarks.md (at the end of the monitor section the first time). */
function writeDoc(text: string, kind: string): void {
  let doc = fs.readFileSync(DOC, "utf8");
  const [BEGIN, END] = [begin(kind), end(kind)];
  const block = `${BEGIN}\n${text.trimEnd()}\n${END}`;
  const i = doc.indexOf(BEGIN);
  const j = doc.indexOf(END);
  if (i >= 0 && j > i) doc = doc.slice(0, i) + block + doc.slice(j + END.length);
  else {
    const section = doc.indexOf("## Node monitor overhead");
    const next = section >= 0 ? doc.indexOf("\n## ", section + 1) : -1;
    doc = next >= 0 ? `${doc.slice(0, next).trimEnd()}\n\n${block}\n${doc.slice(next)}` : `${doc.trimEnd()}\n\n${block}\n`;
  }
  fs.writeFileSync(DOC, doc);
}

async function main(): Promise<number> {
  const rounds = arg("rounds", 5);
  const seconds = arg("seconds", 5);
  const rrCount = arg("rr", 1000);
  const compiledOut = process.argv.includes("--compiled-out");
  const dropFlood = process.argv.includes("--drop-flood");
  const variants: Variant[] = ["switch off", "on, idle", "on, written", ...(compiledOut ? (["compiled out"] as const) : [])];
  const variantDir = compiledOut ? fs.mkdtempSync(path.join(os.tmpdir(), "bpfnet-noevents-")) : undefined;
  const children = new Children();
  let env: AgentLab | undefined;
  const results = new Map<Variant, Sample[]>(variants.map((v) => [v, []]));
  const load = () => os.loadavg().map((l) => l.toFixed(2)).join(" ");
  const loadBefore = load();
  const started = new Date();
  try {
    execFileSync("npx", ["tsc", "-p", path.join(REPO, "tsconfig.build.json")], { cwd: REPO, stdio: "inherit" });
    if (variantDir) execFileSync("make", ["-s", "-C", path.join(REPO, "bpf"), `OUT=${variantDir}`, "EXTRA_CFLAGS=-DBPFNET_NO_EVENTS"], { stdio: "inherit" });
    env = await startAgentLab({ lab: LAB, octet: OCTET, hosts: 2, clusterCidr: `10.${OCTET}.128.0/17`, leaseTtlSeconds: 10, containers: CONTAINERS });
    const agents = env.agents;
    const [client, server] = CONTAINERS;
    const serverIp = env.ips[server];
    await startIperfServer(children, server, IPERF_PORT);
    await startEchoServer(children, server, ECHO_PORT);
    if (dropFlood) {
      execFileSync("ip", ["netns", "exec", client, "ip", "addr", "add", `${SPOOFED}/32`, "dev", "eth0"]);
      children.spawn(client, [process.execPath, "-e", SPOOF_FLOOD, SPOOFED, serverIp]);
    }
    let onVariantObjects = false;
    const prepare = async (v: Variant) => {
      const wantVariant = v === "compiled out";
      if (wantVariant !== onVariantObjects) {
        await Promise.all(agents.map((a) => restartOn(a, wantVariant ? variantDir : undefined)));
        onVariantObjects = wantVariant;
      }
      if (v === "on, idle") {
        // The agents' own setting: asked to apply their switches again (nothing changed), they
        // must leave the datapath idle, as nobody listens.
        for (const a of agents) await a.client.setTrace({ sampleEvery: null });
        if (!agents.every((a) => eventsOffIn(a))) throw new Error("an agent with no listener left the datapath's events on");
      } else setEventsOff(agents, v !== "on, written");
    };
    for (let r = 0; r < rounds; r++) {
      // Each round rotates the order, so no variant always runs first or after the same one.
      const order = variants.map((_, i) => variants[(i + r) % variants.length]);
      for (const v of order) {
        await prepare(v);
        const before = await agentCounters(agents);
        const t0 = Date.now();
        const t = await iperf(children, client, serverIp, IPERF_PORT, seconds);
        const rr = await requestResponse(children, client, serverIp, ECHO_PORT, rrCount);
        const wallS = (Date.now() - t0) / 1000;
        const after = await agentCounters(agents);
        const sample: Sample = {
          gbps: t.gbps,
          rr,
          rrP50: percentile(rr, 50),
          eventsPerS: (after.events - before.events) / wallS,
          agentCpuMsPerS: ((after.ticks - before.ticks) * 1000) / CLK_TCK / wallS,
        };
        results.get(v)!.push(sample);
        console.error(`round ${r + 1}/${rounds} ${v}: ${fmt(t.gbps, 2)} Gbit/s, rr p50 ${fmt(sample.rrP50, 0)} µs, ${fmt(sample.eventsPerS, 0)} events/s, agents ${fmt(sample.agentCpuMsPerS, 1)} ms CPU/s`);
      }
    }
  } finally {
    await children.killAll();
    await env?.down();
    if (variantDir) fs.rmSync(variantDir, { recursive: true, force: true });
  }
  const base = results.get("switch off")!;
  // Per-round ratios against the same round's baseline: drift between rounds cancels out.
  const perRound = (v: Variant, f: (s: Sample) => number) => results.get(v)!.map((s, i) => ratio(f(s), f(base[i])));
  const rows = variants.map((v) => {
    const x = results.get(v)!;
    return [
      v,
      fmt(median(x.map((s) => s.gbps)), 2),
      fmt(median(perRound(v, (s) => s.gbps)), 3),
      fmt(percentile(x.flatMap((s) => s.rr), 50), 0),
      fmt(median(perRound(v, (s) => s.rrP50)), 3),
      fmt(median(x.map((s) => s.eventsPerS)), 0),
      fmt(median(x.map((s) => s.agentCpuMsPerS)), 1),
      x.map((s) => fmt(s.gbps, 2)).join(" "),
    ];
  });
  const idle = median(perRound("on, idle", (s) => s.gbps));
  const met = idle >= GOAL;
  const table = markdownTable(
    ["variant", "Gbit/s (median)", "× switch off (median of rounds)", "rr p50 µs (pooled)", "rr p50 × switch off", "events read /s", "agents' CPU ms/s", "per round Gbit/s"],
    rows,
  );
  const text =
    `${started.toISOString().slice(0, 16).replace("T", " ")} UTC, \`bench/monitor.ts --rounds ${rounds}${compiledOut ? " --compiled-out" : ""}${dropFlood ? " --drop-flood" : ""}\`: ${rounds} rounds × ${seconds} s iperf3 + ${rrCount} request/responses per variant${dropFlood ? ", ≤ 5,000 spoofed-source datagrams/s dropped on h1 throughout" : ""}; ` +
    `${os.cpus().length} CPUs, kernel ${os.release()}; load average before ${loadBefore}, after ${load()}.\n\n${table}\n\n` +
    `**on (no listener) / switch off: ${fmt(idle, 3)}×** (median of per-round ratios; goal ≥ ${GOAL}: ${met ? "met" : "MISSED"}).\n`;
  console.log(text);
  if (process.argv.includes("--write")) {
    writeDoc(text, dropFlood ? "drop flood" : "no drops");
    console.log(`written to ${path.relative(process.cwd(), DOC)}`);
  }
  return met ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e);
    process.exit(2);
  },
);
