// README.md's "Services" program, appended to the "Using it from a Pulumi program" one it
// extends (both extracted, so the README cannot drift), type-checks under a strict tsconfig
// with "bpfnet" resolved to this checkout's entry point, as the package's exports map it.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { readmeProgram } from "../library/support/userProject";
import { REPO } from "../support/pulumi";

jest.setTimeout(180_000);

test("the README's Service program type-checks against the package's entry point", () => {
  const network = readmeProgram("Using it from a Pulumi program");
  const services = readmeProgram("Services");
  expect(network).toMatch(/serviceCidr: "10\.96\.0\.0\/16"/);
  expect(services).toMatch(/new Service\("api", \{\n\s+network: net,/);
  const dir = fs.mkdtempSync(path.join(REPO, "build", "tsvc-readme-"));
  try {
    fs.writeFileSync(path.join(dir, "index.ts"), `${network}\n${services}`);
    fs.writeFileSync(
      path.join(dir, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          strict: true, target: "ES2022", module: "commonjs", moduleResolution: "node", esModuleInterop: true, noEmit: true, skipLibCheck: true, types: ["node"],
          baseUrl: REPO, paths: { bpfnet: ["./index.ts"] }, typeRoots: [path.join(REPO, "node_modules", "@types")],
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
