// Benchmark: programming 50 pod-CIDR routes on the l3 lab's router, one run, with baselines.
//   1. `pulumi up` creating 50 RouterRoutes (test/projects/router) vs a no-op `pulumi up` of
//      the same 50 (the engine's fixed cost), per driver;
//   2. the provider's pooled, batched SSH channel vs a naive provider that opens one SSH
//      session per route (the "session storm"), same router, same 50 routes.
// Prints absolute figures and ratios, and the SSH connections the router's sshd accepted.
// Run: npx ts-node bench/routes.ts   (needs root and scripts/setup; ~2 minutes)
import * as path from "path";
import { performance } from "perf_hooks";
import { LocalWorkspace, PulumiCommand } from "@pulumi/pulumi/automation";
import { sshConnectionFor } from "../lab/inventory";
import { inventoryPath } from "../lab/lab";
import { withSsh } from "../provider/host/ssh";
import { routerRouteProvider } from "../provider/router/routerRoute";
import { closeRouterChannels } from "../provider/router/drivers/channel";
import { startTestLab } from "../test/support/lab";
import { pulumiEnv, TOOLS } from "../test/support/pulumi";
import { acceptedConnections, routeInputs } from "../test/router/helpers";
import { shellWords } from "../provider/common/shell";

const ROUTES = 50;
const PROJECT = path.resolve(__dirname, "..", "test", "projects", "router");

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = performance.now();
  const value = await fn();
  return { ms: performance.now() - t0, value };
}

async function main(): Promise<void> {
  const lab = await startTestLab("bdrt", 214, "l3", 2);
  const router = lab.inventory.router!;
  const rows: string[][] = [];
  const conns = () => acceptedConnections(lab.stateDir);
  try {
    for (const driver of ["linux", "frr"] as const) {
      const pulumiCommand = await PulumiCommand.get({ root: TOOLS });
      const stack = await LocalWorkspace.createOrSelectStack({ stackName: `bench-rt-${driver}-${process.pid}`, workDir: PROJECT }, { pulumiCommand, envVars: pulumiEnv() });
      try {
        for (const [k, v] of Object.entries({ inventory: inventoryPath(lab.stateDir), driver, routes: String(ROUTES), prefixBase: "10.242" })) {
          await stack.setConfig(`routertest:${k}`, { value: v });
        }
        let c0 = conns();
        const up = await timed(() => stack.up());
        const upConns = conns() - c0;
        c0 = conns();
        const noop = await timed(() => stack.up());
        rows.push([`pulumi up, ${ROUTES} new routes (${driver})`, `${(up.ms / 1000).toFixed(1)} s`, `${upConns} SSH`, `no-op up ${(noop.ms / 1000).toFixed(1)} s (${conns() - c0} SSH)`, `${(up.ms / noop.ms).toFixed(2)}×`]);
        await stack.destroy();
      } finally {
        await stack.workspace.removeStack(stack.name).catch(() => undefined);
      }
    }

    // The provider alone: 50 concurrent creates through the pooled channel vs one session per route.
    const prefixes = Array.from({ length: ROUTES }, (_, i) => `10.241.${i}.0/24`);
    const hop = (i: number) => lab.inventory.hosts[i % lab.inventory.hosts.length].underlayIp;
    let c0 = conns();
    const pooled = await timed(() => Promise.all(prefixes.map((p, i) => routerRouteProvider.create!(routeInputs(router, "linux", p, hop(i))))));
    await closeRouterChannels();
    const pooledConns = conns() - c0;
    await Promise.all(pooled.value.map((r) => routerRouteProvider.delete!(r.id, r.outs)));
    await closeRouterChannels();
    c0 = conns();
    const naive = await timed(() =>
      Promise.all(prefixes.map((p, i) => withSsh(sshConnectionFor(router.ssh), (s) => s.run(shellWords(["ip", "route", "replace", p, "via", hop(i), "proto", 178]))))),
    );
    const naiveConns = conns() - c0;
    await withSsh(sshConnectionFor(router.ssh), (s) => s.run(prefixes.map((p) => `ip route del ${p}`).join("; ")));
    rows.push([`provider, ${ROUTES} concurrent creates (pooled)`, `${(pooled.ms / 1000).toFixed(2)} s`, `${pooledConns} SSH`, `one session per route ${(naive.ms / 1000).toFixed(2)} s (${naiveConns} SSH)`, `${(pooled.ms / naive.ms).toFixed(2)}×`]);
  } finally {
    await closeRouterChannels();
    lab.down();
  }
  const widths = [0, 1, 2, 3, 4].map((c) => Math.max(...[["measurement", "time", "connections", "baseline", "ratio"], ...rows].map((r) => r[c].length)));
  for (const r of [["measurement", "time", "connections", "baseline", "ratio"], ...rows]) console.log(r.map((v, i) => v.padEnd(widths[i])).join("  "));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
