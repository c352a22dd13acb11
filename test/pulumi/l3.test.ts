// Host-L3 mode through the real CLI on an l3 lab (hosts in separate subnets behind a router):
// `pulumi up` deploys etcd, the network, allocations, agents and one RouterRoute per host;
// containers on two hosts talk across the router. With the FRR driver: host removal, drift on
// the router, an unreachable router mid-update, and a wrong host key. With the linux driver:
// the same deployment and traffic, exactly one bpfnet route per host.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { Stack } from "@pulumi/pulumi/automation";
import { Inventory, InventoryHost, InventoryRouter } from "../../lab/inventory";
import { inventoryPath } from "../../lab/lab";
import { startTestLab, TestLab } from "../support/lab";
import { REPO, removeStack, rootProjectStack } from "../support/pulumi";
import { inNetns, ping, tcpTransfer } from "../support/traffic";
import { startRouterSshd, stopRouterSshd } from "../router/helpers";

jest.setTimeout(300_000);

const children: import("child_process").ChildProcess[] = [];

function routerRoutes(r: InventoryRouter): string[] {
  return spawnSync("ip", ["-4", "-n", r.netns!, "route", "show"], { encoding: "utf8" })
    .stdout.split("\n")
    .filter((l) => l.startsWith("10.244."));
}

/** Adds a container on a host through the agent's CLI (inside the host's namespace); returns its IP. */
function addContainer(h: InventoryHost, name: string): string {
  spawnSync("ip", ["netns", "del", name]);
  spawnSync("ip", ["netns", "add", name]);
  const r = inNetns(h.netns!, [process.execPath, path.join(REPO, "bin", "bpfnet"), "endpoint", "add", "--socket", `${h.stateDir}/agent/agent.sock`, "--netns", `/run/netns/${name}`, "--id", name, "--json"]);
  if (r.status !== 0) throw new Error(`endpoint add on ${h.name}: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { endpoint: { address: string } }).endpoint.address.split("/")[0];
}

function removeContainer(h: InventoryHost, name: string): void {
  inNetns(h.netns!, [process.execPath, path.join(REPO, "bin", "bpfnet"), "endpoint", "del", "--socket", `${h.stateDir}/agent/agent.sock`, "--id", name]);
  spawnSync("ip", ["netns", "del", name]);
}

describe.each([
  ["frr", "tl3f", 229],
  ["linux", "tl3l", 219],
] as const)("l3 mode through the real CLI, %s driver", (driver, labName, octet) => {
  let lab: TestLab;
  let stack: Stack;
  let inv: Inventory;
  const stackName = `ci-l3${driver}-${process.pid}`;
  const containers = [`${labName}ca`, `${labName}cb`];
  const ips: string[] = [];

  beforeAll(async () => {
    lab = await startTestLab(labName, octet, "l3", 3);
    inv = lab.inventory;
    stack = await rootProjectStack(stackName, { "bpfnet:inventory": inventoryPath(lab.stateDir), "bpfnet:routerDriver": driver });
  });

  afterAll(async () => {
    for (const c of children) c.kill("SIGKILL");
    if (lab) containers.forEach((c, i) => removeContainer(inv.hosts[i], c));
    if (stack) await removeStack(stack);
    lab?.down();
  });

  test("pulumi up: agents and exactly one bpfnet route per host on the router", async () => {
    const up = await stack.up();
    expect(up.summary.result).toBe("succeeded");
    const podCidrs = up.outputs.podCidrs.value as Record<string, string>;
    const routes = routerRoutes(inv.router!);
    expect(routes).toHaveLength(3);
    for (const h of inv.hosts) expect(routes.filter((r) => r.startsWith(`${podCidrs[h.name]} `) && r.includes(`via ${h.underlayIp} `))).toHaveLength(1);
  });

  test("containers on two hosts ping and move 10 MB both ways across the router", async () => {
    containers.forEach((c, i) => ips.push(addContainer(inv.hosts[i], c)));
    expect(ping(containers[0], ips[1], 3).received).toBe(3);
    expect(ping(containers[1], ips[0], 3).received).toBe(3);
    const ab = await tcpTransfer(containers[0], containers[1], ips[1], 10_000_000, 5301, children);
    expect(ab.received).toEqual({ n: ab.sent, sha: ab.sha });
    const ba = await tcpTransfer(containers[1], containers[0], ips[0], 10_000_000, 5302, children);
    expect(ba.received).toEqual({ n: ba.sent, sha: ba.sha });
    // No tunnel: the host sends the other pod CIDR to its gateway, the router.
    expect(inNetns(inv.hosts[0].netns!, ["ip", "route", "get", ips[1]]).stdout).toContain(`via ${inv.router!.hostGateways.h1}`);
  });

  test("a route deleted by hand on the router: refresh names it, up restores it", async () => {
    const podCidrs = (await stack.outputs()).podCidrs.value as Record<string, string>;
    const r = inv.router!;
    if (driver === "frr") {
      spawnSync("ip", ["netns", "exec", r.netns!, "vtysh", ...r.vtyshArgs, "-c", "configure terminal", "-c", `no ip route ${podCidrs.h2} ${inv.hosts[1].underlayIp} tag 178`]);
    } else {
      spawnSync("ip", ["-n", r.netns!, "route", "del", podCidrs.h2]);
    }
    for (let i = 0; i < 50 && routerRoutes(r).length === 3; i++) await new Promise((res) => setTimeout(res, 100));
    expect(routerRoutes(r)).toHaveLength(2);
    expect(ping(containers[0], ips[1], 2, 0.2, 1).received).toBe(0);
    // Refresh must name the drifted route itself: a refresh that reports nothing fails here.
    const drifted: string[] = [];
    const refresh = await stack.refresh({
      onEvent: (e) => {
        const m = e.resOutputsEvent?.metadata;
        if (m && m.op !== "same") drifted.push(m.urn.split("::").pop()!);
      },
    });
    expect(drifted.filter((n) => n.endsWith("-route-h2"))).toHaveLength(1);
    expect(Object.entries(refresh.summary.resourceChanges ?? {}).filter(([op]) => op !== "same").length).toBeGreaterThan(0);
    await stack.up();
    expect(routerRoutes(r)).toHaveLength(3);
    expect(ping(containers[0], ips[1], 3).received).toBe(3);
  });

  test("removing a host removes its route, agent and allocation; the others keep working", async () => {
    const h3 = inv.hosts[2];
    await stack.setConfig("bpfnet:hosts", { value: "h1,h2" });
    const deleted: string[] = [];
    await stack.up({
      onEvent: (e) => {
        const m = e.resourcePreEvent?.metadata;
        if (m?.op === "delete") deleted.push(m.urn.split("::").pop()!);
      },
    });
    // h3's resources and nothing else (its etcd access too, where the network gives hosts their own).
    expect(deleted.filter((n) => !n.endsWith("-h3"))).toEqual([]);
    expect(deleted).toEqual(expect.arrayContaining(["net-route-h3", "net-agent-h3", "net-h3", "probe-h3"]));
    expect(routerRoutes(inv.router!)).toHaveLength(2);
    expect(routerRoutes(inv.router!).some((l) => l.includes(`via ${h3.underlayIp} `))).toBe(false);
    expect(fs.existsSync(`${h3.stateDir}/agent`)).toBe(false);
    expect(ping(containers[0], ips[1], 3).received).toBe(3);
  });

  test("router sshd down during pulumi up: a clear error; back up: the next up converges, no duplicates", async () => {
    const argv = await stopRouterSshd(inv.router!);
    await stack.removeConfig("bpfnet:hosts"); // h3 comes back: its route must be created
    await expect(stack.up()).rejects.toThrow(new RegExp(`${inv.router!.ssh.host.replace(/\./g, "\\.")}`));
    await startRouterSshd(inv.router!, argv);
    await stack.up();
    const routes = routerRoutes(inv.router!);
    expect(routes).toHaveLength(3);
    expect(new Set(routes.map((l) => l.split(" ")[0])).size).toBe(3);
  });

  test("a wrong router host key is refused and nothing changes on the router", async () => {
    const before = routerRoutes(inv.router!);
    const wrong = JSON.parse(fs.readFileSync(inventoryPath(lab.stateDir), "utf8")) as Inventory;
    wrong.router!.ssh.hostKeyFingerprint = wrong.hosts[0].ssh.hostKeyFingerprint;
    const wrongPath = path.join(lab.stateDir, "inventory-wrong-router-key.json");
    fs.writeFileSync(wrongPath, JSON.stringify(wrong));
    await stack.setConfig("bpfnet:inventory", { value: wrongPath });
    await stack.setConfig("bpfnet:hosts", { value: "h1,h2" }); // would delete h3's route
    await expect(stack.up()).rejects.toThrow(/host key .* does not match/);
    expect(routerRoutes(inv.router!)).toEqual(before);
    await stack.setConfig("bpfnet:inventory", { value: inventoryPath(lab.stateDir) });
    await stack.removeConfig("bpfnet:hosts");
  });

  test("pulumi destroy removes every bpfnet route from the router", async () => {
    containers.forEach((c, i) => removeContainer(inv.hosts[i], c));
    await stack.destroy();
    expect(routerRoutes(inv.router!)).toEqual([]);
  });
});
