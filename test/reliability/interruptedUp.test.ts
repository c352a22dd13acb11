/**
 * Reliability scenario 6 (docs/reliability.md), the etcd half: a `pulumi up` creating 12
 * HostAllocations one at a time (test/projects/reliability) is interrupted (SIGTERM to the CLI)
 * at several points; after each kill `pulumi refresh` and then `pulumi up` run
 * again, and are killed again at the next point, until the last `up` runs to the end. Expected:
 * it converges (12 allocations in the state, no pending operation, a further `up` changes
 * nothing), with no orphan or duplicate in etcd (the IPAM audit is clean: one host record and
 * one CIDR record per host, naming each other).
 */
import { spawnSync } from "child_process";
import * as path from "path";
import type { Etcd3 } from "etcd3";
import { LocalWorkspace, PulumiCommand, Stack } from "@pulumi/pulumi/automation";
import { connectAgentClient } from "../../node-agent/daemon/etcd";
import { ipamHostsDir } from "../../provider/etcd/keys";
import { audit } from "../../provider/ipam/ipamStore";
import { cleanupAll } from "../support/cleanup";
import { startEtcd, TestEtcd } from "../support/etcd";
import { pulumiEnv, removeStack, TOOLS } from "../support/pulumi";
import { waitFor } from "../support/traffic";
import { seedNetwork } from "../agent/support/agents";

const PREFIX = "/bpfnet/trel6";
const HOSTS = Array.from({ length: 12 }, (_, i) => `a${i + 1}`);
/** Kill the CLI once etcd holds this many allocations (each run adds to the last). */
const KILL_AT = [2, 6, 9];
const PROJECT = path.join(__dirname, "..", "projects", "reliability");

let etcd: TestEtcd | undefined;
let client: Etcd3 | undefined;
let stack: Stack | undefined;

/** The CLI process running `pulumi up` for our stack (started by the Automation API). */
function upProcess(): number | undefined {
  const out = spawnSync("pgrep", ["-f", `pulumi up .*--stack ${stack!.name}( |$)`], { encoding: "utf8" }).stdout.split("\n").filter(Boolean).map(Number);
  return out[0];
}

const allocated = async () => (await client!.getAll().prefix(ipamHostsDir(PREFIX)).keys()).length;

beforeAll(async () => {
  etcd = await startEtcd();
  client = connectAgentClient(etcd.connection);
  await seedNetwork(etcd.connection, { prefix: PREFIX, mode: "vxlan", clusterCidr: "10.170.0.0/16", vni: 170 }, []);
  const pulumiCommand = await PulumiCommand.get({ root: TOOLS });
  stack = await LocalWorkspace.createOrSelectStack({ stackName: `rel-int-${process.pid}`, workDir: PROJECT }, { pulumiCommand, envVars: pulumiEnv() });
  await stack.setConfig("reltest:etcdEndpoint", { value: etcd.endpoints[0] });
  await stack.setConfig("reltest:prefix", { value: PREFIX });
  await stack.setConfig("reltest:hosts", { value: HOSTS.join(",") });
}, 120_000);

afterAll(async () => {
  await cleanupAll([() => stack && removeStack(stack), () => client?.close(), () => etcd?.stop()]);
}, 300_000);

test("scenario 6: pulumi up killed at several points, then refresh + up: converges, nothing orphaned or duplicated", async () => {
  const s = stack!;
  const kills: string[] = [];
  for (const at of KILL_AT) {
    // One resource at a time, so there is a moment between two allocations to cut in.
    const running = s.up({ parallel: 1 }).then(
      () => "finished",
      (e: Error) => e.message,
    );
    await waitFor(`${at} allocations in etcd`, async () => (await allocated()) >= at, 120_000, 10);
    const cli = upProcess();
    expect(cli).toBeDefined();
    // SIGTERM, as a cancelled CI job or a closed terminal sends it. (SIGKILL can leave the file
    // backend's checkpoint attributes empty: see docs/reliability.md.)
    spawnSync("kill", ["-TERM", String(cli!)]);
    const outcome = await running;
    expect(outcome).not.toBe("finished");
    kills.push(`${await allocated()} allocated when killed`);
    // What the engine needs after a crash: the state may hold pending operations and a lock.
    const refreshed = await s.refresh({ clearPendingCreates: true }).then(
      () => "ok",
      (e: Error) => e.message.split("\n").find((l) => /error/i.test(l)) ?? e.message.slice(0, 200),
    );
    kills.push(`refresh: ${refreshed}`);
  }
  const final = await s.up({ parallel: 1 });
  expect(final.summary.result).toBe("succeeded");
  expect(Object.keys(final.outputs.podCidrs.value as Record<string, string>).sort()).toEqual([...HOSTS].sort());

  // The state: 12 allocations, no pending operation; another up changes nothing.
  const state = (await s.exportStack()).deployment as { resources: { type: string }[]; pending_operations?: unknown[] };
  expect(state.resources.filter((r) => r.type.endsWith(":HostAllocation"))).toHaveLength(HOSTS.length);
  expect(state.pending_operations ?? []).toEqual([]);
  const again = await s.up({ parallel: 1 });
  expect(Object.keys(again.summary.resourceChanges ?? {})).toEqual(["same"]);

  // etcd: one host record and one CIDR record per host, naming each other; nothing else.
  const a = await audit(client!, PREFIX);
  expect(a.problems).toEqual([]);
  expect([...a.hosts.keys()].sort()).toEqual([...HOSTS].sort());
  expect(a.cidrs.size).toBe(HOSTS.length);
  const podCidrs = final.outputs.podCidrs.value as Record<string, string>;
  for (const h of HOSTS) expect(a.hosts.get(h)!.cidr).toBe(podCidrs[h]);
  console.log(`scenario 6 (interrupted pulumi up): ${KILL_AT.length} kills (${kills.join("; ")}); final up converged: ${HOSTS.length} allocations, 0 pending operations, 0 orphans, 0 duplicates; next up: no change`);
}, 900_000);
