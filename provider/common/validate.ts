// Pure validators for values that end up on a host: in a shell command, a systemd unit, a YAML
// or JSON config. Each returns a message naming the field and the value, or undefined when the
// value is fine. Quoting (common/shell.ts) keeps a value inert in a shell; these keep it sane
// everywhere else (a unit file, etcd's YAML) and catch the mistake at preview, before anything
// runs on a host.
import { isUnknown } from "./unknown";

const show = (v: unknown) => JSON.stringify(v);

/** A value the engine knows at check time (preview passes unknowns as a sentinel). */
export const isKnown = (v: unknown): boolean => v !== undefined && !isUnknown(v);

// Letters, digits and "._+@:=,-": no space, quote, "$", "`", ";", "%" (a systemd specifier), "\".
const PATH_SEGMENT = /^[A-Za-z0-9._+@:=,-]+$/;

/**
 * An absolute, normalized path of safe characters: "/a/b", not "a/b", "/a//b", "/a/./b",
 * "/a/../b", "/a/b/" or "/". Directories bpfnet fills and removes must never be "/".
 */
export function hostPathProblem(field: string, value: unknown): string | undefined {
  const bad = (why: string) => `${field} must be an absolute, normalized path of letters, digits and "._+@:=,-" (${why}), got ${show(value)}`;
  if (typeof value !== "string") return bad("not a string");
  if (!value.startsWith("/")) return bad("not absolute");
  if (value === "/") return bad("not the root directory");
  if (value.length > 4095) return bad("at most 4095 characters");
  const segments = value.slice(1).split("/");
  for (const s of segments) {
    if (s === "") return bad("no empty segment or trailing /");
    if (s === "." || s === "..") return bad(`no "${s}" segment`);
    if (s.length > 255) return bad("segments of at most 255 characters");
    if (!PATH_SEGMENT.test(s)) return bad("no spaces, quotes, $, `, ;, %, \\ or control characters");
  }
  return undefined;
}

// Linux accepts any 1-15 bytes but "/", ":" and whitespace (dev_valid_name); we keep to the
// characters ip(8) and every tool prints without escaping.
const IFNAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;

/** A Linux network interface name: 1-15 characters of letters, digits, "_", ".", "-". */
export function interfaceNameProblem(field: string, value: unknown): string | undefined {
  if (typeof value === "string" && IFNAME.test(value)) return undefined;
  return `${field} must be a Linux interface name (1-15 characters of letters, digits, "_", ".", "-", starting with a letter or digit), got ${show(value)}`;
}

/** A single line of printable text (a description, a token): no newline or control character. */
export function singleLineProblem(field: string, value: unknown, max = 1024): string | undefined {
  // eslint-disable-next-line no-control-regex
  if (typeof value === "string" && value.length <= max && !/[\u0000-\u001f\u007f]/.test(value)) return undefined;
  return `${field} must be one line of text (no newline or control character, at most ${max} characters), got ${show(value)}`;
}

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** An IPv4 address or a DNS name: what goes into URLs and certificates. */
export function addressProblem(field: string, value: unknown): string | undefined {
  // All digits and dots is meant as an address: "10.0.0.256" is not a host name.
  if (typeof value === "string" && (IPV4.test(value) || (HOSTNAME.test(value) && !/^[\d.]+$/.test(value)))) return undefined;
  return `${field} must be an IPv4 address or a DNS name, got ${show(value)}`;
}

/** A lowercase hex sha256 digest (64 characters). */
export function sha256Problem(field: string, value: unknown): string | undefined {
  if (typeof value === "string" && /^[0-9a-f]{64}$/.test(value)) return undefined;
  return `${field} must be a sha256 digest (64 lowercase hex characters), got ${show(value)}`;
}

/** The longest registration lease an agent takes, in seconds (node-agent/config.ts reads the same bound). */
export const MAX_LEASE_TTL_SECONDS = 3600;

/**
 * The agents' registration lease TTL: whole seconds, 1 to MAX_LEASE_TTL_SECONDS. Longer means
 * fewer keepalives for etcd's leader (one per host every TTL/3) but a dead host stays routed that
 * long (docs/scale.md).
 */
export function leaseTtlProblem(field: string, value: unknown): string | undefined {
  if (typeof value === "number" && Number.isInteger(value) && value >= 1 && value <= MAX_LEASE_TTL_SECONDS) return undefined;
  return `${field} must be an integer from 1 to ${MAX_LEASE_TTL_SECONDS} (seconds a silent host stays registered), got ${show(value)}`;
}

/** Runs a validator only on known values; collects its message. */
export function checkKnown(problems: string[], value: unknown, problem: (v: unknown) => string | undefined): void {
  if (!isKnown(value)) return;
  const p = problem(value);
  if (p) problems.push(p);
}

/** A flag: true or false (undefined is left to the caller's default). */
export function booleanProblem(field: string, value: unknown): string | undefined {
  return value === true || value === false ? undefined : `${field} must be true or false, got ${JSON.stringify(value)}`;
}

/**
 * A TCP listen address "HOST:PORT": an IPv4 address or a DNS name (addressProblem) and a port
 * from 1 to 65535, e.g. the agent's metrics address. 0.0.0.0 must be written out: nothing
 * listens on every interface by default.
 */
export function listenAddressProblem(field: string, value: unknown): string | undefined {
  const bad = `${field} must be "HOST:PORT" (an IPv4 address or a DNS name, and a port from 1 to 65535), got ${show(value)}`;
  if (typeof value !== "string") return bad;
  const m = /^([^:]+):([1-9]\d{0,4})$/.exec(value);
  if (!m || Number(m[2]) > 65535 || addressProblem(field, m[1]) !== undefined) return bad;
  return undefined;
}

/** "HOST:PORT" split (the value must have passed listenAddressProblem). */
export function splitListenAddress(value: string): { host: string; port: number } {
  const i = value.lastIndexOf(":");
  return { host: value.slice(0, i), port: Number(value.slice(i + 1)) };
}
