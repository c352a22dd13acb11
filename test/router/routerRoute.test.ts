// RouterRoute against the l3 lab's router, through the provider (the engine's calls, in process):
// both drivers' lifecycle, ownership, drift, and the failure paths. The router's state is always
// checked from outside: `ip -n <lab>-rt route` and vtysh in the namespace.
import * as fs from "fs";
import * as path from "path";
import { sshConnectionFor } from "../../lab/inventory";
import { routerRouteProvider as provider } from "../../provider/router/routerRoute";
import { IDLE_CLOSE_MS, closeRouterChannels, routerChannelStats, setRouterIdleCloseMs } from "../../provider/router/drivers/channel";
import type { RouterRouteOutputs } from "../../provider/router/routerRouteSpec";
import { startTestLab, TestLab } from "../support/lab";
import {
  Driver,
  asOutputs,
  eventually,
  frrStatics,
  ipInRouter,
  kernelRoutes,
  routeInputs,
  routerSshds,
  routingTable,
  startRouterSshd,
  stopRouterSshd,
  vtysh,
} from "./helpers";

let lab: TestLab;
const router = () => lab.inventory.router!;
const hostIp = (i: number) => lab.inventory.hosts[i].underlayIp;

beforeAll(async () => {
  lab = await startTestLab("trt1", 240, "l3", 2);
});
afterAll(async () => {
  await closeRouterChannels();
  lab?.down();
});

async function create(driver: Driver, prefix: string, nextHop: string): Promise<{ id: string; outs: RouterRouteOutputs }> {
  const r = await provider.create!(routeInputs(router(), driver, prefix, nextHop));
  return { id: r.id, outs: asOutputs(r.outs) };
}

/** The kernel route to `prefix` has settled on `nextHop` (FRR installs asynchronously). */
async function kernelSays(prefix: string, nextHop: string | undefined): Promise<string> {
  const want = (s: string) => (nextHop ? s.includes(`via ${nextHop} `) && s.split("\n").length === 1 : s === "");
  return eventually(() => kernelRoutes(router(), prefix), want);
}

describe.each(["linux", "frr"] as const)("%s driver", (driver) => {
  const base = driver === "linux" ? 100 : 120;
  const prefix = `10.240.${base}.0/24`;
  let id = "";
  let outs: RouterRouteOutputs;

  test("create installs the route, marked as bpfnet's", async () => {
    ({ id, outs } = await create(driver, prefix, hostIp(0)));
    expect(id).toBe(`root@${router().ssh.host}:22 ${driver === "linux" ? "linux table=main proto=178" : "frr tag=178"} ${prefix}`);
    expect(outs).toMatchObject({ prefix, nextHop: hostIp(0), routerName: `root@${router().ssh.host}:22` });
    const kernel = await kernelSays(prefix, hostIp(0));
    if (driver === "linux") expect(kernel).toBe(`${prefix} via ${hostIp(0)} dev eth1 proto 178 `.trim());
    else expect(frrStatics(router(), prefix)).toEqual([`ip route ${prefix} ${hostIp(0)} tag 178`]);
  });

  test("create again changes nothing on the router", async () => {
    const before = [routingTable(router()), frrStatics(router())];
    const again = await create(driver, prefix, hostIp(0));
    expect(again.id).toBe(id);
    expect([routingTable(router()), frrStatics(router())]).toEqual(before);
  });

  test("read asks the router and finds no drift", async () => {
    expect(await provider.read!(id, outs)).toEqual({ id, props: outs });
  });

  test("update moves the next hop in place, leaving one route", async () => {
    const news = routeInputs(router(), driver, prefix, hostIp(1));
    outs = asOutputs((await provider.update!(id, outs, news)).outs);
    expect(outs.nextHop).toBe(hostIp(1));
    await kernelSays(prefix, hostIp(1));
    if (driver === "frr") expect(frrStatics(router(), prefix)).toEqual([`ip route ${prefix} ${hostIp(1)} tag 178`]);
    // And again: idempotent.
    const before = routingTable(router());
    await provider.update!(id, outs, news);
    expect(routingTable(router())).toBe(before);
  });

  test("a route deleted by hand reads as gone; creating again restores it", async () => {
    if (driver === "linux") ipInRouter(router(), "route", "del", prefix, "proto", "178");
    else vtysh(router(), "configure terminal", `no ip route ${prefix} ${hostIp(1)}`);
    await kernelSays(prefix, undefined);
    expect(await provider.read!(id, outs)).toEqual({ id: "", props: {} });
    // refresh dropped it from state; the next `pulumi up` creates it.
    ({ id, outs } = await create(driver, prefix, hostIp(1)));
    await kernelSays(prefix, hostIp(1));
  });

  test("a next hop changed by hand reads as drift; update restores ours", async () => {
    if (driver === "linux") ipInRouter(router(), "route", "replace", prefix, "via", hostIp(0)); // proto boot: an admin's route
    else vtysh(router(), "configure terminal", `no ip route ${prefix} ${hostIp(1)}`, `ip route ${prefix} ${hostIp(0)}`);
    await kernelSays(prefix, hostIp(0));
    const refreshed = await provider.read!(id, outs);
    expect(refreshed).toEqual({ id, props: { ...outs, nextHop: hostIp(0) } });
    // `pulumi up` after refresh: olds carry the observed next hop, news the program's.
    outs = asOutputs((await provider.update!(id, asOutputs(refreshed.props), routeInputs(router(), driver, prefix, hostIp(1)))).outs);
    const kernel = await kernelSays(prefix, hostIp(1));
    if (driver === "linux") expect(kernel).toContain("proto 178");
    else expect(frrStatics(router(), prefix)).toEqual([`ip route ${prefix} ${hostIp(1)} tag 178`]);
  });

  test("an update interrupted after adding the new next hop converges to one route", async () => {
    // What a failure between "add new" and "remove old" leaves: both next hops, both marked.
    if (driver === "frr") vtysh(router(), "configure terminal", `ip route ${prefix} ${hostIp(0)} tag 178`);
    else ipInRouter(router(), "route", "append", prefix, "via", hostIp(0), "proto", "178", "metric", "50");
    expect(kernelRoutes(router(), prefix).length).toBeGreaterThan(0);
    outs = asOutputs((await provider.update!(id, outs, routeInputs(router(), driver, prefix, hostIp(1)))).outs);
    await kernelSays(prefix, hostIp(1));
    if (driver === "frr") expect(frrStatics(router(), prefix)).toEqual([`ip route ${prefix} ${hostIp(1)} tag 178`]);
  });

  test("delete removes the route", async () => {
    await provider.delete!(id, outs);
    await kernelSays(prefix, undefined);
    expect(frrStatics(router(), prefix)).toEqual([]);
    // Deleting what is already gone is fine.
    await provider.delete!(id, outs);
  });

  test("someone else's route to the prefix is neither replaced nor deleted", async () => {
    const theirs = `10.240.${base + 1}.0/24`;
    if (driver === "linux") ipInRouter(router(), "route", "add", theirs, "via", hostIp(0));
    else vtysh(router(), "configure terminal", `ip route ${theirs} ${hostIp(0)}`);
    const kernel = await kernelSays(theirs, hostIp(0));
    const before = [routingTable(router()), frrStatics(router())];
    const inputs = routeInputs(router(), driver, theirs, hostIp(0));
    await expect(provider.create!(inputs)).rejects.toThrow(
      new RegExp(`^router root@${router().ssh.host}:22: ${theirs} already has a route bpfnet does not own \\(.*${hostIp(0)}.*\\); refusing to replace it`),
    );
    const props = { ...inputs, routerName: `root@${router().ssh.host}:22` };
    await expect(provider.delete!("id", props)).rejects.toThrow(/is not bpfnet's \(.*\); refusing to delete someone else's route/);
    expect([routingTable(router()), frrStatics(router())]).toEqual(before);
    expect(kernelRoutes(router(), theirs)).toBe(kernel);
    if (driver === "linux") ipInRouter(router(), "route", "del", theirs);
    else vtysh(router(), "configure terminal", `no ip route ${theirs} ${hostIp(0)}`);
    await kernelSays(theirs, undefined);
  });
});

describe("frr startup config", () => {
  test("writeStartupConfig saves each change with write memory", async () => {
    const prefix = "10.240.130.0/24";
    const startup = () => fs.readFileSync(path.join(router().vtyshArgs[1], "frr.conf"), "utf8");
    const inputs = routeInputs(router(), "frr", prefix, hostIp(0));
    inputs.router.writeStartupConfig = true;
    const created = await provider.create!(inputs);
    expect(startup()).toContain(`ip route ${prefix} ${hostIp(0)} tag 178\n`);
    await provider.delete!(created.id, asOutputs(created.outs));
    expect(startup()).not.toContain(prefix);
  });
});

describe("failures", () => {
  test("a wrong host key is refused and nothing changes on the router", async () => {
    const before = [routingTable(router()), frrStatics(router())];
    for (const driver of ["linux", "frr"] as const) {
      const conn = { ...sshConnectionFor(router().ssh), hostKeyFingerprint: lab.inventory.hosts[0].ssh.hostKeyFingerprint };
      await expect(provider.create!(routeInputs(router(), driver, "10.240.140.0/24", hostIp(0), conn))).rejects.toThrow(
        /^router root@10\.240\.0\.200:22 \(\w+\): reading routes to 10\.240\.140\.0\/24: `(ip|vtysh) .*`: cannot connect: ssh root@10\.240\.0\.200:22: host key SHA256:\S+ does not match the expected SHA256:\S+; refusing to connect$/,
      );
    }
    expect([routingTable(router()), frrStatics(router())]).toEqual(before);
  });

  test("a failing command names the router and the command; the old route stays; a fixed update converges", async () => {
    const prefix = "10.240.141.0/24";
    const { id, outs } = await create("linux", prefix, hostIp(0));
    // An address no interface of the router reaches: the kernel refuses the route.
    await expect(provider.update!(id, outs, routeInputs(router(), "linux", prefix, "10.240.99.1"))).rejects.toThrow(
      "router root@10.240.0.200:22 (linux): adding route 10.240.141.0/24 via 10.240.99.1: `ip route replace 10.240.141.0/24 via 10.240.99.1 proto 178 table main` exited 2: Error: Nexthop has invalid gateway.",
    );
    expect(kernelRoutes(router(), prefix)).toContain(`via ${hostIp(0)}`);
    const fixed = await provider.update!(id, outs, routeInputs(router(), "linux", prefix, hostIp(1)));
    expect(kernelRoutes(router(), prefix)).toBe(`${prefix} via ${hostIp(1)} dev eth2 proto 178`);
    await provider.delete!(id, asOutputs(fixed.outs));
  });

  test("an frr router whose vtysh cannot reach the daemons: a clear error naming the command", async () => {
    const inputs = routeInputs(router(), "frr", "10.240.142.0/24", hostIp(0));
    inputs.router.vtyshArgs = ["--vty_socket", "/nonexistent"];
    await expect(provider.create!(inputs)).rejects.toThrow(/^router root@10\.240\.0\.200:22 \(frr\): reading routes to 10\.240\.142\.0\/24: `vtysh --vty_socket \/nonexistent -c 'show running-config'` exited 1/);
  });

  test("sshd stopped: a clear error naming the router and the command; started again, the next run converges", async () => {
    const prefix = "10.240.143.0/24";
    const argv = await stopRouterSshd(router());
    const t0 = Date.now();
    await expect(provider.create!(routeInputs(router(), "frr", prefix, hostIp(0)))).rejects.toThrow(
      /^router root@10\.240\.0\.200:22 \(frr\): reading routes to 10\.240\.143\.0\/24: `vtysh .* -c 'show running-config'`: cannot connect: ssh root@10\.240\.0\.200:22: connect ECONNREFUSED 10\.240\.0\.200:22$/,
    );
    expect(Date.now() - t0).toBeLessThan(5000);
    await startRouterSshd(router(), argv);
    const first = await create("frr", prefix, hostIp(0));
    const again = await create("frr", prefix, hostIp(0)); // a second `pulumi up`
    expect(again.id).toBe(first.id);
    await kernelSays(prefix, hostIp(0));
    expect(frrStatics(router(), prefix)).toEqual([`ip route ${prefix} ${hostIp(0)} tag 178`]);
    await provider.delete!(first.id, first.outs);
  });

  test("sshd restarted under a pooled connection: the stale connection is replaced transparently", async () => {
    const prefix = "10.240.144.0/24";
    setRouterIdleCloseMs(30_000); // keep the pooled connection until sshd is killed under it
    const { id, outs } = await create("linux", prefix, hostIp(0));
    const before = routerChannelStats()[outs.routerName];
    await startRouterSshd(router(), await stopRouterSshd(router())); // kills the pooled connection's session too
    expect(routerSshds(router()).filter((p) => /root@|\[priv\]/.test(p.cmdline))).toEqual([]); // no session survived
    expect(await provider.read!(id, outs)).toEqual({ id, props: outs });
    const after = routerChannelStats()[outs.routerName];
    expect(after.reconnects - before.reconnects).toBe(1);
    expect(after.connections - before.connections).toBe(1);
    setRouterIdleCloseMs(IDLE_CLOSE_MS);
    await provider.delete!(id, outs);
    expect(kernelRoutes(router(), prefix)).toBe("");
  });

  test("an unreachable router fails within the connect timeout, naming router and command", async () => {
    const conn = { ...sshConnectionFor(router().ssh), host: "10.240.0.77" }; // on the management subnet, nobody there
    const t0 = Date.now();
    await expect(
      provider.create!(routeInputs(router(), "linux", "10.240.145.0/24", hostIp(0), conn, { connectTimeoutMs: 1500 })),
    ).rejects.toThrow(/^router root@10\.240\.0\.77:22 \(linux\): reading routes to 10\.240\.145\.0\/24: `ip -j -batch - \(route show table main \[proto 178\] 10\.240\.145\.0\/24\)`: cannot connect: ssh root@10\.240\.0\.77:22: /);
    expect(Date.now() - t0).toBeLessThan(6000);
  });
});

describe("jump host", () => {
  test("a router reached through a bastion (a lab host) is programmed the same way", async () => {
    const conn = { ...sshConnectionFor(router().ssh), jump: sshConnectionFor(lab.inventory.hosts[0].ssh) };
    const prefix = "10.240.146.0/24";
    const created = await provider.create!(routeInputs(router(), "linux", prefix, hostIp(1), conn));
    const outs = asOutputs(created.outs);
    expect(outs.routerName).toBe(`root@10.240.0.200:22 via root@${lab.inventory.hosts[0].ssh.host}:22`);
    expect(kernelRoutes(router(), prefix)).toBe(`${prefix} via ${hostIp(1)} dev eth2 proto 178`);
    await provider.delete!(created.id, outs);
    expect(kernelRoutes(router(), prefix)).toBe("");
  });
});
