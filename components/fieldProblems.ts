// Checks of the values users give components, in the user's field names: the pieces Network
// and EtcdCluster share. Each returns messages that name the field path and the value; values
// that are Outputs (not known at construction) are left to the providers' own checks.
import * as pulumi from "@pulumi/pulumi";
import { addressProblem, hostPathProblem } from "../provider/common/validate";
import { SshConnection, sshConnectionProblems } from "../provider/host/sshConnection";
import type { EtcdHostArgs } from "./etcdCluster";

/** A value known now (not an Output or a Promise): only those can be judged at construction. */
export const plain = (v: unknown): boolean => !pulumi.Output.isInstance(v) && !(v instanceof Promise);

/** The user's name for host i: `hosts[0] ("h1")`. */
export const hostField = (i: number, h: { name?: unknown } | undefined): string => `hosts[${i}]${typeof h?.name === "string" ? ` (${JSON.stringify(h.name)})` : ""}`;

/**
 * Problems with an SSH private key, parsed (never used) with ssh2's own parser, so a key that
 * cannot work fails at preview naming the field instead of at `up` on the host.
 */
export function privateKeyProblem(field: string, key: unknown): string | undefined {
  if (!plain(key)) return undefined;
  if (typeof key !== "string" || key.trim() === "") return `${field} must be the text of an SSH private key (OpenSSH or PEM), got ${typeof key === "string" ? "an empty string" : JSON.stringify(key)}`;
  const { utils } = require("ssh2") as typeof import("ssh2");
  const parsed = utils.parseKey(key);
  if (parsed instanceof Error) return `${field} is not a usable SSH private key (${parsed.message}); give the key file's text (OpenSSH or PEM, unencrypted)`;
  const first = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!first?.isPrivateKey()) return `${field} is a public key; give the private key's text`;
  return undefined;
}

/** A connection's problems (fields, then each key): only when the connection is a plain value. */
export function connectionProblems(field: string, c: unknown): string[] {
  if (!plain(c)) return [];
  const conn = c as Partial<SshConnection> | undefined;
  const problems = sshConnectionProblems(conn, field);
  for (let f = field, j: Partial<SshConnection> | undefined = conn; j && typeof j === "object"; f = `${f}.jump`, j = j.jump) {
    const p = privateKeyProblem(`${f}.privateKey`, j.privateKey);
    if (p) problems.push(p);
  }
  return problems;
}

/** An etcd member host's fields (`field` is the user's path to it, e.g. `etcd.members[0] ("h1")`). */
export function etcdHostProblems(field: string, m: EtcdHostArgs, checkConnection = true): string[] {
  if (!m || typeof m !== "object") return [`${field} must be an etcd host ({ name, connection, address, stateDir? }), got ${JSON.stringify(m)}`];
  const problems: string[] = [];
  const add = (p: string | undefined) => p && problems.push(p);
  add(hostNameProblem(`${field}.name`, m.name));
  if (m.stateDir !== undefined) add(hostPathProblem(`${field}.stateDir`, m.stateDir));
  add(addressProblem(`${field}.address`, m.address));
  if (checkConnection) problems.push(...connectionProblems(`${field}.connection`, m.connection));
  return problems;
}

/** A host's name (its key in etcd, its member name): letters, digits, "_", ".", "-". */
export function hostNameProblem(field: string, name: unknown): string | undefined {
  if (typeof name === "string" && /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(name)) return undefined;
  return `${field} must be a host name of letters, digits, "_", ".", "-" (at most 63 characters), got ${JSON.stringify(name)}`;
}

/** The first name listed twice, if any. */
export function duplicateName(items: { name?: unknown }[]): unknown {
  const names = items.map((h) => h?.name);
  return names.find((n, i) => names.indexOf(n) !== i);
}
