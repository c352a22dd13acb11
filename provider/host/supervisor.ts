// How bpfnet keeps a daemon running on a host: a systemd unit where systemd is PID 1, else a tiny
// supervisor shell loop in its own session with pid files. Pure: the scripts and commands only;
// providers ship them over SSH. Used for etcd members and node agents alike. Every path and word
// reaches the shell through shellQuote and the unit file through systemdWords, so even a value
// that slipped past validation stays one inert word.
import { shellQuote, shellWords } from "../common/shell";

export interface ServiceSpec {
  /** Unit/service name, e.g. "bpfnet-etcd-h1". */
  name: string;
  /** Directory holding the supervisor script, pid files, the stop marker and the log. */
  dir: string;
  /** The command to keep running, one word per element (absolute paths). */
  argv: string[];
  description: string;
}

export type SupervisorKind = "systemd" | "process";

export const serviceFiles = (s: ServiceSpec) => ({
  supervisor: `${s.dir}/run.sh`,
  supervisorPid: `${s.dir}/supervisor.pid`,
  pid: `${s.dir}/${s.name}.pid`,
  stop: `${s.dir}/STOP`,
  log: `${s.dir}/${s.name}.log`,
  unit: `/etc/systemd/system/${s.name}.service`,
});

/** Shell: which supervisor this host uses ("systemd" when systemd is PID 1, else "process"). */
export const DETECT_SUPERVISOR = "[ -d /run/systemd/system ] && echo systemd || echo process";

/** Restarts the command when it exits, until a stop marker appears. */
export function supervisorScript(s: ServiceSpec): string {
  const f = serviceFiles(s);
  return [
    "#!/bin/sh",
    `# bpfnet supervisor for ${oneLine(s.name)}: keeps it running; stop leaves its STOP file behind first.`,
    `echo $$ > ${shellQuote(f.supervisorPid)}`,
    `while [ ! -e ${shellQuote(f.stop)} ]; do`,
    `  ${shellWords(s.argv)} >>${shellQuote(f.log)} 2>&1 &`,
    `  echo $! > ${shellQuote(f.pid)}`,
    "  wait $!",
    `  [ -e ${shellQuote(f.stop)} ] || sleep 1`,
    "done",
    "",
  ].join("\n");
}

export function systemdUnit(s: ServiceSpec): string {
  return [
    "[Unit]",
    `Description=${oneLine(s.description)}`,
    "After=network-online.target",
    "[Service]",
    `ExecStart=${systemdWords(s.argv)}`,
    "Restart=always",
    "RestartSec=1",
    "LimitNOFILE=65536",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  ].join("\n");
}

/** A unit-file value stays on its line: a newline would start a new directive. */
const oneLine = (text: string) => text.replace(/[\r\n]+/g, " ");

/**
 * Words for systemd's ExecStart: each double-quoted with C escapes, "%" doubled (specifiers) and
 * "$" doubled (variable expansion), so each word reaches execve() exactly as given.
 */
export function systemdWords(words: string[]): string {
  const esc = (w: string) =>
    w
      .replace(/\\/g, "\\\\")
      .replace(/"/g, '\\"')
      .replace(/\n/g, "\\n")
      .replace(/\r/g, "\\r")
      .replace(/\t/g, "\\t")
      .replace(/%/g, "%%")
      .replace(/\$/g, "$$$$");
  return words.map((w) => `"${esc(w)}"`).join(" ");
}

const unitName = (s: ServiceSpec) => shellQuote(`${s.name}.service`);

export function startCommand(s: ServiceSpec, kind: SupervisorKind): string {
  const f = serviceFiles(s);
  if (kind === "systemd") return `systemctl daemon-reload && systemctl enable ${unitName(s)} >/dev/null 2>&1 && systemctl restart ${unitName(s)}`;
  // setsid -f forks: the SSH channel closes at once, the supervisor lives on in its own session.
  return `rm -f ${shellQuote(f.stop)} && setsid -f sh ${shellQuote(f.supervisor)} </dev/null >/dev/null 2>&1`;
}

/**
 * Shell: true when the pid in file $1 is a live process. A zombie is dead: where PID 1 does not
 * reap orphans (containers, some sandboxes), a killed daemon lingers as one and `kill -0` still
 * succeeds on it.
 */
const ALIVE = `alive() { [ -f "$1" ] && p=$(cat "$1") && [ -n "$p" ] && [ -r /proc/$p/status ] && ! grep -q '^State:.*Z' /proc/$p/status; }`;

export function stopCommand(s: ServiceSpec, kind: SupervisorKind): string {
  const f = serviceFiles(s);
  if (kind === "systemd") return `systemctl disable --now ${unitName(s)} >/dev/null 2>&1; true`;
  // Stop the supervisor first so it cannot restart the daemon, then the daemon; wait until both are gone.
  const pids = shellWords([f.supervisorPid, f.pid]);
  return [
    ALIVE,
    `mkdir -p ${shellQuote(s.dir)} && touch ${shellQuote(f.stop)}`,
    `for f in ${pids}; do alive "$f" && kill $(cat "$f") 2>/dev/null; done`,
    `for i in $(seq 100); do up=0; for f in ${pids}; do alive "$f" && up=1; done; [ $up = 0 ] && break; sleep 0.1; done`,
    `for f in ${pids}; do alive "$f" && kill -9 $(cat "$f") 2>/dev/null; done; true`,
  ].join("; ");
}

/** Shell: prints "running" when the daemon's process is alive. */
export function isRunningCommand(s: ServiceSpec, kind: SupervisorKind): string {
  if (kind === "systemd") return `systemctl is-active --quiet ${unitName(s)} && echo running || echo stopped`;
  return `${ALIVE}; alive ${shellQuote(serviceFiles(s).pid)} && echo running || echo stopped`;
}

/** Shell: removes the unit file (systemd) after a stop. */
export function uninstallCommand(s: ServiceSpec, kind: SupervisorKind): string {
  return kind === "systemd" ? `rm -f ${shellQuote(serviceFiles(s).unit)} && systemctl daemon-reload` : "true";
}
