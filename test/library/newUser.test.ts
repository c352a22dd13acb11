// The new user (issue 12), step by step: `npm pack` of this repository, a fresh program
// directory outside it with its own package.json, `npm install` of the tarball, the program of
// README.md's "Using it from a Pulumi program" section copied verbatim (extracted here, so the
// README cannot drift), `pulumi up` onto a 2-host vxlan lab, a ping between containers on the
// two hosts through `npx bpfnet health`, and `pulumi destroy`.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { inventoryPath } from "../../lab/lab";
import { tryRun } from "../../lab/sh";
import { cleanupAll } from "../support/cleanup";
import { startTestLab, TestLab } from "../support/lab";
import { createUserProject, healthOf, packPackage, readmeProgram, run, stackDestroy, stackUp, UserProject } from "./support/userProject";

jest.setTimeout(900_000);

describe("a new user installs the packed bpfnet and runs the README's program", () => {
  let lab: TestLab;
  let project: UserProject;
  let packDir: string;
  const program = readmeProgram("Using it from a Pulumi program");
  const labProcesses = () => tryRun("pgrep", ["-af", lab.stateDir]).stdout.split("\n").filter((l) => /etcd|agent/.test(l));

  beforeAll(async () => {
    lab = await startTestLab("tlib1", 173, "vxlan", 2);
    packDir = fs.mkdtempSync(path.join(os.tmpdir(), "bpfnet-pack-"));
    project = createUserProject("my-network", packPackage(packDir), program);
  });

  afterAll(() =>
    cleanupAll([
      () => project?.teardown(),
      () => packDir && fs.rmSync(packDir, { recursive: true, force: true }),
      () => lab?.down(),
    ]),
  );

  test("the README's program imports the package by name and reads the inventory from config", () => {
    expect(program).toMatch(/from "bpfnet"/);
    expect(program).toMatch(/config\.require\("inventory"\)/);
  });

  test("npm installed bpfnet and the libraries its providers require where the program resolves them", () => {
    const installed = path.join(project.dir, "node_modules", "bpfnet");
    expect(fs.lstatSync(installed).isSymbolicLink()).toBe(false); // a copy of the tarball, not a link to the repository
    for (const f of ["dist/index.js", "dist/index.d.ts", "build/agent-bundle.tgz", "bin/bpfnet"]) expect(fs.existsSync(path.join(installed, f))).toBe(true);
    for (const dep of ["ssh2", "etcd3", "node-forge", "@pulumi/pulumi"]) {
      expect(require.resolve(dep, { paths: [project.dir] })).toContain(path.join(project.dir, "node_modules"));
    }
  });

  test("the program type-checks against the package's declarations under the user's strict tsconfig (no skipLibCheck)", () => {
    const tsc = project.npx(["tsc", "--noEmit", "-p", "."]);
    expect(tsc.stdout + tsc.stderr).toBe("");
    expect(tsc.status).toBe(0);
  });

  test("the package's CLI and CNI plugin run from the program's node_modules/.bin", () => {
    const labStatus = project.npx(["bpfnet", "lab", "status", "--name", "tlib1", "--json"]);
    expect(labStatus.status).toBe(0);
    const status = JSON.parse(labStatus.stdout) as { up: boolean; hosts: unknown[] };
    expect(status.up).toBe(true);
    expect(status.hosts).toHaveLength(2);
    const cni = run(path.join(project.dir, "node_modules", ".bin", "bpfnet-cni"), [], { cwd: project.dir, env: { ...project.env, CNI_COMMAND: "VERSION" } });
    expect(cni.status).toBe(0);
    expect(JSON.parse(cni.stdout)).toEqual({ cniVersion: "1.0.0", supportedVersions: ["1.0.0"] });
  });

  test("pulumi up deploys etcd, the network and an agent on every host", () => {
    const outputs = stackUp(project, inventoryPath(lab.stateDir));
    const podCidrs = outputs.podCidrs as Record<string, string>;
    expect(Object.keys(podCidrs).sort()).toEqual(["h1", "h2"]);
    for (const cidr of Object.values(podCidrs)) expect(cidr).toMatch(/^10\.244\.\d+\.0\/24$/);
    expect(podCidrs.h1).not.toBe(podCidrs.h2);
    expect(outputs.etcdEndpoints).toEqual([`https://${lab.inventory.hosts[0].ssh.host}:2379`]);
  });

  test("the providers in the state name bpfnet's modules by package (a serialized require or the stub's packageSpecifier), and each resolves from the program", () => {
    const state = project.pulumi(["stack", "export"]).stdout;
    const named = /(?:require\(|packageSpecifier: )\\"(bpfnet\/[^"\\]+)\\"/g;
    const modules = [...new Set([...state.matchAll(named)].map((m) => m[1]))];
    expect(modules.length).toBeGreaterThan(5);
    for (const m of modules) expect(require.resolve(m, { paths: [project.dir] })).toContain(path.join(project.dir, "node_modules", "bpfnet", "dist"));
  });

  test("npx bpfnet health: both agents ready and containers on h1 and h2 ping each other", () => {
    const health = healthOf(project, inventoryPath(lab.stateDir));
    expect(health.agents).toBe("2/2 agents ready");
    expect(health.ping).toMatch(/^container on h1 → container on h2 \(10\.244\.\d+\.\d+\): 3\/3 pings/);
    expect(health.status).toBe(0);
  });

  test("pulumi destroy removes everything it made on the hosts", () => {
    stackDestroy(project);
    expect(labProcesses()).toEqual([]);
    for (const h of lab.inventory.hosts) expect(fs.existsSync(path.join(h.stateDir, "etcd"))).toBe(false);
  });
});
