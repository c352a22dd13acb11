// Many router commands in one SSH exec: a POSIX sh script (sent on stdin, so no command-line
// limit applies) that runs each command and prints its output followed by a marker line with its
// exit code. Pure: building the script and reading its output back.
import type { CommandResult } from "./driver";

export { shellQuote, shellWords } from "../../common/shell";

const markerLine = (nonce: string, index: number) => new RegExp(`^@@bpfnet-${nonce} ${index} (-?[0-9]+)$`);

/** The script; `nonce` makes the markers impossible to forge from command output. */
export function batchScript(commands: string[], nonce: string): string {
  return commands
    .map((cmd, i) => `out=$({ ${cmd}\n} 2>&1); rc=$?; printf '%s\\n@@bpfnet-${nonce} ${i} %d\\n' "$out" "$rc"`)
    .join("\n")
    .concat("\n");
}

/** Results in command order; commands with no marker (the connection dropped) get code -1. */
export function parseBatchOutput(commands: string[], stdout: string, nonce: string): CommandResult[] {
  const lines = stdout.split("\n");
  const results: CommandResult[] = [];
  let start = 0;
  for (let i = 0; i < commands.length; i++) {
    const re = markerLine(nonce, i);
    const end = lines.findIndex((l, at) => at >= start && re.test(l));
    if (end < 0) {
      results.push({ command: commands[i], code: -1, output: lines.slice(start).join("\n").trim() });
      start = lines.length;
      continue;
    }
    results.push({ command: commands[i], code: Number(re.exec(lines[end])![1]), output: lines.slice(start, end).join("\n").trim() });
    start = end + 1;
  }
  return results;
}

/** "`cmd` exited 2: <output>" — what a failed command says, for error messages. */
export function commandFailure(r: CommandResult): string {
  const why = r.code === -1 ? "did not finish (the connection dropped)" : `exited ${r.code}`;
  return `\`${r.command}\` ${why}${r.output ? `: ${r.output}` : ""}`;
}
