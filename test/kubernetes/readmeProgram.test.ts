// README.md's "On Kubernetes" program (extracted, so the README cannot drift) type-checks under a
// strict tsconfig with "bpfnet" and "bpfnet/kubernetes" resolved to this checkout's entry points,
// exactly as the package's exports map them. The same component runs against a real API server
// in kubernetesNetwork.test.ts.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { readmeProgram } from "../library/support/userProject";
import { REPO } from "../support/pulumi";

jest.setTimeout(180_000);

test("the README's Kubernetes program type-checks against the package's two entry points", () => {
  const program = readmeProgram("On Kubernetes");
  expect(program).toContain('from "bpfnet/kubernetes"');
  const dir = fs.mkdtempSync(path.join(REPO, "build", "tk-readme-"));
  try {
    fs.writeFileSync(path.join(dir, "index.ts"), program);
    fs.writeFileSync(
      path.join(dir, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          strict: true, target: "ES2022", module: "commonjs", moduleResolution: "node", esModuleInterop: true, noEmit: true, skipLibCheck: true, types: ["node"],
          baseUrl: REPO, paths: { bpfnet: ["./index.ts"], "bpfnet/kubernetes": ["./kubernetes.ts"] }, typeRoots: [path.join(REPO, "node_modules", "@types")],
        },
        files: ["index.ts"],
      }),
    );
    const tsc = spawnSync(path.join(REPO, "node_modules", ".bin", "tsc"), ["-p", dir], { encoding: "utf8", cwd: dir });
    expect(tsc.stdout + tsc.stderr).toBe("");
    expect(tsc.status).toBe(0);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
