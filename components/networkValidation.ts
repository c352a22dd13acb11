// The Network component's arguments checked at construction (so at `pulumi preview`, before
// anything is written), in the user's terms: every message names the field as the user wrote
// it (`hosts[0] ("h1").stateDir`) and its value. The checks are the providers' own (path,
// interface, address and SSH validators, the network spec's checkNetworkSpec): this module
// only feeds them the user's fields and renames the inner resources' fields (ContainerNetwork's
// `hostAddresses[i]` is the user's `hosts[i] (…).underlayIp`).
import * as pulumi from "@pulumi/pulumi";
import { addressProblem, hostPathProblem, interfaceNameProblem } from "../provider/common/validate";
import { UNKNOWN } from "../provider/common/unknown";
import { SshConnection, sshConnectionProblems } from "../provider/host/sshConnection";
import { checkNetworkSpec } from "../provider/network/networkSpec";
import type { NetworkArgs, NetworkHostArgs } from "./network";

/** A value known now (not an Output or a Promise): only those can be judged at construction. */
const plain = (v: unknown): boolean => !pulumi.Output.isInstance(v) && !(v instanceof Promise);

/** The user's name for host i: `hosts[0] ("h1")`. */
export const hostField = (i: number, h: Pick<NetworkHostArgs, "name"> | undefined): string => `hosts[${i}]${typeof h?.name === "string" ? ` (${JSON.stringify(h.name)})` : ""}`;

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

function hostProblems(i: number, h: NetworkHostArgs): string[] {
  const field = hostField(i, h);
  if (!h || typeof h !== "object") return [`${field} must be a host ({ name, connection, underlayIp, … }), got ${JSON.stringify(h)}`];
  const problems: string[] = [];
  const add = (p: string | undefined) => p && problems.push(p);
  if (typeof h.name !== "string" || !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(h.name)) {
    add(`${field}.name must be a host name of letters, digits, "_", ".", "-" (at most 63 characters), got ${JSON.stringify(h.name)}`);
  }
  for (const key of ["installDir", "stateDir", "bpffsDir"] as const) if (h[key] !== undefined) add(hostPathProblem(`${field}.${key}`, h[key]));
  if (h.underlayInterface !== undefined) add(interfaceNameProblem(`${field}.underlayInterface`, h.underlayInterface));
  if (h.controlAddress !== undefined) add(addressProblem(`${field}.controlAddress`, h.controlAddress));
  problems.push(...connectionProblems(`${field}.connection`, h.connection));
  return problems;
}

/** The network spec's own check (ContainerNetwork's), on the values known now, in the user's field names. */
function specProblems(args: NetworkArgs, networkName: string): string[] {
  const known = (v: unknown) => (plain(v) ? v : UNKNOWN);
  const hosts = Array.isArray(args.hosts) ? args.hosts : [];
  const { failures } = checkNetworkSpec({
    networkName: known(args.networkName ?? networkName) as string,
    mode: args.mode,
    clusterCidr: known(args.clusterCidr) as string,
    hostPrefixLength: known(args.hostPrefixLength) as number,
    vni: known(args.vni) as number,
    vxlanPort: known(args.vxlanPort) as number,
    mtu: known(args.mtu) as number,
    underlayMtu: known(args.underlayMtu) as number,
    serviceCidr: known(args.serviceCidr) as string,
    hostAddresses: hosts.map((h) => h?.underlayIp),
  });
  const renamed = (reason: string) => reason.replace(/hostAddresses\[(\d+)\]/g, (_, i) => `${hostField(Number(i), hosts[Number(i)])}.underlayIp`);
  return [...new Set(failures.map((f) => renamed(f.reason)))];
}

/** Every problem with a Network's arguments, in the user's field names; [] when they can work. */
export function networkArgsProblems(name: string, args: NetworkArgs): string[] {
  if (!args || typeof args !== "object") return ["arguments are required"];
  const problems: string[] = [];
  if (!Array.isArray(args.hosts) || args.hosts.length === 0) problems.push("hosts must list at least one host");
  else {
    args.hosts.forEach((h, i) => problems.push(...hostProblems(i, h)));
    const names = args.hosts.map((h) => h?.name);
    const dup = names.find((n, i) => names.indexOf(n) !== i);
    if (dup !== undefined) problems.push(`hosts: host ${JSON.stringify(dup)} is listed twice`);
  }
  problems.push(...specProblems(args, name));
  if (args.mode === "l3" && !args.router) problems.push("mode l3 needs router: the router between the hosts must route each pod CIDR to its host");
  if (args.mode === "vxlan" && args.router) problems.push("router is only for mode l3 (vxlan tunnels between hosts)");
  if (args.router) problems.push(...connectionProblems("router.connection", args.router.connection));
  if (!args.etcd || !!args.etcd.existing === (args.etcd.members?.length ?? 0) > 0) {
    problems.push("etcd needs exactly one of members (provision etcd on these hosts) or existing (a running etcd)");
  }
  args.etcd?.members?.forEach((m, i) => {
    const field = `etcd.members[${i}]${typeof m?.name === "string" ? ` (${JSON.stringify(m.name)})` : ""}`;
    if (m?.stateDir !== undefined) {
      const p = hostPathProblem(`${field}.stateDir`, m.stateDir);
      if (p) problems.push(p);
    }
    if (m?.address !== undefined) {
      const p = addressProblem(`${field}.address`, m.address);
      if (p) problems.push(p);
    }
    // Members made by etcdMembersOn share the hosts' connections: judged once, above.
    if (!args.hosts?.some((h) => h?.connection === m?.connection)) problems.push(...connectionProblems(`${field}.connection`, m?.connection));
  });
  if (args.agents?.nodePath !== undefined) {
    const p = hostPathProblem("agents.nodePath", args.agents.nodePath);
    if (p) problems.push(p);
  }
  return problems;
}

/** Throws one error naming the component and every problem, e.g. `Network "prod": hosts[0] ("h1").stateDir must …, got "var/lib/bpfnet"`. */
export function validateNetworkArgs(name: string, args: NetworkArgs): void {
  const problems = networkArgsProblems(name, args);
  if (problems.length) throw new Error(problems.map((p) => `Network ${JSON.stringify(name)}: ${p}`).join("\n"));
}
