// Processes of a benchmark run: asynchronous commands in network namespaces (so a signal
// handler can run while they do), long-lived servers that announce readiness, and one registry
// of every child started, so cleanup kills exactly those (by pid) and nothing else.
import { ChildProcess, spawn } from "child_process";

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export class Children {
  private readonly live = new Set<ChildProcess>();

  /** Starts `cmd` (inside `netns` when given); the child is killed by killAll(). */
  spawn(netns: string | undefined, cmd: string[], env?: Record<string, string>): ChildProcess {
    const argv = netns ? ["ip", "netns", "exec", netns, ...cmd] : cmd;
    // `ip netns exec` execs the command: the pid is the command's own.
    const child = spawn(argv[0], argv.slice(1), { stdio: ["ignore", "pipe", "pipe"], env: env ? { ...process.env, ...env } : process.env });
    this.live.add(child);
    child.once("exit", () => this.live.delete(child));
    return child;
  }

  /** Runs a command to completion (killed after timeoutMs); never throws. */
  run(netns: string | undefined, cmd: string[], timeoutMs: number, env?: Record<string, string>): Promise<RunResult> {
    const child = this.spawn(netns, cmd, env);
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8000)));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    return new Promise((resolve) => {
      child.once("error", (e) => {
        stderr += e.message;
      });
      child.once("close", (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, stdout, stderr, timedOut });
      });
    });
  }

  /** Like run(), but throws (naming the command) unless it exits 0. */
  async check(netns: string | undefined, cmd: string[], timeoutMs: number, env?: Record<string, string>): Promise<string> {
    const r = await this.run(netns, cmd, timeoutMs, env);
    if (r.code !== 0) {
      const where = netns ? ` in ${netns}` : "";
      throw new Error(`${cmd.join(" ").slice(0, 120)}${where} ${r.timedOut ? `timed out after ${timeoutMs} ms` : `exited ${r.code ?? r.signal}`}: ${(r.stderr || r.stdout).trim().slice(-600)}`);
    }
    return r.stdout;
  }

  /**
   * Starts a server that prints `readyLine` on stdout when it listens; resolves with the child
   * once it has, rejects if it exits first or the time runs out.
   */
  async server(netns: string, cmd: string[], readyLine: string, timeoutMs = 10_000, env?: Record<string, string>): Promise<ChildProcess> {
    const child = this.spawn(netns, cmd, env);
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    await new Promise<void>((resolve, reject) => {
      let out = "";
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(new Error(`${cmd[0]} in ${netns} did not print "${readyLine}" within ${timeoutMs} ms: ${stderr}`));
      }, timeoutMs);
      child.stdout!.on("data", (d: Buffer) => {
        out += d.toString();
        if (out.includes(readyLine)) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`${cmd[0]} in ${netns} exited with ${code} before it was ready: ${stderr}`));
      });
    });
    return child;
  }

  /** SIGKILLs every child still running and waits (bounded) for them to go. */
  async killAll(timeoutMs = 5000): Promise<void> {
    const waits = [...this.live].map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          c.once("exit", () => resolve());
          c.kill("SIGKILL");
        }),
    );
    await Promise.race([Promise.all(waits), new Promise((r) => setTimeout(r, timeoutMs))]);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** CLOCK_MONOTONIC in ns: process.hrtime.bigint() is comparable across processes of one machine. */
export const now = (): bigint => process.hrtime.bigint();
export const msSince = (t0: bigint, t1: bigint = now()): number => Number(t1 - t0) / 1e6;

/** Runs a benchmark's main: exits with its exit code, or on an error prints it, cleans up and exits 1. */
export function runBenchMain(main: () => Promise<void>, cleanup: () => Promise<void>): void {
  main().then(
    () => process.exit(process.exitCode ?? 0),
    async (e) => {
      console.error(e instanceof Error ? (e.stack ?? e.message) : e);
      await cleanup();
      process.exit(1);
    },
  );
}
