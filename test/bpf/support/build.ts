import { execFileSync } from "child_process";
import { resolve } from "path";

export const REPO_ROOT = resolve(__dirname, "..", "..", "..");

/** Builds the objects and the addon if stale (silent and instant when up to date). */
export function ensureBuilt(): void {
  execFileSync("bash", [resolve(REPO_ROOT, "scripts", "build-bpf.sh")], { cwd: REPO_ROOT, stdio: "inherit" });
}
