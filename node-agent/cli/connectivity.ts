// `bpfnet connectivity test [--inventory F] [--json]`: temporary endpoints on every host (two
// each, in namespaces of their own), the checks of connectivity/plan.ts run over SSH (host keys
// verified) on the hosts themselves, one line per check and a summary, and everything it made
// removed again — also when interrupted (SIGINT/SIGTERM). Exits 1 when any check fails.
import { Inventory, InventoryHost, readInventory, sshConnectionFor } from "../../lab/inventory";
import { shellWords } from "../../provider/common/shell";
import { SshSession, withSsh } from "../../provider/host/ssh";
import type { AgentStatus, EndpointView, ServiceList } from "../api/types";
import { CheckResult, checkPassed, formatReport, pingSummary, planChecks, planServiceChecks, ServicePortTarget, TestHost } from "../connectivity/plan";
import { healthMatrix } from "../health/view";
import { agentCli, tempEndpointRemoval } from "./health";

export const CONNECTIVITY_USAGE = `usage: bpfnet connectivity test [--inventory FILE] [--json]
  temporary endpoints on every host; container↔container (same host, every pair), container↔host,
  container→another host, MTU-sized packets with DF, the health matrix; removes what it made`;

/** Opens one session per host (in order), runs fn with all of them, always closes them. */
async function withSessions<T>(hosts: readonly InventoryHost[], fn: (s: Map<string, SshSession>) => Promise<T>, open = new Map<string, SshSession>()): Promise<T> {
  if (open.size === hosts.length) return fn(open);
  const h = hosts[open.size];
  return withSsh(sshConnectionFor(h.ssh), (s) => withSessions(hosts, fn, new Map(open).set(h.name, s)));
}

interface Made {
  host: InventoryHost;
  netns: string;
  id: string;
}

export async function connectivityCommand(sub: string | undefined, flags: Map<string, string>): Promise<number> {
  if (sub !== "test") {
    console.error(CONNECTIVITY_USAGE);
    return 2;
  }
  const inv: Inventory = readInventory(flags.get("inventory") ?? "/run/bpfnet/lab/bpfnet/inventory.json");
  const tag = `bpfnet-ct-${process.pid}`;
  const made: Made[] = [];
  let sessions: Map<string, SshSession> | undefined;
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    (cleaning ??= (async () => {
      for (const m of made.reverse()) {
        const s = sessions?.get(m.host.name);
        if (!s) continue;
        await s.exec(tempEndpointRemoval(m.host, m.id, m.netns)).catch(() => undefined);
      }
      made.length = 0;
    })());
  // Interrupted: remove what was made, then exit as the signal asks.
  const onSignal = (sig: NodeJS.Signals) => {
    console.error(`connectivity test: ${sig}: removing the temporary endpoints`);
    void cleanup().finally(() => process.exit(sig === "SIGINT" ? 130 : 143));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    return await withSessions(inv.hosts, async (s) => {
      sessions = s;
      try {
        return await runChecks(inv, s, tag, made, flags);
      } finally {
        await cleanup();
      }
    });
  } finally {
    await cleanup();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

/** Up to 3 TCP service ports with active backends, as the first host programs them (none: no services). */
async function serviceTargets(h: InventoryHost, s: SshSession): Promise<ServicePortTarget[]> {
  const r = await s.exec(agentCli(h, ["service", "list", "--json"]));
  let list: ServiceList;
  try {
    list = JSON.parse(r.stdout) as ServiceList;
  } catch {
    return []; // an agent without services (404) or an older one
  }
  return list.services
    .flatMap((sv) => sv.ports.filter((p) => p.protocol === "TCP" && p.backends.some((b) => b.state === "active")).map((p) => ({ service: sv.name, vip: sv.vip, port: p.port })))
    .slice(0, 3);
}

/** Every agent's status, over the sessions; throws naming a host whose agent does not answer. */
async function statusesOf(inv: Inventory, s: Map<string, SshSession>): Promise<Map<string, AgentStatus>> {
  const statuses = new Map<string, AgentStatus>();
  for (const h of inv.hosts) {
    const r = await s.get(h.name)!.exec(agentCli(h, ["status", "--json"]));
    try {
      statuses.set(h.name, JSON.parse(r.stdout) as AgentStatus);
    } catch {
      throw new Error(`${h.name}: the agent does not answer: ${(r.stderr || r.stdout).trim().split("\n")[0]}`);
    }
  }
  return statuses;
}

async function runChecks(inv: Inventory, s: Map<string, SshSession>, tag: string, made: Made[], flags: Map<string, string>): Promise<number> {
  let statuses = await statusesOf(inv, s);
  const hosts: TestHost[] = [];
  for (const [i, h] of inv.hosts.entries()) {
    const ep = async (which: "a" | "b") => {
      const netns = `${tag}-${i}${which}`;
      const id = netns;
      await s.get(h.name)!.run(shellWords(["ip", "netns", "add", netns]));
      made.push({ host: h, netns, id });
      const out = await s.get(h.name)!.run(agentCli(h, ["endpoint", "add", "--netns", `/run/netns/${netns}`, "--id", id, "--labels", `bpfnet.io/connectivity-test=${tag}`, "--json"]));
      return { netns, endpoint: (JSON.parse(out) as { endpoint: EndpointView }).endpoint };
    };
    const a = await ep("a");
    const b = await ep("b");
    hosts.push({ name: h.name, underlayIp: h.underlayIp, a: { netns: a.netns, ip: a.endpoint.ip }, b: { netns: b.netns, ip: b.endpoint.ip }, mtu: a.endpoint.mtu });
  }
  const results: CheckResult[] = [];
  const print = (r: CheckResult) => {
    results.push(r);
    if (!flags.has("json")) process.stdout.write(`${formatReport([r], []).text.split("\n")[0]}\n`);
  };
  const services = await serviceTargets(inv.hosts[0], s.get(inv.hosts[0].name)!);
  for (const check of [...planChecks(hosts), ...planServiceChecks(hosts, services)]) {
    const r = await s.get(check.on)!.exec(check.command);
    const detail = check.expect === "answer" ? (r.code === 0 ? "connected" : r.stderr.trim().split("\n").pop() || `exit ${r.code}`) : pingSummary(r.stdout, r.stderr);
    print({ check, ok: checkPassed(check, r.code, r.stderr), detail });
  }
  // The agents' own view: every host's probes of every other host (agents that just started
  // may not have probed yet: up to 3 of their intervals to get there).
  const names = inv.hosts.map((h) => h.name);
  const matrix = () => healthMatrix(names, names.map((n) => ({ from: n, peers: statuses.get(n)?.health?.peers ?? [], ...(statuses.get(n)?.health ? {} : { error: "no health report" }) })));
  let m = matrix();
  const interval = Math.max(...[...statuses.values()].map((x) => x.health?.intervalSeconds ?? 10));
  for (const until = Date.now() + 3 * interval * 1000; !m.allOk && Date.now() < until; m = matrix()) {
    await new Promise((r) => setTimeout(r, 1000));
    statuses = await statusesOf(inv, s);
  }
  const broken = m.cells.filter((c) => c.state !== "ok");
  print({ check: { name: "health matrix (the agents' probes)", on: "", command: "", expect: "pass" }, ok: m.allOk, detail: m.allOk ? `${m.cells.length} paths ok` : broken.map((c) => `${c.from}→${c.to} ${c.state}`).join(", ") });
  const skipped = [...(services.length ? [] : ["service VIPs: no TCP service with backends in this network"]), "policy denials: no policy selects the test endpoints"];
  const report = formatReport(results, skipped);
  if (flags.has("json")) console.log(JSON.stringify({ ok: report.ok, results: results.map((r) => ({ name: r.check.name, ok: r.ok, detail: r.detail })), skipped }, null, 2));
  else console.log(report.text.split("\n").slice(results.length).join("\n"));
  return report.ok ? 0 : 1;
}
