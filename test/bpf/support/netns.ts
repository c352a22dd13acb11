import { execFileSync } from "child_process";

/** Runs `ip ARGS`, throwing with ip's stderr on failure. */
export function ip(...args: string[]): string {
  return execFileSync("ip", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** Runs `ip ARGS` for cleanup: failures (already gone) are ignored. */
export function ipQuiet(...args: string[]): void {
  try {
    ip(...args);
  } catch {
    // already removed
  }
}

export interface LinkInfo {
  ifindex: number;
  mac: string;
}

export function linkInfo(netns: string, dev: string): LinkInfo {
  const [link] = JSON.parse(ip("-n", netns, "-j", "link", "show", "dev", dev)) as { ifindex: number; address: string }[];
  return { ifindex: link.ifindex, mac: link.address };
}

/** Runs a command inside a namespace; returns its exit status instead of throwing. */
export function execInNetns(netns: string, cmd: string[], timeoutMs = 15000): number {
  try {
    execFileSync("ip", ["netns", "exec", netns, ...cmd], { stdio: "ignore", timeout: timeoutMs });
    return 0;
  } catch (err) {
    const status = (err as { status?: number | null }).status;
    return typeof status === "number" ? status : -1;
  }
}
