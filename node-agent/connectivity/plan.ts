// `bpfnet connectivity test`, the pure part: which checks to run between the temporary
// endpoints (two per host, "a" and "b") and the hosts, the command of each, and the report.
// Like `cilium connectivity test`'s no-policy scenarios, plus an explicit MTU check.
import { shellWords } from "../../provider/common/shell";

export interface TestHost {
  name: string;
  underlayIp: string;
  /** The temporary endpoints' namespaces (on that host) and addresses. */
  a: { netns: string; ip: string };
  b: { netns: string; ip: string };
  mtu: number;
}

export interface Check {
  name: string;
  /** The host whose shell runs the probe. */
  on: string;
  /** The probe's command (already quoted): exit 0 = pass. */
  command: string;
  /**
   * "pass": the probe must succeed; "answer": a TCP connect that is accepted or refused (a service
   * VIP reached a backend's host); "refused": the probe must fail (a policy denies it).
   */
  expect: "pass" | "answer" | "refused";
}

const PING = ["ping", "-n", "-q", "-c", 2, "-i", "0.2", "-W", 2];

/** A ping from a container (its namespace) or from the host itself (netns undefined). */
export function pingCommand(netns: string | undefined, ip: string, extra: (string | number)[] = []): string {
  return shellWords([...(netns ? ["ip", "netns", "exec", netns] : []), ...PING, ...extra, ip]);
}

/** Every check, in a stable order: same host, every host pair, host paths, MTU. */
export function planChecks(hosts: readonly TestHost[]): Check[] {
  const checks: Check[] = [];
  const add = (name: string, on: string, command: string) => checks.push({ name, on, command, expect: "pass" });
  for (const h of hosts) add(`container→container same host (${h.name})`, h.name, pingCommand(h.a.netns, h.b.ip));
  for (const from of hosts) for (const to of hosts) if (from !== to) add(`container→container ${from.name}→${to.name}`, from.name, pingCommand(from.a.netns, to.a.ip));
  for (const h of hosts) {
    add(`container→host (${h.name})`, h.name, pingCommand(h.a.netns, h.underlayIp));
    add(`host→container (${h.name})`, h.name, pingCommand(undefined, h.a.ip));
  }
  if (hosts.length > 1) {
    for (const [i, from] of hosts.entries()) {
      const to = hosts[(i + 1) % hosts.length];
      add(`container→another host ${from.name}→${to.name}`, from.name, pingCommand(from.a.netns, to.underlayIp));
      add(`host→another host's container ${from.name}→${to.name}`, from.name, pingCommand(undefined, to.a.ip));
      // The largest packet the pod MTU allows, never fragmented: the tunnel's overhead must fit.
      const size = Math.min(from.mtu, to.mtu) - 28;
      add(`MTU ${size + 28} with DF ${from.name}→${to.name}`, from.name, pingCommand(from.a.netns, to.a.ip, ["-M", "do", "-s", size]));
    }
  }
  return checks;
}

/** A service's TCP frontend port with backends, as `bpfnet service list` shows it. */
export interface ServicePortTarget {
  service: string;
  vip: string;
  port: number;
}

/** A TCP connect from inside a namespace; address and port reach bash as arguments, never as script text. */
export function tcpConnectCommand(netns: string, ip: string, port: number): string {
  return shellWords(["ip", "netns", "exec", netns, "timeout", 3, "bash", "-c", 'exec 3<>"/dev/tcp/$0/$1"', ip, port]);
}

/**
 * Service VIPs from every host's container: accepted or refused both show that the VIP was
 * translated and a backend's host answered (the backend need not listen); a timeout does not.
 */
export function planServiceChecks(hosts: readonly TestHost[], ports: readonly ServicePortTarget[]): Check[] {
  return ports.flatMap((p) => hosts.map((h): Check => ({ name: `service ${p.service} ${p.vip}:${p.port}/TCP from ${h.name}`, on: h.name, command: tcpConnectCommand(h.a.netns, p.vip, p.port), expect: "answer" })));
}

/** Did the probe meet the check's expectation? */
export function checkPassed(check: Check, code: number, stderr: string): boolean {
  if (check.expect === "answer") return code === 0 || /connection refused/i.test(stderr);
  if (check.expect === "refused") return code !== 0;
  return code === 0;
}

export interface CheckResult {
  check: Check;
  ok: boolean;
  detail: string;
}

/** One line per check and a summary; ok only when every check met its expectation. */
export function formatReport(results: readonly CheckResult[], skipped: readonly string[]): { text: string; ok: boolean } {
  const lines = results.map((r) => `${r.ok ? "✔ pass" : "✘ FAIL"}  ${r.check.name}${r.detail ? `  (${r.detail})` : ""}`);
  for (const s of skipped) lines.push(`- skip  ${s}`);
  const failed = results.filter((r) => !r.ok).length;
  lines.push(`connectivity test: ${results.length - failed}/${results.length} checks passed${failed ? `, ${failed} FAILED` : ""}${skipped.length ? `, ${skipped.length} skipped` : ""}`);
  return { text: lines.join("\n"), ok: failed === 0 && results.length > 0 };
}

/** What a ping's output says in a few words: "2/2, rtt 0.31 ms" or why it failed. */
export function pingSummary(stdout: string, stderr: string): string {
  const got = /(\d+) packets transmitted, (\d+) received/.exec(stdout);
  const rtt = /= [\d.]+\/([\d.]+)\//.exec(stdout);
  if (got) return `${got[2]}/${got[1]}${rtt ? `, rtt ${rtt[1]} ms` : ""}`;
  return (stderr || stdout).trim().split("\n")[0] ?? "";
}
