// RouterRoute through the real Pulumi CLI (Automation API): 50 routes in one `pulumi up` on the
// l3 lab's router, over one SSH connection; a route deleted or changed by hand shows as drift on
// `pulumi refresh` and `pulumi up` restores it; `pulumi destroy` leaves no bpfnet route. The
// project is test/projects/router; the dynamic provider runs in the CLI's provider process.
import * as fs from "fs";
import * as path from "path";
import { performance } from "perf_hooks";
import { LocalWorkspace, PulumiCommand, Stack } from "@pulumi/pulumi/automation";
import { inventoryPath } from "../../lab/lab";
import { startTestLab, TestLab } from "../support/lab";
import { REPO, TOOLS, pulumiEnv, removeStack } from "../support/pulumi";
import { acceptedConnections, eventually, frrStatics, ipInRouter, kernelRoutes, vtysh } from "./helpers";

const PROJECT = path.join(REPO, "test", "projects", "router");
const COUNT = 50;
let lab: TestLab;
const router = () => lab.inventory.router!;
const hostIp = (i: number) => lab.inventory.hosts[i % 2].underlayIp;
const prefix = (i: number) => `10.243.${100 + i}.0/24`;
/** Kernel routes of the router to the stack's prefixes (FRR's own protocol number differs: filter by prefix). */
const stackRoutes = () => kernelRoutes(router()).split("\n").filter((l) => /^10\.243\.1[0-4][0-9]\.0\/24 /.test(l));

beforeAll(async () => {
  lab = await startTestLab("trt4", 243, "l3", 2);
}, 120_000);
afterAll(() => lab?.down());

describe.each(["linux", "frr"] as const)("%s driver, 50 routes in one stack", (driver) => {
  let stack: Stack;
  const figures: Record<string, unknown> = {};

  beforeAll(async () => {
    const pulumiCommand = await PulumiCommand.get({ root: TOOLS });
    stack = await LocalWorkspace.createOrSelectStack({ stackName: `rt-${driver}-${process.pid}`, workDir: PROJECT }, { pulumiCommand, envVars: pulumiEnv() });
    for (const [k, v] of Object.entries({ inventory: inventoryPath(lab.stateDir), driver, routes: String(COUNT), prefixBase: "10.243" })) {
      await stack.setConfig(`routertest:${k}`, { value: v });
    }
  }, 120_000);

  afterAll(async () => {
    if (stack) await removeStack(stack);
    console.log(`RouterRoute ${driver} via the CLI: ${JSON.stringify(figures)}`);
  }, 300_000);

  test("pulumi up programs all 50 routes over one SSH connection", async () => {
    const accepted = acceptedConnections(lab.stateDir);
    const t0 = performance.now();
    const up = await stack.up();
    figures.up = { ms: Math.round(performance.now() - t0), connections: acceptedConnections(lab.stateDir) - accepted };
    expect(up.summary.resourceChanges).toEqual({ create: COUNT + 1 });
    const routes = await eventually(stackRoutes, (l) => l.length === COUNT);
    expect(routes).toHaveLength(COUNT);
    for (let i = 0; i < COUNT; i++) expect(routes.find((l) => l.startsWith(`${prefix(i)} `))).toContain(`via ${hostIp(i)} `);
    if (driver === "frr") expect(frrStatics(router(), "10.243.1")).toHaveLength(COUNT);
    expect(acceptedConnections(lab.stateDir) - accepted).toBe(1);
    expect((up.outputs.nextHops.value as Record<string, string>)[prefix(7)]).toBe(hostIp(7));
    // The router's key is a secret in state (the file as the backend stores it), its endpoint is not.
    const raw = fs.readFileSync(path.join(REPO, ".pulumi-state", ".pulumi", "stacks", "routertest", `${stack.name}.json`), "utf8");
    expect(raw).not.toMatch(/PRIVATE KEY/);
    const route0 = JSON.parse(raw).checkpoint.latest.resources.find((r: { urn: string }) => r.urn.endsWith("::route-0"));
    expect(route0.outputs.privateKeys).toHaveProperty("ciphertext");
    expect(route0.outputs).toMatchObject({ prefix: prefix(0), nextHop: hostIp(0), routerName: `root@${router().ssh.host}:22` });
    expect(route0.outputs.router.connection.host).toBe(router().ssh.host);
  }, 300_000);

  test("pulumi up again changes nothing, and does not even connect", async () => {
    const accepted = acceptedConnections(lab.stateDir);
    const again = await stack.up();
    expect(again.summary.resourceChanges).toEqual({ same: COUNT + 1 });
    expect(acceptedConnections(lab.stateDir) - accepted).toBe(0);
  }, 300_000);

  test("hand changes show as drift on refresh, and pulumi up restores them", async () => {
    // Route 7 deleted by hand, route 8 pointed elsewhere by hand.
    if (driver === "linux") {
      ipInRouter(router(), "route", "del", prefix(7));
      ipInRouter(router(), "route", "replace", prefix(8), "via", hostIp(9));
    } else {
      vtysh(router(), "configure terminal", `no ip route ${prefix(7)} ${hostIp(7)}`, `no ip route ${prefix(8)} ${hostIp(8)}`, `ip route ${prefix(8)} ${hostIp(9)}`);
    }
    await eventually(stackRoutes, (l) => l.length === COUNT - 1 && l.some((x) => x.startsWith(`${prefix(8)} `) && x.includes(`via ${hostIp(9)} `)));

    const accepted = acceptedConnections(lab.stateDir);
    const t0 = performance.now();
    const refresh = await stack.refresh();
    figures.refresh = { ms: Math.round(performance.now() - t0), connections: acceptedConnections(lab.stateDir) - accepted };
    expect(refresh.summary.resourceChanges).toEqual({ same: COUNT - 1, delete: 1, update: 1 });

    const up = await stack.up();
    expect(up.summary.resourceChanges).toEqual({ same: COUNT - 1, create: 1, update: 1 });
    const routes = await eventually(stackRoutes, (l) => l.length === COUNT && l.every((x, i) => x.includes(`via ${hostIp(i)} `)));
    expect(routes.find((l) => l.startsWith(`${prefix(7)} `))).toContain(`via ${hostIp(7)} `);
    expect(routes.find((l) => l.startsWith(`${prefix(8)} `))).toContain(`via ${hostIp(8)} `);
    if (driver === "linux") expect(routes.every((l) => l.includes("proto 178"))).toBe(true);
    else expect(frrStatics(router(), prefix(8))).toEqual([`ip route ${prefix(8)} ${hostIp(8)} tag 178`]);
    expect((await stack.preview()).changeSummary).toEqual({ same: COUNT + 1 });
  }, 300_000);

  test("pulumi destroy leaves no bpfnet route", async () => {
    const t0 = performance.now();
    const destroy = await stack.destroy();
    figures.destroy = { ms: Math.round(performance.now() - t0) };
    expect(destroy.summary.resourceChanges).toEqual({ delete: COUNT + 1 });
    expect(await eventually(stackRoutes, (l) => l.length === 0)).toEqual([]);
    expect(frrStatics(router())).toEqual([]);
  }, 300_000);
});
