// Supported runtimes are enforced twice: npm refuses a program whose @pulumi/pulumi is outside
// bpfnet's peer range, and a program forced past npm fails when it loads bpfnet, with one line
// naming the versions (components/compat.ts). The supported version is newUser.test.ts's.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { cleanupAll } from "../support/cleanup";
import { packPackage, readmeProgram, run, scaffoldUserProject, UserProject } from "./support/userProject";

jest.setTimeout(600_000);

const OLD_PULUMI = "3.100.0";

describe(`a program with @pulumi/pulumi ${OLD_PULUMI} (below the supported range)`, () => {
  let packDir: string;
  let project: UserProject;
  const npmInstall = (...args: string[]) => run("npm", ["install", "--no-audit", "--no-fund", ...args], { cwd: project.dir, env: project.env });

  beforeAll(() => {
    packDir = fs.mkdtempSync(path.join(os.tmpdir(), "bpfnet-pack-"));
    project = scaffoldUserProject("old-pulumi", packPackage(packDir), readmeProgram("Using it from a Pulumi program"), OLD_PULUMI);
  });
  afterAll(() => cleanupAll([() => project?.teardown(), () => packDir && fs.rmSync(packDir, { recursive: true, force: true })]));

  test("npm refuses the install, naming bpfnet's peer range", () => {
    const r = npmInstall();
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/ERESOLVE/);
    expect(r.stderr).toContain(`peer @pulumi/pulumi@">=3.248.0 <4" from bpfnet@`);
  });

  test("forced past npm, loading bpfnet fails with one line naming what the program has", () => {
    expect(npmInstall("--legacy-peer-deps").status).toBe(0);
    const r = run(process.execPath, ["-e", 'require("bpfnet")'], { cwd: project.dir, env: project.env });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`Error: bpfnet needs @pulumi/pulumi >=3.248.0 <4, this program has ${OLD_PULUMI} (npm install @pulumi/pulumi@^3)`);
  });
});
