// Pure description of one etcd member on a host: its files, its config, its supervisor, and the
// shell commands that start, stop and inspect it. The provider (etcdMember.ts) only ships these.
import { ServiceSpec, serviceFiles } from "../host/supervisor";
import { isUnknown } from "../common/unknown";
import { shellQuote } from "../common/shell";
import { addressProblem, checkKnown, hostPathProblem, isKnown } from "../common/validate";
import { etcdFlagProblems } from "./etcdFlags";

export interface EtcdPeer {
  name: string;
  /** Address clients and peers reach this member on. */
  address: string;
}

export interface EtcdMemberSpec {
  name: string;
  address: string;
  clientPort: number;
  peerPort: number;
  /** All members of the cluster, this one included, in a stable order. */
  peers: EtcdPeer[];
  clusterToken: string;
  /** Directory on the host for this member: data, pki, config, logs (under the host's state root). */
  dir: string;
  /** etcd binary on the host (Debian's etcd-server by default). */
  binary: string;
  /** Extra etcd config keys (YAML config-file names), e.g. {"auto-compaction-retention": "1"}. */
  flags: Record<string, string>;
}

export const DEFAULT_ETCD_BINARY = "/usr/bin/etcd";
export const DEFAULT_CLIENT_PORT = 2379;
export const DEFAULT_PEER_PORT = 2380;

export const memberFiles = (dir: string) => ({
  ca: `${dir}/pki/ca.crt`,
  cert: `${dir}/pki/member.crt`,
  key: `${dir}/pki/member.key`,
  config: `${dir}/etcd.conf.yml`,
  data: `${dir}/data`,
});

export const clientUrl = (address: string, port: number) => `https://${address}:${port}`;

const MEMBER_NAME = /^[a-z0-9][a-z0-9.-]{0,62}$/;
const TOKEN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Every field of a member spec, each problem naming `spec.<field>` and the value; unknowns pass. */
export function memberProblems(s: Partial<EtcdMemberSpec>): string[] {
  const p: string[] = [];
  const memberName = (field: string) => (v: unknown) => (typeof v === "string" && MEMBER_NAME.test(v) ? undefined : `${field} must be a DNS label-like member name, got ${JSON.stringify(v)}`);
  checkKnown(p, s.name, memberName("name"));
  checkKnown(p, s.address, (v) => addressProblem("address", v));
  for (const k of ["clientPort", "peerPort"] as const) {
    const v = s[k];
    if (isKnown(v) && !(Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 65535)) p.push(`${k} must be 1-65535, got ${JSON.stringify(v)}`);
  }
  if (isKnown(s.clientPort) && s.clientPort === s.peerPort) p.push(`clientPort and peerPort must differ, both are ${s.clientPort}`);
  checkKnown(p, s.clusterToken, (v) => (typeof v === "string" && TOKEN.test(v) ? undefined : `clusterToken must be 1-128 characters of letters, digits, ".", "_", "-", got ${JSON.stringify(v)}`));
  checkKnown(p, s.dir, (v) => hostPathProblem("dir", v));
  checkKnown(p, s.binary, (v) => hostPathProblem("binary", v));
  p.push(...etcdFlagProblems("flags", s.flags));
  if (isKnown(s.peers)) {
    if (!Array.isArray(s.peers)) p.push(`peers must be a list of {name, address}, got ${JSON.stringify(s.peers)}`);
    else {
      s.peers.forEach((peer, i) => {
        if (isUnknown(peer)) return;
        checkKnown(p, peer?.name, memberName(`peers[${i}].name`));
        checkKnown(p, peer?.address, (v) => addressProblem(`peers[${i}].address`, v));
      });
      if (isKnown(s.name) && !s.peers.some((peer) => isUnknown(peer) || peer?.name === s.name)) p.push(`peers must include this member "${s.name}"`);
    }
  }
  return p;
}

export const peerUrl = (address: string, port: number) => `https://${address}:${port}`;

/**
 * How a member starts the first time: with the whole new cluster ("new", every peer listed), or
 * joining a running one it was just added to ("existing", the cluster's members as etcd lists
 * them). Only the first start reads these; etcd keeps membership in its log afterwards.
 */
export interface Bootstrap {
  state: "new" | "existing";
  /** name → peer URL of every member, this one included. */
  initialCluster: Record<string, string>;
}

export function newClusterBootstrap(s: EtcdMemberSpec): Bootstrap {
  return { state: "new", initialCluster: Object.fromEntries(s.peers.map((p) => [p.name, peerUrl(p.address, s.peerPort)])) };
}

const BOOTSTRAP_KEYS = /^initial-cluster(-state)?: /;

/** The config without its bootstrap lines: what decides whether a running member must restart. */
export function runtimeConfig(config: string): string {
  return config
    .split("\n")
    .filter((l) => !BOOTSTRAP_KEYS.test(l))
    .join("\n");
}

/** etcd's YAML config file: TLS with client-certificate auth on both the client and peer sides. */
export function memberConfig(s: EtcdMemberSpec, bootstrap: Bootstrap = newClusterBootstrap(s)): string {
  const f = memberFiles(s.dir);
  const tls = [`  cert-file: ${f.cert}`, `  key-file: ${f.key}`, `  trusted-ca-file: ${f.ca}`, "  client-cert-auth: true"];
  const initialCluster = Object.entries(bootstrap.initialCluster)
    .map(([name, url]) => `${name}=${url}`)
    .join(",");
  const lines = [
    "# Written by bpfnet (EtcdMember); changes here are overwritten on the next pulumi up.",
    `name: ${s.name}`,
    `data-dir: ${f.data}`,
    `listen-client-urls: https://${s.address}:${s.clientPort},https://127.0.0.1:${s.clientPort}`,
    `advertise-client-urls: ${clientUrl(s.address, s.clientPort)}`,
    `listen-peer-urls: https://${s.address}:${s.peerPort}`,
    `initial-advertise-peer-urls: https://${s.address}:${s.peerPort}`,
    `initial-cluster: ${initialCluster}`,
    `initial-cluster-token: ${s.clusterToken}`,
    `initial-cluster-state: ${bootstrap.state}`,
    "client-transport-security:",
    ...tls,
    "peer-transport-security:",
    ...tls,
    "logger: zap",
    "log-outputs: [stderr]",
    ...Object.entries(s.flags)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, v]) => `${k}: ${v}`),
    "",
  ];
  return lines.join("\n");
}

/** The member as a supervised service (systemd or the supervisor loop). */
export function memberService(s: EtcdMemberSpec): ServiceSpec {
  return {
    name: `bpfnet-etcd-${s.name}`,
    dir: s.dir,
    argv: [s.binary, "--config-file", memberFiles(s.dir).config],
    description: `bpfnet etcd member ${s.name}`,
  };
}

/** Shell: waits until the member listens on its client port; fails with the log's tail. */
export function waitListeningCommand(s: EtcdMemberSpec): string {
  const log = serviceFiles(memberService(s)).log;
  const port = Number(s.clientPort);
  return `for i in $(seq 150); do ss -Hltn "sport = :${port}" | grep -q . && exit 0; sleep 0.1; done; echo ${shellQuote(`etcd ${s.name} did not listen on :${port}`)} >&2; tail -n 20 ${shellQuote(log)} >&2; exit 1`;
}
