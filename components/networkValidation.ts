// The Network component's arguments checked at construction (so at `pulumi preview`, before
// anything is written), in the user's terms: every message names the field as the user wrote
// it (`hosts[0] ("h1").stateDir`) and its value. The checks are the providers' own (path,
// interface, address and SSH validators through fieldProblems.ts, the network spec's
// checkNetworkSpec): this module only feeds them the user's fields and renames the inner resources' fields (ContainerNetwork's
// `hostAddresses[i]` is the user's `hosts[i] (…).underlayIp`).
import { addressProblem, booleanProblem, hostPathProblem, interfaceNameProblem, leaseTtlProblem, listenAddressProblem } from "../provider/common/validate";
import { UNKNOWN } from "../provider/common/unknown";
import { checkNetworkSpec, DEFAULT_HOST_PREFIX_LENGTH } from "../provider/network/networkSpec";
import { mapSizeInputProblems } from "../provider/network/mapSizes";
import { maxUnavailableProblem } from "../provider/agent/rollout";
import { connectionProblems, duplicateName, etcdHostProblems, hostField, hostNameProblem, plain } from "./fieldProblems";
import type { NetworkArgs, NetworkHostArgs } from "./network";

export { privateKeyProblem } from "./fieldProblems";

function hostProblems(i: number, h: NetworkHostArgs): string[] {
  const field = hostField(i, h);
  if (!h || typeof h !== "object") return [`${field} must be a host ({ name, connection, underlayIp, … }), got ${JSON.stringify(h)}`];
  const problems: string[] = [];
  const add = (p: string | undefined) => p && problems.push(p);
  add(hostNameProblem(`${field}.name`, h.name));
  for (const key of ["installDir", "stateDir", "bpffsDir"] as const) if (h[key] !== undefined) add(hostPathProblem(`${field}.${key}`, h[key]));
  if (h.underlayInterface !== undefined) add(interfaceNameProblem(`${field}.underlayInterface`, h.underlayInterface));
  if (h.controlAddress !== undefined) add(addressProblem(`${field}.controlAddress`, h.controlAddress));
  if (h.metricsAddress !== undefined) add(listenAddressProblem(`${field}.metricsAddress`, h.metricsAddress));
  if (h.unreachable !== undefined) add(booleanProblem(`${field}.unreachable`, h.unreachable));
  problems.push(...connectionProblems(`${field}.connection`, h.connection));
  return problems;
}

/** The network spec's own check (ContainerNetwork's), on the values known now, in the user's field names. */
export function specProblems(args: NetworkArgs, networkName: string): string[] {
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

/** The agents' map sizes the spec and agents.maxHosts / maxEndpointsPerHost ask for, when too large for the kernel or memory (judged when the CIDRs are known). */
function mapSizeProblems(args: NetworkArgs): string[] {
  const hostPrefixLength = args.hostPrefixLength ?? DEFAULT_HOST_PREFIX_LENGTH;
  const cidrsKnown = typeof args.clusterCidr === "string" && typeof hostPrefixLength === "number";
  return mapSizeInputProblems({
    clusterCidr: cidrsKnown ? (args.clusterCidr as string) : "",
    hostPrefixLength: cidrsKnown ? (hostPrefixLength as number) : NaN,
    maxHosts: args.agents?.maxHosts,
    maxEndpointsPerHost: args.agents?.maxEndpointsPerHost,
  });
}

/** Every problem with a Network's arguments, in the user's field names; [] when they can work. */
export function networkArgsProblems(name: string, args: NetworkArgs): string[] {
  if (!args || typeof args !== "object") return ["arguments are required"];
  const problems: string[] = [];
  if (!Array.isArray(args.hosts) || args.hosts.length === 0) problems.push("hosts must list at least one host");
  else {
    args.hosts.forEach((h, i) => problems.push(...hostProblems(i, h)));
    const dup = duplicateName(args.hosts);
    if (dup !== undefined) problems.push(`hosts: host ${JSON.stringify(dup)} is listed twice`);
  }
  problems.push(...specProblems(args, name));
  if (args.mode === "l3" && !args.router) problems.push("mode l3 needs router: the router between the hosts must route each pod CIDR to its host");
  if (args.mode === "vxlan" && args.router) problems.push("router is only for mode l3 (vxlan tunnels between hosts)");
  if (args.router) problems.push(...connectionProblems("router.connection", args.router.connection));
  if (!args.etcd || !!args.etcd.existing === (args.etcd.members?.length ?? 0) > 0) {
    problems.push("etcd needs exactly one of members (provision etcd on these hosts) or existing (a running etcd)");
  }
  const members = args.etcd?.members ?? [];
  if (members.length % 2 === 0 && members.length > 0) problems.push(`etcd.members must be an odd number of hosts (1, 3, 5) for a quorum, got ${members.length}`);
  const dupMember = duplicateName(members);
  if (dupMember !== undefined) problems.push(`etcd.members: host ${JSON.stringify(dupMember)} is listed twice`);
  members.forEach((m, i) => {
    // Members made by etcdMembersOn share the hosts' connections: those were judged above.
    const shared = args.hosts?.some((h) => h?.connection === m?.connection);
    problems.push(...etcdHostProblems(`etcd.members[${i}]${typeof m?.name === "string" ? ` (${JSON.stringify(m.name)})` : ""}`, m, !shared));
  });
  if (args.agents?.nodePath !== undefined) {
    const p = hostPathProblem("agents.nodePath", args.agents.nodePath);
    if (p) problems.push(p);
  }
  const maxUnavailable = plain(args.agents?.maxUnavailable) ? maxUnavailableProblem("agents.maxUnavailable", args.agents?.maxUnavailable) : undefined;
  if (maxUnavailable) problems.push(maxUnavailable);
  const leaseTtl = args.agents?.leaseTtlSeconds !== undefined && plain(args.agents.leaseTtlSeconds) ? leaseTtlProblem("agents.leaseTtlSeconds", args.agents.leaseTtlSeconds) : undefined;
  if (leaseTtl) problems.push(leaseTtl);
  problems.push(...mapSizeProblems(args));
  return problems;
}

/** Throws one error naming the component and every problem, e.g. `Network "prod": hosts[0] ("h1").stateDir must …, got "var/lib/bpfnet"`. */
export function validateNetworkArgs(name: string, args: NetworkArgs): void {
  const problems = networkArgsProblems(name, args);
  if (problems.length) throw new Error(problems.map((p) => `Network ${JSON.stringify(name)}: ${p}`).join("\n"));
}
