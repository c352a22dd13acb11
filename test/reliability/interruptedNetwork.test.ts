/**
 * Reliability scenario 6 (docs/reliability.md), the hosts' half: `pulumi up` of the root project
 * (etcd member over SSH, per-host credentials, allocations, agents) on a 2-host vxlan lab is
 * interrupted at three points: while the etcd member is being created (SIGTERM: the engine
 * cancels and lets operations in flight finish), while the first agent is starting (SIGKILL of
 * the CLI and every process under it: the create ran on the host but never reached the state),
 * and in the middle of a rolling agent update to a new bundle (SIGKILL again). After each kill
 * `pulumi refresh --clear-pending-creates` runs, then the next `up`. Expected: the last `up`
 * converges, a further `up` changes nothing, and nothing is orphaned or duplicated: one
 * supervisor and one daemon per agent and per etcd member, only the current release on each
 * host, no bundle left over, and in etcd exactly the two hosts' registrations, allocations and
 * credentials. The stack lives in its own file backend: a SIGKILL can corrupt the checkpoint
 * attributes of the backend it writes to (docs/reliability.md), never the shared one.
 */
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Stack } from "@pulumi/pulumi/automation";
import { inventoryPath } from "../../lab/lab";
import { EtcdConnection, withEtcd } from "../../provider/etcd/etcdClient";
import { hostRoleName } from "../../provider/etcd/hostAccessSpec";
import { nodesDir } from "../../provider/etcd/keys";
import { audit } from "../../provider/ipam/ipamStore";
import { DEFAULT_BUNDLE_PATH } from "../../components/network";
import { cleanupAll } from "../support/cleanup";
import { startTestLab, TestLab } from "../support/lab";
import { REPO, removeStack, rootProjectStack } from "../support/pulumi";
import { waitFor } from "../support/traffic";

const LAB = "tint1";
const OCTET = 193;
const HOSTS = ["h1", "h2"];

let lab: TestLab | undefined;
let stack: Stack | undefined;
const stackName = `rel-intnet-${process.pid}`;
const rolledBundle = path.join(os.tmpdir(), `tint1-bundle-${process.pid}.tgz`);
const backend = path.join(os.tmpdir(), `tint1-backend-${process.pid}`);

interface State {
  resources: { type: string; urn: string; inputs?: { bundleSha256?: string } }[];
  pending_operations?: unknown[];
}

const host = (name: string) => lab!.inventory.hosts.find((h) => h.name === name)!;

/** Pids of processes whose command line matches `pattern` (a pgrep -f extended regex). */
function pids(pattern: string): number[] {
  return spawnSync("pgrep", ["-f", pattern], { encoding: "utf8" }).stdout.split("\n").filter(Boolean).map(Number);
}

/** The processes bpfnet runs for one service directory: its supervisor loops and the daemon (named by its config flag). */
function serviceProcesses(dir: string, configFlag: string) {
  return { supervisors: pids(`^sh ${dir}/run\\.sh$`).length, daemons: pids(` ${configFlag} ${dir}/`).length };
}

/** The CLI process running `pulumi up` for our stack (started by the Automation API). */
const upProcess = () => pids(`pulumi up .*--stack ${stackName}( |$)`)[0];

/** A process and all its descendants (the CLI, its language host, the dynamic provider). */
function processTree(pid: number): number[] {
  const children = spawnSync("pgrep", ["-P", String(pid)], { encoding: "utf8" }).stdout.split("\n").filter(Boolean).map(Number);
  return [pid, ...children.flatMap(processTree)];
}

const releases = (name: string) => (fs.existsSync(`${host(name).installDir}/releases`) ? fs.readdirSync(`${host(name).installDir}/releases`) : []);
const bundles = (name: string) => (fs.existsSync(`${host(name).installDir}/bundles`) ? fs.readdirSync(`${host(name).installDir}/bundles`) : []);
const current = (name: string) => (fs.existsSync(`${host(name).installDir}/current`) ? fs.readlinkSync(`${host(name).installDir}/current`) : "");

beforeAll(async () => {
  lab = await startTestLab(LAB, OCTET, "vxlan", 2);
  fs.mkdirSync(backend, { recursive: true });
  stack = await rootProjectStack(stackName, { "bpfnet:inventory": inventoryPath(lab.stateDir), "bpfnet:clusterCidr": "10.193.128.0/17" }, { PULUMI_BACKEND_URL: `file://${backend}` });
  // The same agent, other bytes: a new bundle digest, so `up` rolls every agent to a new release.
  execFileSync("sh", ["-c", 'gunzip -c "$1" | gzip -1 > "$2"', "sh", DEFAULT_BUNDLE_PATH, rolledBundle]);
}, 120_000);

afterAll(async () => {
  // A test failing right after a SIGKILL leaves the killed CLI's lock, which would stop the destroy.
  const locks = path.join(backend, ".pulumi", "locks");
  await cleanupAll([() => fs.rmSync(locks, { recursive: true, force: true }), () => stack && removeStack(stack), () => lab?.down(), () => fs.rmSync(path.join(REPO, `Pulumi.${stackName}.yaml`), { force: true }), () => fs.rmSync(rolledBundle, { force: true }), () => fs.rmSync(backend, { recursive: true, force: true })]);
}, 600_000);

test("scenario 6 (hosts): pulumi up killed during etcd creation, agent deployment and a rolling update, then refresh + up: converges, nothing orphaned or duplicated", async () => {
  const s = stack!;
  const h1 = host("h1");
  const etcdDir = `${h1.stateDir}/etcd`;
  const agentDir = (name: string) => `${host(name).stateDir}/agent`;
  const kills: string[] = [];

  /**
   * Starts `up`, waits until `point` holds, kills the CLI and then refreshes. `hold`: processes
   * frozen (SIGSTOP, with their descendants) from the point until the CLI is dead, so the
   * operation under way cannot finish and be recorded in between (an agent that starts and
   * registers in ~0.5 s could, before the kill landed); they go on (SIGCONT) afterwards.
   */
  async function interruptAt(label: string, signal: "TERM" | "KILL", point: () => boolean, hold: () => number[] = () => []): Promise<State> {
    const t0 = Date.now();
    const running = s.up().then(
      () => "finished",
      (e: Error) => e.message,
    );
    let finished = false;
    void running.then((o) => (finished = o === "finished"));
    await waitFor(label, () => point() || finished, 300_000, 20);
    const roots = hold();
    if (roots.length) spawnSync("kill", ["-STOP", ...roots.map(String)]); // first, so no new child escapes
    const held = roots.flatMap(processTree);
    if (held.length) spawnSync("kill", ["-STOP", ...held.map(String)]);
    let outcome: string;
    try {
      expect(finished).toBe(false);
      const cli = upProcess();
      expect(cli).toBeDefined();
      // TERM: what a cancelled CI job sends. KILL: a crash of the machine running the CLI, which
      // takes the provider down mid-operation too.
      const victims = signal === "TERM" ? [cli] : processTree(cli);
      spawnSync("kill", [`-${signal}`, ...victims.map(String)]);
      outcome = await running;
    } finally {
      if (held.length) spawnSync("kill", ["-CONT", ...held.map(String)]);
    }
    expect(outcome).not.toBe("finished");
    const killedAfter = Date.now() - t0;
    // A killed CLI leaves its lock behind; the operator removes it (the diy backend has no `pulumi cancel`).
    if (signal === "KILL") fs.rmSync(path.join(backend, ".pulumi", "locks"), { recursive: true, force: true });
    const left = await deployment();
    const refreshed = await s.refresh({ clearPendingCreates: true });
    expect(refreshed.summary.result).toBe("succeeded");
    kills.push(`SIG${signal} ${label} (after ${killedAfter} ms; ${(left.pending_operations ?? []).length} pending operations; refresh ok)`);
    return left;
  }
  const deployment = async () => (await s.exportStack()).deployment as State;
  /** h1's agent as the state records it, if at all. */
  const recordedAgent = (st: State) => st.resources.find((r) => r.urn.endsWith("::net-agent-h1"));

  // 1. While the etcd member is being created: its supervisor has started, the resource is not recorded yet.
  await interruptAt("etcd member starting on h1", "TERM", () => serviceProcesses(etcdDir, "--config-file").supervisors > 0);
  // 2. While the agents are being deployed: h1's agent is starting, its create unrecorded.
  const afterAgentKill = await interruptAt(
    "agent starting on h1",
    "KILL",
    () => serviceProcesses(agentDir("h1"), "agent --config").supervisors > 0,
    () => pids(`^sh ${agentDir("h1")}/run\\.sh$`),
  );
  // The case that matters: the agent runs on h1, the state does not know it.
  expect(recordedAgent(afterAgentKill)).toBeUndefined();
  // Converge once on the first bundle.
  let t0 = Date.now();
  const first = await s.up();
  expect(first.summary.result).toBe("succeeded");
  const firstConvergeMs = Date.now() - t0;
  const oldRelease = current("h1");
  expect(oldRelease).not.toBe("");

  // 3. In the middle of a rolling update: h1 already switched to the new release, its update unrecorded.
  await s.setConfig("bpfnet:agentBundle", { value: rolledBundle });
  const oldSha = recordedAgent(await deployment())!.inputs!.bundleSha256;
  const afterRollKill = await interruptAt("rolling update, h1 on the new release", "KILL", () => current("h1") !== oldRelease && current("h1") !== "");
  // h1 switched release on the host; the state still records the old bundle.
  expect(recordedAgent(afterRollKill)!.inputs!.bundleSha256).toBe(oldSha);
  t0 = Date.now();
  const final = await s.up();
  const finalConvergeMs = Date.now() - t0;
  expect(final.summary.result).toBe("succeeded");

  // The state: no pending operation, one agent per host, one etcd member; another up changes nothing.
  const state = await deployment();
  expect(state.pending_operations ?? []).toEqual([]);
  const urns = state.resources.map((r) => r.urn);
  expect(new Set(urns).size).toBe(urns.length);
  expect(state.resources.filter((r) => r.type.endsWith(":NodeAgent"))).toHaveLength(HOSTS.length);
  expect(state.resources.filter((r) => r.type.endsWith(":EtcdMember"))).toHaveLength(1);
  const again = await s.up();
  expect(Object.keys(again.summary.resourceChanges ?? {})).toEqual(["same"]);

  // Hosts: one etcd (h1 only), one agent per host, on the new release only, no bundle left.
  expect(serviceProcesses(etcdDir, "--config-file")).toEqual({ supervisors: 1, daemons: 1 });
  expect(serviceProcesses(`${host("h2").stateDir}/etcd`, "--config-file")).toEqual({ supervisors: 0, daemons: 0 });
  const newRelease = path.basename(current("h1"));
  expect(newRelease).not.toBe(path.basename(oldRelease));
  for (const h of HOSTS) {
    expect({ host: h, ...serviceProcesses(agentDir(h), "agent --config") }).toEqual({ host: h, supervisors: 1, daemons: 1 });
    expect({ host: h, current: current(h), releases: releases(h), bundles: bundles(h) }).toEqual({
      host: h,
      current: `${host(h).installDir}/releases/${newRelease}`,
      releases: [newRelease],
      bundles: [],
    });
  }

  // etcd: exactly the two hosts' registrations, allocations and credentials.
  const outputs = await s.outputs();
  const prefix = outputs.networkPrefix.value as string;
  const etcd = outputs.etcdConnection.value as EtcdConnection;
  const podCidrs = outputs.podCidrs.value as Record<string, string>;
  const seen = await withEtcd(etcd, async (c) => ({
    nodes: (await c.getAll().prefix(nodesDir(prefix)).keys()).map((k) => k.slice(nodesDir(prefix).length).replace(/^\//, "")).sort(),
    ipam: await audit(c, prefix),
    users: (await c.getUsers()).map((u) => u.name).filter((n) => n !== "root").sort(),
    roles: (await c.getRoles()).map((r) => r.name).filter((n) => n !== "root").sort(),
  }));
  expect(seen.nodes).toEqual(HOSTS);
  expect(seen.ipam.problems).toEqual([]);
  expect([...seen.ipam.hosts.keys()].sort()).toEqual(HOSTS);
  expect(seen.ipam.cidrs.size).toBe(HOSTS.length);
  for (const h of HOSTS) expect(seen.ipam.hosts.get(h)!.cidr).toBe(podCidrs[h]);
  const hostPrincipals = HOSTS.map((h) => hostRoleName(prefix, h)).sort();
  // One user (named <role>:<generation>) and one role per host.
  expect({ users: seen.users.map((u) => u.replace(/:\d+$/, "")), roles: seen.roles }).toEqual({ users: hostPrincipals, roles: hostPrincipals });

  console.log(
    `scenario 6 (interrupted pulumi up, hosts): ${kills.join("; ")}; converged after the agent kill in ${firstConvergeMs} ms, after the rolling-update kill in ${finalConvergeMs} ms; ` +
      `1 etcd, 1 agent per host, 1 release, 0 bundles, 0 pending operations; next up: no change`,
  );
}, 900_000);
