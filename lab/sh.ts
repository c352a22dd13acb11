// Synchronous command helpers for the lab: every failure names the command and its stderr.
import { spawnSync } from "child_process";
import * as fs from "fs";

export interface RunResult {
  ok: boolean;
  code: number | null;
  stdout: string;
  stderr: string;
}

export function tryRun(cmd: string, args: string[], input?: string): RunResult {
  const r = spawnSync(cmd, args, { encoding: "utf8", input, timeout: 60_000 });
  if (r.error) return { ok: false, code: null, stdout: "", stderr: r.error.message };
  return { ok: r.status === 0, code: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function run(cmd: string, args: string[], input?: string): string {
  const r = tryRun(cmd, args, input);
  if (!r.ok) throw new Error(`${cmd} ${args.join(" ")} failed (exit ${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

export const ip = (...args: string[]): string => run("ip", args);
export const inNetns = (netns: string, cmd: string, ...args: string[]): string =>
  run("ip", ["netns", "exec", netns, cmd, ...args]);

export function netnsExists(name: string): boolean {
  return tryRun("ip", ["netns", "list"]).stdout.split("\n").some((l) => l.split(" ")[0] === name);
}

export function linkExists(name: string): boolean {
  return tryRun("ip", ["link", "show", "dev", name]).ok;
}

export function pidsInNetns(netns: string): number[] {
  const r = tryRun("ip", ["netns", "pids", netns]);
  return r.ok ? r.stdout.split("\n").filter(Boolean).map(Number) : [];
}

/** Whether a process lives; a zombie (killed, not yet reaped by a PID 1 that may never reap) does not. */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // /proc/PID/stat: "pid (comm) STATE …"; comm may hold spaces and parentheses.
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** SIGTERM, then SIGKILL after a grace period, every process in a namespace. */
export function killNetnsProcesses(netns: string, graceMs = 3000): void {
  const pids = pidsInNetns(netns);
  for (const pid of pids) signal(pid, "SIGTERM");
  const deadline = Date.now() + graceMs;
  while (pids.some(pidAlive) && Date.now() < deadline) sleepMs(50);
  for (const pid of pids.filter(pidAlive)) signal(pid, "SIGKILL");
}

/** Sends a signal; a process already gone is not an error. */
export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}

export function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
