// The API reference: typedoc renders the public entry point (the same config the build uses,
// into a temporary directory), every exported class, interface, type, function and constant has
// TSDoc, and the pages users look for exist. The README links docs/api/.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { REPO } from "../support/pulumi";

jest.setTimeout(180_000);

describe("API docs (typedoc)", () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), "tlib-apidocs-"));
  let log = "";
  let status: number | null = null;

  beforeAll(() => {
    const r = spawnSync("npx", ["--no-install", "typedoc", "--out", out, "--logLevel", "Warn", "--disableGit"], { cwd: REPO, encoding: "utf8", env: { ...process.env, NO_COLOR: "1", FORCE_COLOR: "0" } });
    status = r.status;
    log = (r.stdout + r.stderr).replace(/\x1b\[[0-9;]*m/g, "");
  });
  afterAll(() => fs.rmSync(out, { recursive: true, force: true }));

  test("renders without errors", () => {
    expect(log).not.toMatch(/\[error\]/);
    expect(status).toBe(0);
  });

  test("every exported type has TSDoc", () => {
    expect(log.split("\n").filter((l) => l.includes("does not have any documentation"))).toEqual([]);
  });

  test("the components and resources users import have pages", () => {
    for (const page of ["classes/Network.html", "classes/EtcdCluster.html", "classes/ContainerNetwork.html", "classes/HostAllocation.html", "classes/NodeAgent.html", "classes/RouterRoute.html", "interfaces/NetworkArgs.html", "interfaces/NetworkHostArgs.html"]) {
      expect(fs.existsSync(path.join(out, page))).toBe(true);
    }
    expect(fs.readFileSync(path.join(out, "classes", "Network.html"), "utf8")).toContain("A bpfnet container network");
  });

  test("the README links the rendered docs, and they are not committed", () => {
    expect(fs.readFileSync(path.join(REPO, "README.md"), "utf8")).toMatch(/\]\(docs\/api\/index\.html\)/);
    expect(fs.readFileSync(path.join(REPO, ".gitignore"), "utf8").split("\n")).toContain("docs/api/");
  });
});
