// The native addon's build-from-source fallback, from the installed package: the tarball carries
// binding.gyp and the sources, npm's install step (scripts/install-addon.js) builds them with
// npm's node-gyp and the running node's headers where the prebuilt linux-x64 binary does not fit.
// Here the build is forced (BPFNET_BUILD_ADDON=1, this machine being linux-x64) through
// `npm rebuild bpfnet`, exactly the command the script's failure message gives, and the result
// is loaded through the package's own typed layer and called.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { cleanupAll } from "../support/cleanup";
import { createUserProject, packPackage, readmeProgram, run, UserProject } from "./support/userProject";

jest.setTimeout(600_000);

describe("the addon builds from source inside an installed package", () => {
  let packDir: string;
  let project: UserProject;
  let release: string;

  beforeAll(() => {
    packDir = fs.mkdtempSync(path.join(os.tmpdir(), "bpfnet-pack-"));
    project = createUserProject("addon-build", packPackage(packDir), readmeProgram("Using it from a Pulumi program"));
    release = path.join(project.dir, "node_modules", "bpfnet", "bpf", "addon", "build", "Release");
  });
  afterAll(() => cleanupAll([() => project?.teardown(), () => packDir && fs.rmSync(packDir, { recursive: true, force: true })]));

  test("on linux-x64 the install keeps the prebuilt binary and compiles nothing", () => {
    expect(fs.readdirSync(release)).toEqual(["bpfnet_native.node"]);
  });

  test("npm rebuild bpfnet compiles binding.gyp's sources into a new addon", () => {
    const before = fs.statSync(path.join(release, "bpfnet_native.node")).mtimeMs;
    const r = run("npm", ["rebuild", "bpfnet"], { cwd: project.dir, env: { ...project.env, BPFNET_BUILD_ADDON: "1" } });
    expect(r.stderr).not.toMatch(/building the native addon .* failed/);
    expect(r.status).toBe(0);
    expect(fs.statSync(path.join(release, "bpfnet_native.node")).mtimeMs).toBeGreaterThan(before);
    expect(fs.existsSync(path.join(release, "obj.target", "bpfnet_native", "src", "addon.o"))).toBe(true);
  });

  test("the built addon loads through the package and answers a real call", () => {
    const r = run(process.execPath, ["-e", 'console.log(require("bpfnet/dist/bpf/native.js").native().possibleCpus())'], { cwd: project.dir, env: project.env });
    expect(r.stderr).toBe("");
    // libbpf counts the kernel's possible CPUs: "0-1" or "0-3,6" in sysfs.
    const possible = fs.readFileSync("/sys/devices/system/cpu/possible", "utf8").trim().split(",").map((part) => part.split("-").map(Number));
    const count = possible.reduce((n, [lo, hi]) => n + (hi ?? lo) - lo + 1, 0);
    expect(Number(r.stdout.trim())).toBe(count);
  });
});
