// A "new release" of the agent for rolling-upgrade tests: the agent bundle unpacked into a
// temporary directory with another AGENT_VERSION, so a test can tell the new build from the old.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { REPO } from "./agents";

export interface UnpackedUpgrade {
  dir: string;
  /** The unpacked build's CLI, for LabAgent.start(timeout, cli). */
  cli: string;
  remove(): void;
}

/** Unpacks build/agent-bundle.tgz into a fresh temporary directory, reporting `version`. */
export function unpackUpgrade(version: string, tmpPrefix: string): UnpackedUpgrade {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), tmpPrefix));
  const r = spawnSync("tar", ["-xzf", path.join(REPO, "build", "agent-bundle.tgz"), "-C", dir]);
  if (r.status !== 0) throw new Error(`unpacking the agent bundle failed: ${r.stderr}`);
  const versionJs = path.join(dir, "dist", "node-agent", "version.js");
  const text = fs.readFileSync(versionJs, "utf8");
  const changed = text.replace(/AGENT_VERSION = "[^"]*"/, `AGENT_VERSION = "${version}"`);
  if (changed === text) throw new Error(`no AGENT_VERSION in ${versionJs}`);
  fs.writeFileSync(versionJs, changed);
  return { dir, cli: path.join(dir, "dist", "node-agent", "cli", "main.js"), remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}
