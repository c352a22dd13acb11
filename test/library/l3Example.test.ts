// examples/l3-router as a user runs it: the program copied into a fresh directory outside the
// repository, the packed bpfnet installed, `pulumi up` onto a 2-host l3 lab (each host alone in
// its subnet behind an FRR router), the router's routes, a ping between containers on the two
// hosts across the router (`npx bpfnet health`), and `pulumi destroy` taking the routes away.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { inventoryPath } from "../../lab/lab";
import { cleanupAll } from "../support/cleanup";
import { startTestLab, TestLab } from "../support/lab";
import { REPO } from "../support/pulumi";
import { createUserProject, healthOf, packPackage, stackDestroy, stackUp, UserProject } from "./support/userProject";

jest.setTimeout(900_000);

describe("examples/l3-router: host L3 mode with a router, from a fresh program directory", () => {
  let lab: TestLab;
  let project: UserProject;
  let packDir: string;
  let podCidrs: Record<string, string> = {};
  const CLUSTER = "10.246.";
  const routerRoutes = () =>
    spawnSync("ip", ["-4", "-n", lab.inventory.router!.netns!, "route", "show"], { encoding: "utf8" })
      .stdout.split("\n")
      .filter((l) => l.startsWith(CLUSTER));

  beforeAll(async () => {
    lab = await startTestLab("tlib2", 174, "l3", 2);
    packDir = fs.mkdtempSync(path.join(os.tmpdir(), "bpfnet-pack-"));
    project = createUserProject("bpfnet-l3-router", packPackage(packDir), fs.readFileSync(path.join(REPO, "examples", "l3-router", "index.ts"), "utf8"));
  });

  afterAll(() =>
    cleanupAll([
      () => project?.teardown(),
      () => packDir && fs.rmSync(packDir, { recursive: true, force: true }),
      () => lab?.down(),
    ]),
  );

  test("pulumi up: etcd, the network, an agent per host and a route per host on the router", () => {
    const outputs = stackUp(project, inventoryPath(lab.stateDir));
    podCidrs = outputs.podCidrs as Record<string, string>;
    expect(Object.keys(podCidrs).sort()).toEqual(["h1", "h2"]);
    for (const cidr of Object.values(podCidrs)) expect(cidr).toMatch(/^10\.246\.\d+\.\d+\/26$/);
    const expected = Object.fromEntries(lab.inventory.hosts.map((h) => [h.name, `${podCidrs[h.name]} via ${h.underlayIp}`]));
    expect(outputs.routes).toEqual(expected);
    // The router forwards each pod CIDR to its host, and has no other route into the cluster CIDR.
    const onRouter = routerRoutes();
    expect(onRouter).toHaveLength(2);
    for (const h of lab.inventory.hosts) expect(onRouter).toContainEqual(expect.stringMatching(new RegExp(`^${podCidrs[h.name].replace(/\./g, "\\.")} (nhid \\d+ )?via ${h.underlayIp.replace(/\./g, "\\.")} `)));
  });

  test("containers on h1 and h2 ping each other across the router", () => {
    const health = healthOf(project, inventoryPath(lab.stateDir));
    expect(health.agents).toBe("2/2 agents ready");
    expect(health.ping).toMatch(/^container on h1 → container on h2 \(10\.246\.\d+\.\d+\): 3\/3 pings/);
    expect(health.status).toBe(0);
  });

  test("pulumi destroy takes the routes off the router", () => {
    stackDestroy(project);
    expect(routerRoutes()).toEqual([]);
  });
});
