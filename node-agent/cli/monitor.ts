// `bpfnet monitor`: the node monitor's events, live. On this host through the agent's API, or
// with --all from every host of an inventory over SSH (host keys verified), merged into one
// time-ordered view that names the host (like Hubble's flows).
import { Inventory, InventoryHost, readInventory, sshConnectionFor } from "../../lab/inventory";
import { withSsh } from "../../provider/host/ssh";
import { AgentClient } from "../api/client";
import { socketFromFlags } from "../config";
import { formatMonitorEvent, MonitorEvent, MonitorFilter, parseMonitorFilter, TimeOrderedMerge } from "../monitor/event";
import { agentCli } from "./health";
import type { TraceChange } from "../api/types";
import { formatMonitorStatus } from "../monitor/statusText";
import { checkSampleEvery, checkTraceEndpoint } from "../monitor/traceSwitch";

export const MONITOR_USAGE = `bpfnet monitor [--type drop|trace|verdict] [--endpoint ID] [--json] [--socket P | --config F]
bpfnet monitor --all --inventory FILE [--type …] [--endpoint ID] [--json]   every host, merged in time order
bpfnet monitor trace on|off --endpoint ID      trace an endpoint's forwarded packets, lasting (kept across agent restarts)
bpfnet monitor trace sample N|default          trace 1 in N forwarded packets (0: none; default: the agent config's)`;

/** How long --all holds an event for slower hosts' streams before printing it in order. */
const MERGE_HOLD_MS = 500;

/** An event or a host's stream ending (with why) in a merged monitor. */
export type MergedItem = { event: MonitorEvent } | { host: string; ended: string };

/** The CLI flags of a filter, for the hosts' own `bpfnet monitor`. */
function filterArgs(f: MonitorFilter): string[] {
  const args: string[] = [];
  if (f.types?.length) args.push("--type", f.types.join(","));
  if (f.endpoint !== undefined) args.push("--endpoint", f.endpoint);
  return args;
}

/** One host's event stream over SSH (`bpfnet monitor --json` there), until `signal` aborts. */
async function hostStream(h: InventoryHost, filter: MonitorFilter, onEvent: (e: MonitorEvent) => void, signal: AbortSignal): Promise<string> {
  let rest = "";
  let bad = "";
  const onData = (chunk: Buffer) => {
    const lines = (rest + chunk.toString("utf8")).split("\n");
    rest = lines.pop() ?? "";
    for (const raw of lines) {
      const line = raw.replace(/\r$/, "");
      if (!line) continue;
      try {
        onEvent(JSON.parse(line) as MonitorEvent);
      } catch {
        bad = line; // the remote CLI's error text (a pty merges stderr into stdout)
      }
    }
  };
  const r = await withSsh(sshConnectionFor(h.ssh), (s) => s.stream(agentCli(h, ["monitor", "--json", ...filterArgs(filter)]), onData, signal));
  if (signal.aborted) return "stopped";
  return `exited ${r.code}${bad || rest ? `: ${(bad || rest).trim()}` : ""}`;
}

/**
 * Every host's monitor stream merged in time order (events are held MERGE_HOLD_MS so that a
 * host whose stream lags is still put in order). Ends when every host's stream has ended or
 * `signal` aborts. `bpfnet ui` serves this.
 */
export async function* mergedMonitor(inventory: Inventory, filter: MonitorFilter, signal: AbortSignal): AsyncIterable<MergedItem> {
  const merge = new TimeOrderedMerge(MERGE_HOLD_MS);
  const queue: MergedItem[] = [];
  let wake: (() => void) | undefined;
  const notify = () => {
    wake?.();
    wake = undefined;
  };
  let running = inventory.hosts.length;
  for (const h of inventory.hosts) {
    hostStream(h, filter, (e) => merge.push({ ...e, host: e.host || h.name }), signal)
      .catch((e: Error) => e.message)
      .then((why) => {
        running--;
        queue.push({ host: h.name, ended: why });
        notify();
      });
  }
  const tick = setInterval(notify, MERGE_HOLD_MS / 2);
  const onAbort = () => notify();
  signal.addEventListener("abort", onAbort);
  try {
    for (;;) {
      const done = running === 0 || signal.aborted;
      for (const event of merge.release(Date.now(), done)) yield { event };
      while (queue.length) yield queue.shift()!;
      if (done) return;
      await new Promise<void>((r) => (wake = r));
    }
  } finally {
    clearInterval(tick);
    signal.removeEventListener("abort", onAbort);
  }
}

/**
 * `bpfnet monitor trace …`: the agent's lasting trace switches (PUT /v1/traces). Traces are
 * written while someone listens (`bpfnet monitor`, `bpfnet ui`); `bpfnet status` shows them.
 */
export async function traceCommand(words: readonly string[], flags: Map<string, string>): Promise<number> {
  const [what, value] = words;
  let change: TraceChange;
  if ((what === "on" || what === "off") && words.length === 1) {
    change = { endpoint: checkTraceEndpoint(flags.get("endpoint")), on: what === "on" };
  } else if (what === "sample" && words.length === 2) {
    change = { sampleEvery: value === "default" ? null : checkSampleEvery(value) };
  } else {
    console.error(MONITOR_USAGE);
    return 2;
  }
  const s = await new AgentClient(socketFromFlags(flags)).setTrace(change);
  console.log(formatMonitorStatus(s));
  return 0;
}

/** `bpfnet monitor …`: prints until interrupted (Ctrl-C) or the agent goes away. */
export async function monitorCommand(flags: Map<string, string>, words: readonly string[] = []): Promise<number> {
  if (words[0] === "trace") return traceCommand(words.slice(1), flags);
  if (words.length) {
    console.error(MONITOR_USAGE);
    return 2;
  }
  const filter = parseMonitorFilter(flags.has("type") ? [flags.get("type")!] : [], flags.get("endpoint"));
  const json = flags.has("json");
  const print = (e: MonitorEvent) => console.log(json ? JSON.stringify(e) : formatMonitorEvent(e));
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  // A reader that went away (a closed pipe, an SSH hang-up): stop quietly.
  process.stdout.on("error", onSignal);
  try {
    if (flags.has("all")) {
      const file = flags.get("inventory");
      if (!file) throw new Error("--all needs --inventory FILE");
      let failed = 0;
      for await (const item of mergedMonitor(readInventory(file), filter, stop.signal)) {
        if ("event" in item) print(item.event);
        else if (item.ended !== "stopped") {
          failed++;
          console.error(`bpfnet monitor: ${item.host}: ${item.ended}`);
        }
      }
      return failed > 0 ? 1 : 0;
    }
    for await (const e of new AgentClient(socketFromFlags(flags)).monitor(filter, stop.signal)) print(e);
    return stop.signal.aborted ? 0 : 1; // the agent ended the stream (stopping)
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}
