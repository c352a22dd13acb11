// After every deploy the provider reads back the modes of the files that hold secrets (keys,
// configs with credentials): a key that ended up readable by others fails the deploy.
import { shellWords } from "../common/shell";
import type { SshSession } from "./ssh";

/** Parses `stat -c '%a %n'` lines into path → octal mode text. */
export function parseModes(statOutput: string): Map<string, string> {
  const modes = new Map<string, string>();
  for (const line of statOutput.split("\n")) {
    const m = /^([0-7]{3,4}) (.+)$/.exec(line);
    if (m) modes.set(m[2], m[1]);
  }
  return modes;
}

/** Problems naming each file whose mode is not `mode` (e.g. "600"), or that is missing. */
export function modeProblems(paths: string[], modes: Map<string, string>, mode: string): string[] {
  return paths.flatMap((p) => {
    const seen = modes.get(p);
    if (seen === undefined) return [`${p} is missing`];
    return seen === mode ? [] : [`${p} has mode ${seen}, expected ${mode}`];
  });
}

/** Throws unless every path exists on the host with exactly `mode` (octal text, e.g. "600"). */
export async function requireModes(s: SshSession, host: string, paths: string[], mode: string): Promise<void> {
  const out = (await s.exec(`stat -c '%a %n' -- ${shellWords(paths)}`)).stdout;
  const problems = modeProblems(paths, parseModes(out), mode);
  if (problems.length > 0) throw new Error(`secret files on ${host} are not private: ${problems.join("; ")}`);
}
