// `bpfnet ui`, the pure part: what the page shows at one moment (hosts, the health matrix,
// endpoints with addresses and labels, drop counters by reason), built from what each host's
// agent answered, and the checks of the command's flags.
import { listenAddressProblem, splitListenAddress } from "../../provider/common/validate";
import type { AgentStatus, EndpointView } from "../api/types";
import { healthMatrix, MatrixCell } from "../health/view";

/** What one host's agent answered (over SSH), or why it could not. */
export interface HostReport {
  host: string;
  status?: AgentStatus;
  endpoints?: EndpointView[];
  error?: string;
}

export interface HostView {
  host: string;
  ok: boolean;
  /** "ready", or what is wrong (SSH, agent, problems). */
  state: string;
  mode?: string;
  underlayIp?: string;
  podCidr?: string;
  healthIp?: string;
  endpoints: { id: string; ip: string; labels: Record<string, string>; status: string; identity?: number }[];
}

export interface Snapshot {
  at: string;
  hosts: HostView[];
  matrix: { cells: MatrixCell[]; allOk: boolean };
  /** The datapath's drop counters (packets) by reason, summed over every host. */
  drops: Record<string, number>;
}

export function buildSnapshot(names: readonly string[], reports: readonly HostReport[], now: Date): Snapshot {
  const hosts = names.map((name): HostView => {
    const r = reports.find((x) => x.host === name);
    const s = r?.status;
    if (!r || !s) return { host: name, ok: false, state: r?.error ?? "no answer yet", endpoints: [] };
    const problems = s.problems.length ? `: ${s.problems.join("; ")}` : "";
    return {
      host: name,
      ok: s.agent.ready && s.problems.length === 0,
      state: `${s.agent.ready ? "ready" : "starting"}${problems}`,
      mode: s.agent.mode,
      underlayIp: s.agent.underlayIp,
      podCidr: s.agent.podCidr,
      ...(s.health?.endpoint ? { healthIp: s.health.endpoint.ip } : {}),
      endpoints: (r.endpoints ?? []).map((e) => ({ id: e.id, ip: e.ip, labels: e.labels, status: e.status, ...(e.identity !== undefined ? { identity: e.identity } : {}) })),
    };
  });
  const matrix = healthMatrix(
    names,
    names.map((n) => {
      const s = reports.find((x) => x.host === n)?.status;
      return s?.health ? { from: n, peers: s.health.peers } : { from: n, error: s ? "health off" : "no answer", peers: [] };
    }),
  );
  const drops: Record<string, number> = {};
  for (const r of reports) for (const [reason, n] of Object.entries(r.status?.counters.dropped ?? {})) drops[reason] = (drops[reason] ?? 0) + Number(n);
  return { at: now.toISOString(), hosts, matrix, drops };
}

export const DEFAULT_UI_LISTEN = "127.0.0.1:8490";

/**
 * The address to serve on: HOST:PORT (provider/common/validate.ts), loopback unless the operator
 * says otherwise with --allow-remote (the page shows the network's layout and has no login).
 */
export function uiListen(flags: Map<string, string>): { host: string; port: number } {
  const value = flags.get("listen") ?? DEFAULT_UI_LISTEN;
  const problem = listenAddressProblem("--listen", value);
  if (problem) throw new Error(problem);
  const addr = splitListenAddress(value);
  const loopback = /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(addr.host) || addr.host === "localhost";
  if (!loopback && !flags.has("allow-remote")) {
    throw new Error(`--listen ${JSON.stringify(value)} is not a loopback address: the page has no login, so serving it to the network needs --allow-remote`);
  }
  return addr;
}
