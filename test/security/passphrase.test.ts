// scripts/env.sh and the public lab passphrase (issue 8 §5): it says so loudly when it falls back
// to it, keeps the user's own, and refuses it (before the real CLI runs) for a stack whose
// inventory lacks the lab marker, while a lab stack goes on. Real bash, real pulumi CLI, a file
// backend of its own.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { REPO } from "../support/pulumi";

let dir: string;

/** Runs a bash script that sources scripts/env.sh in a throwaway project with its own backend. */
function shell(script: string, env: Record<string, string> = {}) {
  const base: Record<string, string | undefined> = { ...process.env, PULUMI_BACKEND_URL: `file://${dir}/state`, PULUMI_HOME: path.join(REPO, ".tools", "pulumi-home") };
  delete base.PULUMI_CONFIG_PASSPHRASE; // env.sh decides, unless the case sets one
  Object.assign(base, env);
  const r = spawnSync("bash", ["-c", `source ${REPO}/scripts/env.sh\n${script}`], { cwd: dir, env: base, encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "bpfnet-tsec-pass-"));
  fs.mkdirSync(path.join(dir, "state"));
  fs.writeFileSync(path.join(dir, "Pulumi.yaml"), "name: guardtest\nruntime: nodejs\n");
  fs.writeFileSync(path.join(dir, "real.json"), JSON.stringify({ hosts: [{ name: "node1" }] }));
  fs.writeFileSync(path.join(dir, "lab.json"), JSON.stringify({ lab: "tsec2", hosts: [{ name: "h1" }] }));
  const init = shell(`set -e
    pulumi stack init real >/dev/null; pulumi config set inventory "${dir}/real.json"
    pulumi stack init lab >/dev/null; pulumi config set inventory "${dir}/lab.json"
    pulumi config set --secret token s3cret`);
  if (init.code !== 0) throw new Error(`setup failed: ${init.stderr}`);
}, 120_000);
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

test("falling back to the public passphrase is announced on stderr", () => {
  const r = shell('echo "$PULUMI_CONFIG_PASSPHRASE"');
  expect(r.stdout.trim()).toBe("bpfnet-lab-only");
  expect(r.stderr).toMatch(/WARNING: using the PUBLIC lab-only Pulumi passphrase "bpfnet-lab-only"/);
});

test("a passphrase of the user's own is kept, silently", () => {
  const r = shell('echo "$PULUMI_CONFIG_PASSPHRASE"', { PULUMI_CONFIG_PASSPHRASE: "mine" });
  expect(r.stdout.trim()).toBe("mine");
  expect(r.stderr).not.toMatch(/WARNING/);
});

test("a lab stack goes on with it", () => {
  const r = shell("pulumi config get token --stack lab");
  expect(r.code).toBe(0);
  expect(r.stdout.trim()).toBe("s3cret");
});

test("a stack whose inventory is not a lab's is refused, before the CLI runs", () => {
  for (const cmd of ["pulumi config get inventory --stack real", "pulumi preview --stack real", "pulumi stack select real && pulumi up --yes"]) {
    const r = shell(cmd);
    expect({ cmd, code: r.code }).toEqual({ cmd, code: 1 });
    expect(r.stderr).toContain(`bpfnet: REFUSED: stack "real" deploys onto inventory ${dir}/real.json, which is not a lab's`);
    expect(r.stdout).toBe("");
  }
});

test("with a passphrase of the user's own, the same stack is not refused", () => {
  const r = shell("pulumi config get inventory --stack real", { PULUMI_CONFIG_PASSPHRASE: "mine" });
  expect(r.stderr).not.toContain("REFUSED");
  // The stack was made with the lab passphrase, so the CLI itself answers; the guard stayed out of the way.
  expect(r.stdout.trim()).toBe(`${dir}/real.json`);
});
