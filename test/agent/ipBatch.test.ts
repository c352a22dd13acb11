// ipBatch (node-agent/daemon/exec.ts): the agent's device setup as one `ip -batch` process. Real
// ip in a throwaway namespace (tst3b, run from dist/ through `ip netns exec`): every command of a
// batch applied, the first failure stops it and names the line; words ip's batch reader would
// split or interpret are refused before ip runs.
import { execFileSync, spawnSync } from "child_process";
import * as path from "path";
import { ipBatch } from "../../node-agent/daemon/exec";
import { checkBuilt, REPO } from "./support/agents";

const NS = "tst3b";
const EXEC = path.join(REPO, "dist", "node-agent", "daemon", "exec.js");

/** ipBatch(commands) inside NS; its error message, or "" when it succeeded. */
function batchInNs(commands: string[][]): string {
  const script = `require(${JSON.stringify(EXEC)}).ipBatch(JSON.parse(process.argv[1])).then(() => process.stdout.write("ok"), (e) => process.stdout.write(e.message))`;
  const r = spawnSync("ip", ["netns", "exec", NS, process.execPath, "-e", script, JSON.stringify(commands)], { encoding: "utf8" });
  return r.stdout === "ok" ? "" : r.stdout + r.stderr;
}

const links = (): string => execFileSync("ip", ["-n", NS, "-o", "link", "show"], { encoding: "utf8" });

beforeAll(() => {
  checkBuilt();
  spawnSync("ip", ["netns", "del", NS]);
  execFileSync("ip", ["netns", "add", NS]);
});

afterAll(() => {
  spawnSync("ip", ["netns", "del", NS]);
});

test("every command of a batch is applied in the namespace it runs in", () => {
  expect(
    batchInNs([
      ["link", "add", "tbv0", "mtu", "1400", "type", "veth", "peer", "name", "tbv1", "mtu", "1400"],
      ["link", "set", "tbv0", "arp", "off", "up"],
      ["addr", "replace", "10.185.0.1/32", "dev", "tbv0"],
      ["route", "replace", "10.185.1.0/24", "dev", "tbv0", "src", "10.185.0.1"],
    ]),
  ).toBe("");
  expect(links()).toMatch(/tbv0@tbv1: <[^>]*NOARP,UP[^>]*> mtu 1400 /);
  expect(execFileSync("ip", ["-n", NS, "route", "show", "10.185.1.0/24"], { encoding: "utf8" })).toContain("src 10.185.0.1");
});

test("the first failing command stops the batch; the error names the line and what ip said", () => {
  const err = batchInNs([
    ["link", "set", "tbv0", "mtu", "1300"],
    ["link", "set", "no-such-device", "up"],
    ["link", "set", "tbv0", "mtu", "1200"],
  ]);
  expect(err).toMatch(/ip -batch -/);
  expect(err).toMatch(/Command failed -:2/);
  expect(links()).toMatch(/tbv0@tbv1: .* mtu 1300 /);
});

test("hostile words are refused before ip runs; `..` is one plain word ip itself refuses", async () => {
  for (const word of ["a b", "x;reboot", "$(touch /tmp/tst3-pwned)", "`id`", "line\nbreak", "q'uote", 'd"quote', "#comment", "back\\slash", ""]) {
    await expect(ipBatch([["link", "set", word, "up"]])).rejects.toThrow(/not passing .* to ip -batch: only plain words/);
  }
  expect(batchInNs([["link", "set", "..", "up"]])).toMatch(/Command failed -:1/);
  expect(links()).not.toMatch(/pwned|reboot/);
});
