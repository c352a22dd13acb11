// The CLI entry loads only the module of the command it runs (node-agent/cli/main.ts): the
// agent's start does not pay for lab, ui, connectivity or monitor code. Run from dist/ in a fresh
// node, reading require.cache after the dispatch.
import { spawnSync } from "child_process";
import * as path from "path";
import { checkBuilt, REPO } from "./support/agents";

const CLI_DIR = path.join(REPO, "dist", "node-agent", "cli");

/** main(argv) in a fresh process: its exit code (1 when it threw, as bin/bpfnet exits), stderr, and which cli/*.js modules were loaded. */
function dispatch(argv: string[]): { code: number; stderr: string; loaded: string[] } {
  const script = `
    const path = require("path");
    const report = (code) => {
      const loaded = Object.keys(require.cache).filter((f) => path.dirname(f) === ${JSON.stringify(CLI_DIR)}).map((f) => path.basename(f, ".js")).sort();
      process.stdout.write(JSON.stringify({ code, loaded }));
    };
    require(${JSON.stringify(path.join(CLI_DIR, "main.js"))}).main(JSON.parse(process.argv[1])).then(report, (e) => (process.stderr.write(e.message), report(1)));`;
  const r = spawnSync(process.execPath, ["-e", script, JSON.stringify(argv)], { encoding: "utf8" });
  return { ...(JSON.parse(r.stdout) as { code: number; loaded: string[] }), stderr: r.stderr };
}

beforeAll(() => checkBuilt());

test("`agent` without --config: its usage, exit 2, and no other command's module loaded", () => {
  const r = dispatch(["agent"]);
  expect(r.code).toBe(2);
  expect(r.stderr).toContain("usage: bpfnet agent --config FILE");
  expect(r.loaded).toEqual(["agent", "main"]);
});

test("`status` loads the endpoint module only", () => {
  const r = dispatch(["status", "--socket", "/nonexistent/tst3-cli.sock"]);
  expect(r.code).toBe(1);
  expect(r.stderr).toContain("/nonexistent/tst3-cli.sock");
  expect(r.loaded).toEqual(["endpoint", "main"]);
});

test("an unknown or hostile command word prints every command's usage (exit 2) and runs nothing", () => {
  for (const word of ["nope", "agent;reboot", "$(id)", "`id`", "a b", "../lab", "line\nbreak", "'q\""]) {
    const r = dispatch([word]);
    expect([word, r.code]).toEqual([word, 2]);
    for (const section of ["usage: bpfnet <command>", "usage: bpfnet lab up", "usage: bpfnet agent --config FILE", "bpfnet monitor [--type", "bpfnet service list"]) expect(r.stderr).toContain(section);
  }
});
