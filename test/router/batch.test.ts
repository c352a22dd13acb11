// Many routes on one router: 50 RouterRoutes created, refreshed, moved and deleted at once (as the
// engine does in one `pulumi up`) go over one SSH connection in a few batched round trips. The
// connection count comes from both sides: the pool's counters and the router's sshd log.
import { performance } from "perf_hooks";
import { routerRouteProvider as provider } from "../../provider/router/routerRoute";
import { closeRouterChannels, routerChannelStats, RouterChannelStats } from "../../provider/router/drivers/channel";
import type { RouterRouteOutputs } from "../../provider/router/routerRouteSpec";
import { startTestLab, TestLab } from "../support/lab";
import { Driver, acceptedConnections, asOutputs, eventually, frrStatics, kernelRoutes, routeInputs } from "./helpers";

const COUNT = 50;
let lab: TestLab;
const router = () => lab.inventory.router!;
const hostIp = (i: number) => lab.inventory.hosts[i % 2].underlayIp;
const prefixes = Array.from({ length: COUNT }, (_, i) => `10.241.${100 + i}.0/24`);
const ours = (text: string) => text.split("\n").filter((l) => /^10\.241\.1[0-4][0-9]\.0\/24 /.test(l));

beforeAll(async () => {
  lab = await startTestLab("trt2", 241, "l3", 2);
});
afterAll(async () => {
  await closeRouterChannels();
  lab?.down();
});

/** Runs `work` on a cold pool and reports what it cost on the wire. */
async function measured<T>(work: () => Promise<T>): Promise<{ result: T; ms: number; accepted: number; pool: RouterChannelStats }> {
  await closeRouterChannels();
  const name = `root@${router().ssh.host}:22`;
  const zero = { connections: 0, execs: 0, commands: 0, reconnects: 0 };
  const before = routerChannelStats()[name] ?? zero;
  const acceptedBefore = acceptedConnections(lab.stateDir);
  const t0 = performance.now();
  const result = await work();
  const ms = Math.round(performance.now() - t0);
  const after = routerChannelStats()[name];
  // sshd logs the accept after authentication; give the log a moment.
  const accepted = (await eventually(() => acceptedConnections(lab.stateDir) - acceptedBefore, (n) => n > 0, 10_000));
  const pool = { connections: after.connections - before.connections, execs: after.execs - before.execs, commands: after.commands - before.commands, reconnects: 0 };
  return { result, ms, accepted, pool };
}

describe.each(["linux", "frr"] as const)("%d routes through the %s driver", (driver: Driver) => {
  let outs: { id: string; outs: RouterRouteOutputs }[] = [];
  const figures: Record<string, unknown> = {};

  afterAll(() => {
    // The figures docs/router-route.md quotes.
    console.log(`RouterRoute ${driver}, ${COUNT} routes: ${JSON.stringify(figures)}`);
  });

  test("created at once: one SSH connection, a handful of round trips", async () => {
    const m = await measured(() => Promise.all(prefixes.map((p, i) => provider.create!(routeInputs(router(), driver, p, hostIp(i))))));
    outs = m.result.map((r) => ({ id: r.id, outs: asOutputs(r.outs) }));
    figures.create = { ms: m.ms, connections: m.accepted, execs: m.pool.execs, commands: m.pool.commands };
    expect(m.accepted).toBe(1);
    expect(m.pool.connections).toBe(1);
    // Batched: fewer round trips than routes. How many exactly depends on how the resources'
    // steps interleave with the queue, so that count is a figure (printed), not a bound.
    expect(m.pool.execs).toBeLessThan(COUNT);
    const kernel = await eventually(() => ours(kernelRoutes(router())), (l) => l.length === COUNT);
    expect(kernel).toHaveLength(COUNT);
    prefixes.forEach((p, i) => expect(kernel.find((l) => l.startsWith(`${p} `))).toContain(`via ${hostIp(i)} `));
    if (driver === "frr") expect(frrStatics(router(), "10.241.1")).toHaveLength(COUNT);
  });

  test("refreshed at once: every read in one batch, no drift", async () => {
    const m = await measured(() => Promise.all(outs.map((o) => provider.read!(o.id, o.outs))));
    figures.refresh = { ms: m.ms, connections: m.accepted, execs: m.pool.execs };
    expect(m.result).toEqual(outs.map((o) => ({ id: o.id, props: o.outs })));
    expect(m.accepted).toBe(1);
    // Not timing: all 50 reads are queued synchronously, the first starts the connection alone and
    // the 49 others are waiting when it returns, whatever the machine's speed: two round trips.
    expect(m.pool.execs).toBeLessThanOrEqual(2);
    expect(m.pool.commands).toBeLessThan(COUNT);
  });

  test("every next hop moved at once", async () => {
    const m = await measured(() => Promise.all(outs.map((o, i) => provider.update!(o.id, o.outs, routeInputs(router(), driver, o.outs.prefix, hostIp(i + 1))))));
    outs = m.result.map((r, i) => ({ id: outs[i].id, outs: asOutputs(r.outs) }));
    figures.update = { ms: m.ms, connections: m.accepted, execs: m.pool.execs };
    expect(m.accepted).toBe(1);
    const kernel = await eventually(() => ours(kernelRoutes(router())), (l) => l.length === COUNT && l.every((x, i) => x.includes(`via ${hostIp(i + 1)} `)));
    prefixes.forEach((p, i) => expect(kernel.find((l) => l.startsWith(`${p} `))).toContain(`via ${hostIp(i + 1)} `));
    if (driver === "frr") expect(frrStatics(router(), "10.241.1")).toHaveLength(COUNT);
  });

  test("deleted at once: nothing of bpfnet's left", async () => {
    const m = await measured(() => Promise.all(outs.map((o) => provider.delete!(o.id, o.outs))));
    figures.delete = { ms: m.ms, connections: m.accepted, execs: m.pool.execs };
    expect(m.accepted).toBe(1);
    expect(await eventually(() => ours(kernelRoutes(router())), (l) => l.length === 0)).toEqual([]);
    expect(frrStatics(router(), "10.241.1")).toEqual([]);
  });
});
