// What the agent needs to know about a network device, read with `ip -j`, and ip's batch mode.
import { execFile } from "child_process";
import { ExecResult, tryIp, tryIpIn } from "./exec";

export interface LinkInfo {
  name: string;
  ifindex: number;
  mac: string;
  mtu: number;
  up: boolean;
  /** "veth", "vxlan", … (from linkinfo.info_kind) */
  kind?: string;
  /** Kind-specific data, e.g. vxlan's { external, port }. */
  data?: Record<string, unknown>;
  flags: string[];
}

/** Parses one `ip -j -d link show` entry. Pure. */
export function parseLink(entry: Record<string, unknown>): LinkInfo {
  const linkinfo = entry.linkinfo as { info_kind?: string; info_data?: Record<string, unknown> } | undefined;
  const flags = Array.isArray(entry.flags) ? (entry.flags as string[]) : [];
  return {
    name: String(entry.ifname),
    ifindex: Number(entry.ifindex),
    mac: String(entry.address ?? ""),
    mtu: Number(entry.mtu),
    up: flags.includes("UP"),
    ...(linkinfo?.info_kind ? { kind: linkinfo.info_kind } : {}),
    ...(linkinfo?.info_data ? { data: linkinfo.info_data } : {}),
    flags,
  };
}

function fromResult(r: ExecResult): LinkInfo | undefined {
  if (!r.ok) {
    if (/does not exist|Cannot find device/i.test(r.stderr)) return undefined;
    throw new Error(`ip link show failed: ${r.stderr.trim()}`);
  }
  const list = JSON.parse(r.stdout) as Record<string, unknown>[];
  return list.length ? parseLink(list[0]) : undefined;
}

/** The device in the agent's namespace, or undefined when there is none. */
export async function getLink(name: string): Promise<LinkInfo | undefined> {
  return fromResult(await tryIp("-j", "-d", "link", "show", "dev", name));
}

export async function getLinkIn(netnsPath: string, name: string): Promise<LinkInfo | undefined> {
  return fromResult(await tryIpIn(netnsPath, "-j", "-d", "link", "show", "dev", name));
}

/** Every device of the agent's namespace. */
export async function listLinks(): Promise<LinkInfo[]> {
  const r = await tryIp("-j", "-d", "link", "show");
  if (!r.ok) throw new Error(`ip link show failed: ${r.stderr.trim()}`);
  return (JSON.parse(r.stdout) as Record<string, unknown>[]).map(parseLink);
}

export async function linkIn(netnsPath: string, name: string): Promise<LinkInfo> {
  const l = await getLinkIn(netnsPath, name);
  if (!l) throw new Error(`no device ${name} in ${netnsPath}`);
  return l;
}


/**
 * One `ip -batch` line from tokens. ip's batch reader splits on whitespace and honours quotes
 * and `#`, so a token with any of those (or an empty one) could change the command: refused.
 * Pure.
 */
export function batchLine(tokens: readonly string[]): string {
  for (const t of tokens) {
    if (!/^[A-Za-z0-9._:/@+=-]+$/.test(t)) throw new Error(`internal: ${JSON.stringify(t)} cannot be an ip -batch token`);
  }
  return tokens.join(" ");
}

/**
 * Runs `lines` through ONE `ip -batch -` (with `-j` output when asked) inside the namespace at
 * `netnsPath`: one process where a command per step would cost a fork/exec each (the bulk of an
 * endpoint add's time on a loaded host).
 */
export function ipBatchIn(netnsPath: string, lines: readonly string[], json = false, timeoutMs = 30_000): Promise<ExecResult> {
  return new Promise((resolve) => {
    const args = [`--net=${netnsPath}`, "ip", ...(json ? ["-j"] : []), "-batch", "-"];
    const child = execFile("nsenter", args, { encoding: "utf8", timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : null) : 0;
      resolve({ ok: !err, code, stdout, stderr: stderr || (err && !stderr ? err.message : "") });
    });
    child.stdin?.on("error", () => undefined); // nsenter failed before reading: reported through the exit status
    child.stdin?.end(lines.join("\n") + "\n");
  });
}
