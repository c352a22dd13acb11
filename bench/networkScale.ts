// `pulumi up` of a Network with many hosts (bench/projects/networkScale: l3 mode, one router,
// N allocations and N routes, agents off, an existing 3-member etcd with TLS) at several sizes:
// up from empty, a no-op up, a one-host change (a host's underlay moves: its route's next hop)
// and destroy, each timed, with the SSH connections the router accepted and the etcd requests
// the three members served. The baseline in the same run: the same N allocations made by the
// provider directly (8 lanes, no engine), so the engine's share shows.
//   npx ts-node bench/networkScale.ts           (NET_SCALE_SIZES=50,100,200 by default)
import { execFileSync } from "child_process";
import * as os from "os";
import * as path from "path";
import { performance } from "perf_hooks";
import { LocalWorkspace, PulumiCommand, Stack } from "@pulumi/pulumi/automation";
import { inventoryPath } from "../lab/lab";
import { containerNetworkProvider } from "../provider/network/containerNetwork";
import { hostAllocationProvider } from "../provider/ipam/hostAllocation";
import { startTestLab } from "../test/support/lab";
import { pulumiEnv, TOOLS } from "../test/support/pulumi";
import { acceptedConnections } from "../test/router/helpers";
import { startThreeMemberEtcd, ThreeMemberEtcd } from "../test/support/threeMemberEtcd";
import { sizeByType, storedState, TypeSize } from "../test/support/stateSize";
import { fmt, markdownTable } from "./lib/stats";

const SIZES = (process.env.NET_SCALE_SIZES ?? "50,100,200").split(",").map(Number);
// "stub" (default): every dynamic resource stores a stub provider (provider/common/providerStub.ts)
// and the allocations a reference to the Network's SharedEtcdConnection; "inline": the stub, each
// allocation storing the etcd connection itself (as before session 5); "own": the providers' code
// and inline connections. A comma-separated list runs them in turn at each size; "both" = own,stub.
// NET_SCALE_OWN_UP_TO=N: "own" only at sizes up to N (its first up of 200 hosts takes ~8 min).
const PROVIDERS = (process.env.NET_SCALE_PROVIDERS ?? "stub").replace(/^both$/, "own,stub").split(",");
const OWN_UP_TO = Number(process.env.NET_SCALE_OWN_UP_TO ?? Infinity);
const providersAt = (n: number) => PROVIDERS.filter((p) => p !== "own" || n <= OWN_UP_TO);

/** The stored state's bytes (secrets as ciphertext), in total and per resource type. */
async function stateSize(stack: Stack): Promise<{ total: number; types: Record<string, TypeSize> }> {
  const { text, resources } = await storedState(stack);
  return { total: text.length, types: sizeByType(resources) };
}
const PROJECT = path.resolve(__dirname, "projects", "networkScale");

/** Requests the members served, by gRPC method (KV Range/Txn/Put/DeleteRange, leases, watches). */
async function etcdRequests(etcd: ThreeMemberEtcd): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const m of etcd.members) {
    const text = await (await fetch(m.metricsUrl)).text();
    for (const line of text.split("\n")) {
      const r = /^grpc_server_handled_total\{[^}]*grpc_method="([A-Za-z]+)"[^}]*\} ([0-9.e+]+)$/.exec(line);
      if (r) out[r[1]] = (out[r[1]] ?? 0) + Number(r[2]);
    }
  }
  return out;
}

const diff = (a: Record<string, number>, b: Record<string, number>) => Object.fromEntries(Object.keys(b).map((k) => [k, b[k] - (a[k] ?? 0)]).filter(([, v]) => (v as number) > 0)) as Record<string, number>;
const kv = (d: Record<string, number>) => ["Range", "Txn", "Put", "DeleteRange"].reduce((n, k) => n + (d[k] ?? 0), 0);

interface Row {
  provider: string;
  hosts: number;
  op: string;
  seconds: number;
  changes: string;
  ssh: number;
  etcd: number;
}

async function main(): Promise<void> {
  execFileSync("npx", ["tsc", "-p", "tsconfig.build.json"], { cwd: path.resolve(__dirname, ".."), stdio: "inherit" });
  const lab = await startTestLab("tsa1", 190, "l3", 2);
  const etcd = await startThreeMemberEtcd();
  const rows: Row[] = [];
  const direct: { hosts: number; seconds: number }[] = [];
  const states: ({ provider: string; hosts: number } & Awaited<ReturnType<typeof stateSize>>)[] = [];
  const load0 = os.loadavg()[0];
  try {
    for (const n of SIZES) for (const provider of providersAt(n)) {
      const pulumiCommand = await PulumiCommand.get({ root: TOOLS });
      // "force": the dist/ built at the start, though others edit the checkout meanwhile (a newer source anywhere would switch the stub off).
      const envVars = { ...pulumiEnv(), BPFNET_PROVIDER_STUB: provider === "own" ? "0" : "force", BPFNET_SHARED_CONNECTION: provider === "stub" ? "1" : "0" };
      const stack: Stack = await LocalWorkspace.createOrSelectStack({ stackName: `bench-netscale-${n}-${provider}-${process.pid}`, workDir: PROJECT }, { pulumiCommand, envVars });
      try {
        await stack.setConfig("networkscale:inventory", { value: inventoryPath(lab.stateDir) });
        await stack.setConfig("networkscale:etcd", { value: JSON.stringify(etcd.connection), secret: true });
        await stack.setConfig("networkscale:hosts", { value: String(n) });
        const run = async (op: string, fn: () => Promise<{ summary: { resourceChanges?: Record<string, number> } } | unknown>) => {
          const c0 = acceptedConnections(lab.stateDir);
          const e0 = await etcdRequests(etcd);
          const t0 = performance.now();
          const r = (await fn()) as { summary?: { resourceChanges?: Record<string, number> } };
          const seconds = (performance.now() - t0) / 1000;
          const e = diff(e0, await etcdRequests(etcd));
          const changes = JSON.stringify(r?.summary?.resourceChanges ?? {});
          rows.push({ provider, hosts: n, op, seconds, changes, ssh: acceptedConnections(lab.stateDir) - c0, etcd: kv(e) });
          console.error(`${n} hosts (${provider} provider), ${op}: ${fmt(seconds)} s ${changes} etcd ${JSON.stringify(e)} load ${os.loadavg()[0].toFixed(1)}`);
        };
        await run("up from empty", () => stack.up());
        const size = await stateSize(stack);
        states.push({ provider, hosts: n, ...size });
        console.error(`${n} hosts (${provider} provider): state ${size.total} bytes ${JSON.stringify(size.types)}`);
        await run("no-op up", () => stack.up());
        await stack.setConfig("networkscale:moved", { value: String(Math.floor(n / 2)) });
        await run("one host changed", () => stack.up());
        await run("destroy", () => stack.destroy());
      } finally {
        // A failed step leaves resources: destroy them while the lab and etcd still run.
        await stack.destroy().catch(() => undefined);
        await stack.workspace.removeStack(stack.name).catch(() => undefined);
      }

      if (provider !== providersAt(n).at(-1)) continue;
      // Baseline: the provider alone makes the same allocations (8 lanes, one process, no engine).
      const c = await containerNetworkProvider.check!({} as never, { connection: etcd.connection, networkName: `direct-${n}`, mode: "l3", clusterCidr: "10.64.0.0/12", hostPrefixLength: 24 } as never);
      const prefix = (await containerNetworkProvider.create(c.inputs!)).id;
      const names = Array.from({ length: n }, (_, i) => `sim-${i}`);
      const t0 = performance.now();
      await Promise.all(Array.from({ length: 8 }, async () => {
        for (let h = names.shift(); h !== undefined; h = names.shift()) await hostAllocationProvider.create({ connection: etcd.connection, prefix, host: h });
      }));
      direct.push({ hosts: n, seconds: (performance.now() - t0) / 1000 });
    }
  } finally {
    await etcd.stop();
    await lab.down();
  }
  console.log(`\n### pulumi up of a Network of N hosts (l3, one router, agents off, 3-member etcd with TLS)\n`);
  console.log(`Load average (1 min) at the start ${load0.toFixed(1)}, at the end ${os.loadavg()[0].toFixed(1)}.\n`);
  console.log(markdownTable(["provider in state", "hosts", "operation", "seconds", "per host ms", "changes", "router SSH connections", "etcd KV requests"], rows.map((r) => [r.provider, String(r.hosts), r.op, fmt(r.seconds), fmt((1000 * r.seconds) / r.hosts, 0), r.changes, String(r.ssh), String(r.etcd)])));
  console.log(`\nState after the first up (\`pulumi stack export\`, secrets as stored: ciphertext), bytes per resource of each type (of which the serialized provider + the credentials, inputs and outputs together):\n`);
  console.log(markdownTable(["provider in state", "hosts", "state bytes", "per type: count × bytes (provider + credentials)"], states.map((s) => [s.provider, String(s.hosts), String(s.total), Object.entries(s.types).map(([t, v]) => `${t} ${v.count} × ${v.each} (${v.provider} + ${v.credentials})`).join("; ")])));
  console.log(`\nBaseline, same run: the provider alone allocates N hosts (8 lanes): ${direct.map((d) => `${d.hosts} in ${fmt(d.seconds, 2)} s`).join(", ")}.`);
  process.exit(0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
