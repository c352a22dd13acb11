// `bpfnet connectivity test [--inventory F] [--json]`: temporary endpoints on every host (two
// each, in namespaces of their own), the checks of connectivity/plan.ts run over SSH (host keys
// verified) on the hosts themselves, one line per check and a summary, and everything it made
// removed again — also when interrupted (SIGINT/SIGTERM). Exits 1 when any check fails.
import { randomBytes, randomUUID } from "crypto";
import { Inventory, InventoryHost, readInventory, sshConnectionFor } from "../../lab/inventory";
import { shellWords } from "../../provider/common/shell";
import { EtcdConnection, withEtcd } from "../../provider/etcd/etcdClient";
import { deletePolicy, writePolicy } from "../../provider/policy/policyStore";
import { SshSession, withSsh } from "../../provider/host/ssh";
import type { AgentStatus, EndpointView, ServiceList } from "../api/types";
import { Check, CheckResult, checkPassed, formatReport, pingSummary, planChecks, planServiceChecks, ServicePortTarget, TestHost } from "../connectivity/plan";
import { planPolicyChecks, readAdminConnection, testLabels, testPolicy } from "../connectivity/policyCheck";
import { healthMatrix } from "../health/view";
import { agentCli, tempEndpointRemoval } from "./health";

export const CONNECTIVITY_USAGE = `usage: bpfnet connectivity test [--inventory FILE] [--etcd-connection FILE] [--json]
  temporary endpoints on every host; container↔container (same host, every pair), container↔host,
  container→another host, MTU-sized packets with DF, service VIPs, the health matrix; with
  --etcd-connection (admin etcd credentials as JSON: the Network's etcdConnection output) also
  policy denials through a temporary policy on the test's own endpoints; removes what it made`;

/** How long the agents get to apply the temporary policy, and a probe to meet its expectation. */
const POLICY_APPLY_MS = 30_000;
const POLICY_PROBE_MS = 10_000;

/** The temporary policy while it exists: removed by the cleanup on success, failure and interrupt. */
interface MadePolicy {
  connection: EtcdConnection;
  prefix: string;
  name: string;
  policyId: string;
}

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
  // Read and checked before anything is made: a bad file changes nothing.
  const admin = flags.has("etcd-connection") ? readAdminConnection(flags.get("etcd-connection")!) : undefined;
  const tag = `bpfnet-ct-${process.pid}`;
  // The endpoints' label value (and the policy's name): this run's own, never a workload's.
  const runId = `${tag}-${randomBytes(4).toString("hex")}`;
  const made: Made[] = [];
  const policy: { made?: MadePolicy } = {};
  let sessions: Map<string, SshSession> | undefined;
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    (cleaning ??= (async () => {
      const p = policy.made;
      if (p) {
        await withEtcd(p.connection, (c) => deletePolicy(c, p.prefix, p.name, p.policyId)).catch((e: Error) => console.error(`connectivity test: the temporary policy ${p.name} was not removed: ${e.message}`));
        policy.made = undefined;
      }
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
        return await runChecks(inv, s, { tag, runId, admin, policy }, made, flags);
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

interface Run {
  tag: string;
  runId: string;
  admin: EtcdConnection | undefined;
  policy: { made?: MadePolicy };
}

async function runChecks(inv: Inventory, s: Map<string, SshSession>, run: Run, made: Made[], flags: Map<string, string>): Promise<number> {
  const { tag } = run;
  let statuses = await statusesOf(inv, s);
  const hosts: TestHost[] = [];
  for (const [i, h] of inv.hosts.entries()) {
    const ep = async (which: "a" | "b") => {
      const netns = `${tag}-${i}${which}`;
      const id = netns;
      await s.get(h.name)!.run(shellWords(["ip", "netns", "add", netns]));
      made.push({ host: h, netns, id });
      const labels = Object.entries(testLabels(run.runId, which)).map(([k, v]) => `${k}=${v}`).join(",");
      const out = await s.get(h.name)!.run(agentCli(h, ["endpoint", "add", "--netns", `/run/netns/${netns}`, "--id", id, "--labels", labels, "--json"]));
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
  const skipped = services.length ? [] : ["service VIPs: no TCP service with backends in this network"];
  if (run.admin) for (const r of await policyChecks(inv, s, hosts, statuses, run)) print(r);
  else skipped.push("policy denials: not run: writing the temporary policy needs admin etcd credentials (--etcd-connection FILE: the Network's etcdConnection output as JSON)");
  const report = formatReport(results, skipped);
  if (flags.has("json")) console.log(JSON.stringify({ ok: report.ok, results: results.map((r) => ({ name: r.check.name, ok: r.ok, detail: r.detail })), skipped }, null, 2));
  else console.log(report.text.split("\n").slice(results.length).join("\n"));
  return report.ok ? 0 : 1;
}

/** Runs a probe until it meets the check's expectation or the deadline passes; the last result. */
async function probeUntil(s: SshSession, check: Check, deadlineMs: number): Promise<CheckResult> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    const r = await s.exec(check.command);
    const ok = checkPassed(check, r.code, r.stderr);
    if (ok || Date.now() > until) return { check, ok, detail: check.expect === "refused" && ok ? "refused" : pingSummary(r.stdout, r.stderr) };
    await new Promise((done) => setTimeout(done, 500));
  }
}

/**
 * The temporary policy's checks: written with the admin credentials under the agents' network
 * prefix, waited for until every host's b endpoint enforces it, probed, then removed (the
 * command's cleanup removes it too when anything fails or the run is interrupted).
 */
async function policyChecks(inv: Inventory, s: Map<string, SshSession>, hosts: TestHost[], statuses: Map<string, AgentStatus>, run: Run): Promise<CheckResult[]> {
  const prefixes = new Set([...statuses.values()].map((x) => x.agent.networkPrefix));
  const applied: Check = { name: "temporary policy enforced on every host", on: "", command: "", expect: "pass" };
  if (prefixes.size !== 1) return [{ check: applied, ok: false, detail: `the agents serve different networks: ${[...prefixes].join(", ")}` }];
  const [prefix] = prefixes;
  const spec = testPolicy(run.runId);
  const made: MadePolicy = { connection: run.admin!, prefix, name: spec.policyName, policyId: randomUUID() };
  run.policy.made = made;
  await withEtcd(made.connection, (c) => writePolicy(c, prefix, spec, made.policyId));
  const bIds = new Set(hosts.map((h) => h.b.netns)); // the endpoint id is its namespace's name
  const until = Date.now() + POLICY_APPLY_MS;
  let waiting = inv.hosts.map((h) => h.name);
  while (waiting.length && Date.now() < until) {
    const still: string[] = [];
    for (const name of waiting) {
      const h = inv.hosts.find((x) => x.name === name)!;
      const r = await s.get(name)!.exec(agentCli(h, ["endpoint", "list", "--json"]));
      let eps: EndpointView[] = [];
      try {
        eps = JSON.parse(r.stdout) as EndpointView[];
      } catch {
        /* not answering yet: try again */
      }
      const b = eps.find((e) => bIds.has(e.id));
      if (!(b?.ingress === "enforced" && b.policies?.includes(spec.policyName))) still.push(name);
    }
    waiting = still;
    if (waiting.length) await new Promise((done) => setTimeout(done, 500));
  }
  const results: CheckResult[] = [{ check: applied, ok: waiting.length === 0, detail: waiting.length ? `not enforced within ${POLICY_APPLY_MS / 1000} s on ${waiting.join(", ")}` : `policy ${spec.policyName}` }];
  if (waiting.length === 0) for (const check of planPolicyChecks(hosts)) results.push(await probeUntil(s.get(check.on)!, check, POLICY_PROBE_MS));
  await withEtcd(made.connection, (c) => deletePolicy(c, prefix, made.name, made.policyId));
  run.policy.made = undefined; // removed (a failed removal is left to the command's cleanup)
  return results;
}
