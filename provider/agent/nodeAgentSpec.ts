// Pure description of a node agent on a host: where its release and state live, its config
// file, its service, and the checks around it. provider/nodeAgent.ts ships these over SSH.
import { EtcdConnection } from "../etcd/etcdClient";
import { nameProblem, prefixProblem } from "../etcd/keys";
import { ServiceSpec } from "../host/supervisor";
import { checkKnown, hostPathProblem, interfaceNameProblem, isKnown, leaseTtlProblem, listenAddressProblem, sha256Problem } from "../common/validate";
import { parseIpv4 } from "../ipam/cidr";
import { MapSizes, mapSizesProblems } from "../network/mapSizes";

export interface NodeAgentSpec {
  hostName: string;
  networkPrefix: string;
  /** Where releases are unpacked: <installDir>/releases/<sha>, <installDir>/current. */
  installDir: string;
  /** The host's state root; the agent keeps its own state in <stateDir>/agent. */
  stateDir: string;
  bpffsDir: string;
  underlayInterface: string;
  underlayIp: string;
  /** Node.js on the host (>= 20). */
  nodePath: string;
  /** "HOST:PORT" the agent serves Prometheus metrics on (Network's default: the host's control address, port 9962); absent: none. */
  metricsAddress?: string;
  /** Sizes of the maps that grow with the network (Network derives them from its spec); absent or {}: the compiled sizes. */
  mapSizes?: MapSizes;
  /** The agent's registration lease TTL in seconds (absent: the agent's default, 15): how long a dead host stays routed. */
  leaseTtlSeconds?: number;
}

/** The agent's metrics port when Network picks the address (Cilium's agent uses 9962 too). */
export const DEFAULT_METRICS_PORT = 9962;

export const MIN_NODE_MAJOR = 20;

/** Where a deployed agent lives on a host, whatever its release: what operators' tools call. */
export const agentHostPaths = (installDir: string, stateDir: string) => {
  const dir = `${stateDir}/agent`;
  return { current: `${installDir}/current`, cli: `${installDir}/current/bin/bpfnet`, dir, config: `${dir}/agent.json`, socket: `${dir}/agent.sock` };
};

export const agentPaths = (s: NodeAgentSpec, bundleSha256: string) => ({
  ...agentHostPaths(s.installDir, s.stateDir),
  release: `${s.installDir}/releases/${bundleSha256.slice(0, 16)}`,
  bundle: `${s.installDir}/bundles/${bundleSha256.slice(0, 16)}.tgz`,
});

/** The agent's config file (node-agent/config.ts parses it). */
export function agentConfig(s: NodeAgentSpec, etcd: EtcdConnection, bundleSha256: string): string {
  const p = agentPaths(s, bundleSha256);
  return (
    JSON.stringify(
      {
        hostName: s.hostName,
        networkPrefix: s.networkPrefix,
        etcd,
        stateDir: p.dir,
        bpffsDir: s.bpffsDir,
        underlayInterface: s.underlayInterface,
        underlayIp: s.underlayIp,
        apiSocket: p.socket,
        ...(s.metricsAddress ? { metricsAddress: s.metricsAddress } : {}),
        // Only when a map needs more than its compiled size: other networks' configs stay as they were.
        ...(s.mapSizes && Object.keys(s.mapSizes).length > 0 ? { mapSizes: s.mapSizes } : {}),
        ...(s.leaseTtlSeconds !== undefined ? { leaseTtlSeconds: s.leaseTtlSeconds } : {}),
      },
      null,
      2,
    ) + "\n"
  );
}

export function agentService(s: NodeAgentSpec, bundleSha256: string): ServiceSpec {
  const p = agentPaths(s, bundleSha256);
  return {
    name: `bpfnet-agent`,
    dir: p.dir,
    // Through `current`, so the unit and the supervisor survive a roll to a new release.
    argv: [s.nodePath, p.cli, "agent", "--config", p.config],
    description: `bpfnet node agent (${s.hostName})`,
  };
}

/** "v20.20.2" → 20; anything else → undefined. */
export function nodeMajor(versionOutput: string): number | undefined {
  const m = /^v(\d+)\.\d+\.\d+/.exec(versionOutput.trim());
  return m ? Number(m[1]) : undefined;
}

export function nodeVersionProblem(host: string, nodePath: string, probe: { code: number; stdout: string }): string | undefined {
  if (probe.code !== 0) {
    return `node agent on ${host} needs Node.js >= ${MIN_NODE_MAJOR} at ${nodePath}, but none was found there (install Debian's nodejs >= ${MIN_NODE_MAJOR} or NodeSource's, or set agent.nodePath)`;
  }
  const major = nodeMajor(probe.stdout);
  if (major === undefined || major < MIN_NODE_MAJOR) {
    return `node agent on ${host} needs Node.js >= ${MIN_NODE_MAJOR}; found ${probe.stdout.trim() || "an unknown version"} at ${nodePath}`;
  }
  return undefined;
}

/**
 * Every host-side field of a spec (and the bundle digest, which names the release directory),
 * each problem naming `spec.<field>` and the value; values unknown at preview pass.
 */
export function agentSpecProblems(s: Partial<NodeAgentSpec> | undefined, bundleSha256?: unknown): string[] {
  if (!isKnown(s)) return [];
  if (s === null || typeof s !== "object") return [`spec must be an object, got ${JSON.stringify(s)}`];
  const p: string[] = [];
  checkKnown(p, s.hostName, (v) => nameProblem("spec.hostName", v));
  checkKnown(p, s.networkPrefix, (v) => prefixProblem("spec.networkPrefix", v));
  for (const k of ["installDir", "stateDir", "bpffsDir", "nodePath"] as const) checkKnown(p, s[k], (v) => hostPathProblem(`spec.${k}`, v));
  checkKnown(p, s.underlayInterface, (v) => interfaceNameProblem("spec.underlayInterface", v));
  checkKnown(p, s.underlayIp, (v) => (typeof v === "string" && parseIpv4(v) !== undefined ? undefined : `spec.underlayIp must be an IPv4 address, got ${JSON.stringify(v)}`));
  if (s.metricsAddress !== undefined) checkKnown(p, s.metricsAddress, (v) => listenAddressProblem("spec.metricsAddress", v));
  if (s.mapSizes !== undefined) checkKnown(p, s.mapSizes, (v) => mapSizesProblems("spec.mapSizes", v).join("; ") || undefined);
  if (s.leaseTtlSeconds !== undefined) checkKnown(p, s.leaseTtlSeconds, (v) => leaseTtlProblem("spec.leaseTtlSeconds", v));
  checkKnown(p, bundleSha256, (v) => sha256Problem("bundleSha256", v));
  return p;
}
