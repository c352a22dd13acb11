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

/** A fresh veth pair in the root namespace (an earlier run's removed first): the two ifindexes. */
export function vethPair(a: string, b: string): [number, number] {
  ipQuiet("link", "del", a);
  ip("link", "add", a, "type", "veth", "peer", "name", b);
  const ifindex = (dev: string) => (JSON.parse(ip("-j", "link", "show", "dev", dev)) as { ifindex: number }[])[0].ifindex;
  return [ifindex(a), ifindex(b)];
}
