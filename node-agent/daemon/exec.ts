// Running the system tools the agent drives (ip; endpoint devices go through netlink instead). Every failure names the command and
// its stderr, so an API error tells the operator what the kernel refused.
import { execFile } from "child_process";

export interface ExecResult {
  ok: boolean;
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs cmd (no shell); `input`, if given, is its stdin. */
export function tryExec(cmd: string, args: string[], timeoutMs = 30_000, input?: string): Promise<ExecResult> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { encoding: "utf8", timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === "number" ? ((err as { code: number }).code) : null) : 0;
      resolve({ ok: !err, code, stdout, stderr: stderr || (err && !stderr ? err.message : "") });
    });
    if (input !== undefined) child.stdin?.end(input);
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

export async function exec(cmd: string, args: string[], timeoutMs?: number, input?: string): Promise<string> {
  const r = await tryExec(cmd, args, timeoutMs, input);
  if (!r.ok) throw new CommandError(`${cmd} ${args.join(" ")}${input !== undefined ? ` <<< ${JSON.stringify(input)}` : ""}`, r);
  return r.stdout;
}

/** `ip ARGS` in the agent's namespace. */
export const ip = (...args: string[]): Promise<string> => exec("ip", args);
export const tryIp = (...args: string[]): Promise<ExecResult> => tryExec("ip", args);

/** What `ip -batch` reads as one word: its line reader splits on blanks and interprets quotes, `\` and `#` itself. */
const BATCH_WORD = /^[A-Za-z0-9_.:/@-]+$/;

/**
 * Several `ip` commands in one process (`ip -batch -`, stopping at the first failure): one spawn
 * instead of one per command (~6 ms each on this machine, docs/agent.md "Start time"). Each
 * argument must be one plain word; anything else is refused before ip runs.
 */
export async function ipBatch(commands: string[][]): Promise<void> {
  if (!commands.length) return;
  for (const word of commands.flat()) {
    if (!BATCH_WORD.test(word)) throw new Error(`not passing ${JSON.stringify(word)} to ip -batch: only plain words (letters, digits, _ . : / @ -)`);
  }
  await exec("ip", ["-batch", "-"], undefined, commands.map((c) => c.join(" ")).join("\n") + "\n");
}
