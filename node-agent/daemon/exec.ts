// Running the system tools the agent drives (ip; endpoint devices go through netlink instead). Every failure names the command and
// its stderr, so an API error tells the operator what the kernel refused.
import { execFile } from "child_process";

export interface ExecResult {
  ok: boolean;
  code: number | null;
  stdout: string;
  stderr: string;
}

export function tryExec(cmd: string, args: string[], timeoutMs = 30_000): Promise<ExecResult> {
  return new Promise((resolve) => {
    execFile(cmd, args, { encoding: "utf8", timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === "number" ? ((err as { code: number }).code) : null) : 0;
      resolve({ ok: !err, code, stdout, stderr: stderr || (err && !stderr ? err.message : "") });
    });
  });
}

export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly result: ExecResult,
  ) {
    super(`${command} failed (exit ${result.code}): ${result.stderr.trim() || "no error output"}`);
  }
}

export async function exec(cmd: string, args: string[], timeoutMs?: number): Promise<string> {
  const r = await tryExec(cmd, args, timeoutMs);
  if (!r.ok) throw new CommandError(`${cmd} ${args.join(" ")}`, r);
  return r.stdout;
}

/** `ip ARGS` in the agent's namespace. */
export const ip = (...args: string[]): Promise<string> => exec("ip", args);
export const tryIp = (...args: string[]): Promise<ExecResult> => tryExec("ip", args);
