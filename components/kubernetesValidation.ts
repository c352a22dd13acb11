// KubernetesNetwork's arguments checked at construction (so at `pulumi preview`, nothing
// written), naming the user's field and value. Node names, addresses and the network spec go
// through the same validators as Network's; Kubernetes names through the API server's own rules.
import { addressProblem, booleanProblem, hostPathProblem, interfaceNameProblem } from "../provider/common/validate";
import { duplicateName, hostNameProblem, plain } from "./fieldProblems";
import { specProblems } from "./networkValidation";
import { IMAGE_RELEASE_DIR } from "../node-agent/kubernetes/image";
import type { NetworkArgs } from "./network";
import type { KubernetesNetworkArgs, KubernetesNodeArgs } from "./kubernetes";

const show = (v: unknown) => JSON.stringify(v);
const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
// registry/name[:tag][@digest], lowercase path components: no spaces, quotes, "$", "`", ";".
const IMAGE = /^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(\/[a-z0-9]+([._-][a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?$/;

/** A Kubernetes namespace or object name (RFC 1123 label). */
export function dnsLabelProblem(field: string, value: unknown): string | undefined {
  if (typeof value === "string" && DNS_LABEL.test(value)) return undefined;
  return `${field} must be a Kubernetes name (1-63 lowercase letters, digits and "-", starting and ending with a letter or digit), got ${show(value)}`;
}

/** A container image reference, e.g. "bpfnet/agent:0.1.0" or "registry:5000/bpfnet/agent@sha256:…". */
export function imageProblem(field: string, value: unknown): string | undefined {
  if (typeof value === "string" && value.length <= 512 && IMAGE.test(value)) return undefined;
  return `${field} must be a container image reference (lowercase name[:tag][@sha256:digest]), got ${show(value)}`;
}

function nodeProblems(i: number, n: KubernetesNodeArgs): string[] {
  const field = `nodes[${i}]${typeof n?.name === "string" ? ` (${show(n.name)})` : ""}`;
  if (!n || typeof n !== "object") return [`${field} must be a node ({ name, underlayIp, underlayInterface? }), got ${show(n)}`];
  const problems: string[] = [];
  const add = (p: string | undefined) => p && problems.push(p);
  // A Node's name is its host's name in etcd too: both rules hold.
  add(hostNameProblem(`${field}.name`, n.name) ?? (typeof n.name === "string" && !/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/.test(n.name) ? `${field}.name must be a Kubernetes Node name (lowercase letters, digits, "-" and "."), got ${show(n.name)}` : undefined));
  add(addressProblem(`${field}.underlayIp`, n.underlayIp));
  if (n.underlayInterface !== undefined) add(interfaceNameProblem(`${field}.underlayInterface`, n.underlayInterface));
  return problems;
}

/** Every problem with KubernetesNetwork's arguments, in the user's field names; [] when they can work. */
export function kubernetesNetworkArgsProblems(name: string, args: KubernetesNetworkArgs): string[] {
  if (!args || typeof args !== "object") return ["arguments are required"];
  const problems: string[] = [];
  const add = (p: string | undefined) => p && problems.push(p);
  if (!args.provider) problems.push("provider is required: the @pulumi/kubernetes Provider of the cluster (new k8s.Provider(\"cluster\", { kubeconfig }))");
  if (!Array.isArray(args.nodes) || args.nodes.length === 0) problems.push("nodes must list at least one Kubernetes node ({ name, underlayIp })");
  else {
    args.nodes.forEach((n, i) => problems.push(...nodeProblems(i, n)));
    const dup = duplicateName(args.nodes);
    if (dup !== undefined) problems.push(`nodes: node ${show(dup)} is listed twice`);
  }
  // The spec's own check (ContainerNetwork's), with the nodes' addresses in the nodes' field names.
  const asNetwork = { ...args, hosts: Array.isArray(args.nodes) ? args.nodes : [] } as unknown as NetworkArgs;
  problems.push(...specProblems(asNetwork, name).map((p) => p.replace(/hosts\[(\d+)\]/g, "nodes[$1]")));
  if (args.mode === "l3") problems.push(`mode "l3" needs a router that routes each node's pod CIDR: KubernetesNetwork supports "vxlan" so far, got ${show(args.mode)}`);
  if (!args.etcd || !!args.etcd.existing === (args.etcd.members?.length ?? 0) > 0) {
    problems.push("etcd needs exactly one of existing (a running etcd the nodes reach) or members");
  }
  if (args.etcd?.members?.length) problems.push("etcd.members (etcd provisioned over SSH) is Network's: give KubernetesNetwork etcd.existing");
  if (args.namespace !== undefined && plain(args.namespace)) add(dnsLabelProblem("namespace", args.namespace));
  if (args.image !== undefined && plain(args.image)) add(imageProblem("image", args.image));
  if (args.imagePullPolicy !== undefined && !["Always", "IfNotPresent", "Never"].includes(args.imagePullPolicy)) {
    problems.push(`imagePullPolicy must be "Always", "IfNotPresent" or "Never", got ${show(args.imagePullPolicy)}`);
  }
  if (args.securityMode !== undefined && args.securityMode !== "capabilities" && args.securityMode !== "privileged") {
    problems.push(`securityMode must be "capabilities" or "privileged", got ${show(args.securityMode)}`);
  }
  for (const key of ["installDir", "stateDir", "bpffsDir", "cniBinDir", "cniConfDir"] as const) {
    if (args.paths?.[key] !== undefined) add(hostPathProblem(`paths.${key}`, args.paths[key]));
  }
  // The init container mounts these host directories at their own paths: one over the image's release would hide it.
  for (const key of ["installDir", "stateDir", "cniBinDir", "cniConfDir"] as const) {
    const p = args.paths?.[key];
    if (typeof p === "string" && plain(p) && (p === IMAGE_RELEASE_DIR || IMAGE_RELEASE_DIR.startsWith(`${p}/`) || p.startsWith(`${IMAGE_RELEASE_DIR}/`))) {
      problems.push(`paths.${key} must not be or contain the image's release directory ${IMAGE_RELEASE_DIR}, got ${show(p)}`);
    }
  }
  for (const key of ["podCidrOnNodes", "awaitRollout"] as const) if (args[key] !== undefined) add(booleanProblem(key, args[key]));
  return problems;
}

/** Throws one error naming the component and every problem. */
export function validateKubernetesNetworkArgs(name: string, args: KubernetesNetworkArgs): void {
  const problems = kubernetesNetworkArgsProblems(name, args);
  if (problems.length) throw new Error(problems.map((p) => `KubernetesNetwork ${show(name)}: ${p}`).join("\n"));
}
