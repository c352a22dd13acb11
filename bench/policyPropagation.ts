// Policy propagation: how long from a NetworkPolicy write in etcd until the last host's BPF
// policy map holds the new row, with a plain etcd watcher on the same prefix as the baseline
// (the floor: etcd delivering the event) in the same run.
//
//   npx ts-node bench/policyPropagation.ts [--rounds 50] [--hosts 3]
//
// A vxlan lab (tpol4, 10.181.0.0/16) with real agents; one endpoint labelled app=api per host,
// so every agent enforces the policy. Each round rewrites the policy with another port through
// the NetworkPolicy provider; t0 is when the write's transaction returned. The watcher's time is
// when its event arrived; a host's time is when its pinned bpfnet_policy map (polled every 2 ms
// from this process) first holds a row for the new port. Reported: p50/p99/max of the watcher
// and of the last host, and their ratio. Needs root and dist/ built (scripts/setup).
import { performance } from "perf_hooks";
import { openDatapathMaps } from "../bpf";
import type { DatapathMaps } from "../bpf";
import { connect } from "../provider/etcd/etcdClient";
import { policiesDir } from "../provider/etcd/keys";
import { networkPolicyProvider as provider, NetworkPolicyInputs, NetworkPolicyOutputs } from "../provider/policy/networkPolicy";
import { startTestLab } from "../test/support/lab";
import { startEtcdOn } from "../test/agent/support/etcd";
import { addContainerNetns, LabAgent, removeContainers, seedNetwork, sleep } from "../test/agent/support/agents";
import { cleanupAll } from "../test/support/cleanup";
import { fmt, markdownTable, percentile } from "./lib/stats";

const LAB = "tpol4";
const OCTET = 181;
const PREFIX = `/bpfnet/${LAB}`;

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

async function main(): Promise<void> {
  const rounds = arg("rounds", 50);
  const hostCount = arg("hosts", 3);
  const containers = Array.from({ length: hostCount }, (_, i) => `tpolcp${i}`);
  const lab = await startTestLab(LAB, OCTET, "vxlan", hostCount);
  const etcd = await startEtcdOn(`10.${OCTET}.0.254`);
  const agents: LabAgent[] = [];
  const maps: DatapathMaps[] = [];
  const client = connect(etcd.connection);
  let outs: NetworkPolicyOutputs | undefined;
  try {
    await seedNetwork(etcd.connection, { prefix: PREFIX, mode: "vxlan", clusterCidr: `10.${OCTET}.128.0/17`, vni: 6 }, lab.inventory.hosts.map((h) => h.name));
    agents.push(...lab.inventory.hosts.map((h) => new LabAgent(h, { prefix: PREFIX, etcd: etcd.connection })));
    await Promise.all(agents.map((a) => a.start()));
    for (const [i, a] of agents.entries()) {
      addContainerNetns(containers[i]);
      await a.client.addEndpoint({ id: `api${i}`, netns: `/run/netns/${containers[i]}`, labels: { app: "api" } });
      maps.push(openDatapathMaps(a.host.bpffsDir));
    }
    const spec = (port: number) =>
      ({ connection: etcd.connection, prefix: PREFIX, policyName: "prop", endpointSelector: { app: "api" }, ingress: [{ toPorts: [{ port, protocol: "TCP" }] }] }) as NetworkPolicyInputs;
    const hasPort = (m: DatapathMaps, port: number) => m.policy.entries().some((r) => r.dport === port);

    const made = await provider.create!((await provider.check!({} as NetworkPolicyInputs, spec(1000))).inputs!);
    outs = made.outs!;
    for (const m of maps) while (!hasPort(m, 1000)) await sleep(10);

    let watched: ((t: number) => void) | undefined;
    const watcher = await client.watch().prefix(policiesDir(PREFIX)).create();
    watcher.on("put", () => watched?.(performance.now()));

    const watchMs: number[] = [];
    const lastHostMs: number[] = [];
    for (let i = 1; i <= rounds; i++) {
      const port = 1000 + i;
      const sawWatch = new Promise<number>((resolve) => (watched = resolve));
      const checked = (await provider.check!({} as NetworkPolicyInputs, spec(port))).inputs!;
      const update = provider.update!(made.id, outs, checked);
      const result = await update;
      const t0 = performance.now();
      outs = result.outs!;
      const seen: number[] = [];
      const pending = new Set(maps.keys());
      const deadline = t0 + 30_000;
      while (pending.size && performance.now() < deadline) {
        for (const h of [...pending]) {
          if (hasPort(maps[h], port)) {
            seen.push(performance.now() - t0);
            pending.delete(h);
          }
        }
        await sleep(2);
      }
      if (pending.size) throw new Error(`round ${i}: hosts ${[...pending].join(",")} never got port ${port}`);
      watchMs.push(Math.max(0, (await sawWatch) - t0));
      lastHostMs.push(Math.max(...seen));
    }
    await watcher.cancel();

    const row = (name: string, xs: number[]) => [name, fmt(percentile(xs, 50)), fmt(percentile(xs, 99)), fmt(Math.max(...xs))];
    console.log(`\n${rounds} policy updates, ${hostCount} hosts (vxlan lab), poll interval 2 ms\n`);
    console.log(markdownTable(["from the etcd write's answer to", "p50 ms", "p99 ms", "max ms"], [row("etcd watch event (baseline)", watchMs), row("last host's policy map updated", lastHostMs)]));
    console.log(`\nlast host, p50: ${fmt(percentile(lastHostMs, 50) - percentile(watchMs, 50))} ms after the baseline`);
  } finally {
    await cleanupAll([
      () => outs && provider.delete!(outs.policyKey, outs),
      () => client.close(),
      ...agents.map((a) => () => a.stop()),
      () => maps.forEach((m) => m.close()),
      () => removeContainers(containers),
      () => etcd.stop(),
      () => lab.down(),
    ]);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
