// One JSON object per line on stderr: a supervisor (systemd, the lab) keeps the lines, and
// tests can grep them.
import type { LogLevel } from "../config";

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(component: string): Logger;
}

export function createLogger(level: LogLevel = "info", component = "agent", write: (line: string) => void = (l) => process.stderr.write(l)): Logger {
  const emit = (at: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (RANK[at] < RANK[level]) return;
    const entry: Record<string, unknown> = { ts: new Date().toISOString(), level: at, component, msg };
    for (const [k, v] of Object.entries(fields ?? {})) entry[k] = v instanceof Error ? v.message : typeof v === "bigint" ? v.toString() : v;
    write(JSON.stringify(entry) + "\n");
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    child: (c) => createLogger(level, `${component}.${c}`, write),
  };
}

/** A logger that drops everything (unit tests). */
export const silentLogger: Logger = createLogger("error", "silent", () => undefined);
