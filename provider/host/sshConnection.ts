// SSH connection settings shared by every resource that reaches a host or a router.
// Pure: validation and splitting of the secret part, no I/O.
import { isUnknown } from "../common/unknown";
import { addressProblem } from "../common/validate";

/** How to reach a machine over SSH. The host key is always verified against `hostKeyFingerprint`. */
export interface SshConnection {
  host: string;
  port?: number;
  user: string;
  /** Private key (OpenSSH or PEM). Always stored as a Pulumi secret. */
  privateKey: string;
  /** "SHA256:<base64>" as printed by `ssh-keygen -lf`; a different host key is refused. */
  hostKeyFingerprint: string;
  /** Connect and handshake timeout, in milliseconds (default 10000). */
  readyTimeoutMs?: number;
  /** Reach the machine through this bastion (its own key and fingerprint). */
  jump?: SshConnection;
}

/** The non-secret part, kept in plain view in state; the key travels as a separate secret input. */
export type SshEndpoint = Omit<SshConnection, "privateKey" | "jump"> & { jump?: SshEndpoint };

const FINGERPRINT = /^SHA256:[A-Za-z0-9+/]{43}$/;
const IPV6 = /^[0-9A-Fa-f:.]{2,45}$/;
const USER = /^[A-Za-z_][A-Za-z0-9_.-]{0,31}$/;

/** Problems with a connection, each naming the field and its value; unknown (preview) values pass. */
export function sshConnectionProblems(c: Partial<SshConnection> | undefined, field = "connection"): string[] {
  if (c === undefined || c === null || typeof c !== "object") return [`${field} is required`];
  const problems: string[] = [];
  const known = (v: unknown) => v !== undefined && !isUnknown(v);
  if (!isUnknown(c.host) && !(typeof c.host === "string" && (addressProblem(`${field}.host`, c.host) === undefined || IPV6.test(c.host)))) {
    problems.push(`${field}.host must be a host name or address, got ${JSON.stringify(c.host)}`);
  }
  if (known(c.port) && !(Number.isInteger(c.port) && c.port! >= 1 && c.port! <= 65535)) problems.push(`${field}.port must be 1-65535, got ${JSON.stringify(c.port)}`);
  if (!isUnknown(c.user) && !(typeof c.user === "string" && USER.test(c.user))) problems.push(`${field}.user must be a user name (letters, digits, "_", ".", "-"), got ${JSON.stringify(c.user)}`);
  if (!isUnknown(c.hostKeyFingerprint) && !FINGERPRINT.test(String(c.hostKeyFingerprint ?? ""))) {
    problems.push(`${field}.hostKeyFingerprint must look like "SHA256:" + 43 base64 characters (ssh-keygen -lf), got ${JSON.stringify(c.hostKeyFingerprint)}`);
  }
  if (c.jump !== undefined && !isUnknown(c.jump)) problems.push(...sshConnectionProblems(c.jump, `${field}.jump`));
  return problems;
}

export function endpointOf(c: SshConnection): SshEndpoint {
  const { privateKey: _key, jump, ...rest } = c;
  return { ...rest, port: c.port ?? 22, ...(jump ? { jump: endpointOf(jump) } : {}) };
}

/** Rebuilds a full connection from the stored endpoint and the secret keys (outer first, then each jump). */
export function connectionOf(e: SshEndpoint, keys: string[]): SshConnection {
  const [key, ...rest] = keys;
  return { ...e, privateKey: key, ...(e.jump ? { jump: connectionOf(e.jump, rest) } : {}) } as SshConnection;
}

export function keysOf(c: SshConnection): string[] {
  return [c.privateKey, ...(c.jump ? keysOf(c.jump) : [])];
}
