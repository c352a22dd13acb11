// EtcdCluster: etcd for bpfnet, either provisioned on hosts over SSH (TLS on for clients and
// peers, certificates made by the program, keys kept secret) or an etcd the user already runs.
import * as pulumi from "@pulumi/pulumi";
import { EtcdConnectionArgs } from "../provider/network/containerNetwork";
import { EtcdConnection } from "../provider/etcd/etcdClient";
import { EtcdAuth } from "../provider/etcd/etcdAuth";
import { EtcdHealth } from "../provider/etcd/etcdHealth";
import { EtcdMember } from "../provider/etcd/etcdMember";
import { DEFAULT_CLIENT_PORT, DEFAULT_ETCD_BINARY, DEFAULT_PEER_PORT, EtcdMemberSpec, clientUrl } from "../provider/etcd/etcdMemberSpec";
import { EtcdPki } from "../provider/etcd/etcdPki";
import { CertAndKey } from "../provider/etcd/pki";
import { SshConnection } from "../provider/host/sshConnection";
import { duplicateName, etcdHostProblems, hostField } from "./fieldProblems";

/** A host that runs one etcd member (provisioned over SSH). */
export interface EtcdHostArgs {
  /** Member name; also the host's name in the network. */
  name: string;
  /** SSH access to the host (host key verified). */
  connection: pulumi.Input<SshConnection>;
  /** Address clients and peers reach this member on (put in its certificate). */
  address: string;
  /** The host's state root; the member lives in `<stateDir>/etcd`. Default /var/lib/bpfnet. */
  stateDir?: string;
}

/** A running etcd: its client URLs and credentials (any field may be a Pulumi input). */
export type ExistingEtcdArgs = EtcdConnectionArgs;

/** EtcdCluster's arguments: `hosts` to provision etcd, or `existing` to use a running one. */
export interface EtcdClusterArgs {
  /** Hosts that each run a member: an odd number (1, 3, 5). Leave out when using `existing`. */
  hosts?: EtcdHostArgs[];
  /** Use an etcd the user already runs instead of provisioning one. */
  existing?: ExistingEtcdArgs;
  /** Names the cluster (CA subject, initial-cluster-token). Default: the component's name. */
  clusterName?: string;
  clientPort?: number;
  peerPort?: number;
  /** etcd binary on the hosts. Default /usr/bin/etcd (Debian etcd-server). */
  etcdBinary?: string;
  /** Extra etcd config-file keys, e.g. { "auto-compaction-retention": "1" }. A change rolls members one at a time. */
  flags?: Record<string, string>;
}

export const DEFAULT_STATE_DIR = "/var/lib/bpfnet";

/** Every problem with EtcdCluster's arguments, in the user's field names; [] when they can work. */
export function etcdClusterArgsProblems(args: EtcdClusterArgs): string[] {
  if (!!args.hosts === !!args.existing) return ["give exactly one of `hosts` (provision etcd) or `existing` (use a running etcd)"];
  if (!args.hosts) return [];
  const problems: string[] = [];
  const n = args.hosts.length;
  if (n === 0 || n % 2 === 0) problems.push(`hosts must be an odd number of members (1, 3, 5) for a quorum, got ${n}`);
  const dup = duplicateName(args.hosts);
  if (dup !== undefined) problems.push(`hosts: host ${JSON.stringify(dup)} is listed twice`);
  args.hosts.forEach((h, i) => problems.push(...etcdHostProblems(hostField(i, h), h)));
  return problems;
}

/** Throws at construction (preview) on arguments that can never work, naming the component, each field and its value. */
export function validateEtcdClusterArgs(name: string, args: EtcdClusterArgs): void {
  const problems = etcdClusterArgsProblems(args);
  if (problems.length) throw new Error(problems.map((p) => `EtcdCluster ${JSON.stringify(name)}: ${p}`).join("\n"));
}

/**
 * etcd for bpfnet: provisioned on 1, 3 or 5 hosts over SSH (TLS for clients and peers, certificates
 * made by the program and kept secret, members rolled one at a time), or an etcd the user already runs.
 */
export class EtcdCluster extends pulumi.ComponentResource {
  /** Client URLs of the members. */
  public readonly endpoints: pulumi.Output<string[]>;
  /** The admin connection (root), credentials included (secret). Hosts get their own (EtcdHostAccess). */
  public readonly connection: pulumi.Output<EtcdConnection>;
  /** Resolves once the cluster is whole and has a leader (provisioned clusters). */
  public readonly ready: pulumi.Output<boolean>;
  /** The CA that signs per-host client certificates (secret); provisioned clusters only. */
  public readonly clientCa?: pulumi.Output<CertAndKey>;

  constructor(name: string, args: EtcdClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("bpfnet:index:EtcdCluster", name, {}, opts);
    validateEtcdClusterArgs(name, args);

    if (args.existing) {
      const e = args.existing;
      this.connection = pulumi.secret(
        pulumi.all([e.endpoints, e.caPem, e.certPem, e.keyPem, e.username, e.password]).apply(([endpoints, caPem, certPem, keyPem, username, password]) =>
          plain({ endpoints, caPem, certPem, keyPem, username, password }),
        ),
      );
      this.endpoints = pulumi.output(e.endpoints);
      this.ready = pulumi.output(true);
      this.registerOutputs({ endpoints: this.endpoints });
      return;
    }

    const hosts = args.hosts!;
    const clusterName = args.clusterName ?? name;
    const clientPort = args.clientPort ?? DEFAULT_CLIENT_PORT;
    const peerPort = args.peerPort ?? DEFAULT_PEER_PORT;
    const peers = hosts.map((h) => ({ name: h.name, address: h.address }));
    const pki = new EtcdPki(`${name}-pki`, { clusterName, members: hosts.map((h) => ({ name: h.name, ips: [h.address] })) }, { parent: this });

    // Each member depends on the previous one: a change rolls through the hosts one at a time,
    // and each update waits for its member to be healthy before the next starts.
    const members: EtcdMember[] = [];
    for (const h of hosts) {
      const spec: EtcdMemberSpec = {
        name: h.name,
        address: h.address,
        clientPort,
        peerPort,
        peers,
        clusterToken: `${clusterName}-etcd`,
        dir: `${h.stateDir ?? DEFAULT_STATE_DIR}/etcd`,
        binary: args.etcdBinary ?? DEFAULT_ETCD_BINARY,
        flags: args.flags ?? {},
      };
      members.push(
        new EtcdMember(
          `${name}-${h.name}`,
          {
            connection: h.connection,
            spec,
            caPem: pki.caPem,
            certPem: pki.memberCerts.apply((c) => c[h.name]),
            keyPem: pki.memberKeys.apply((k) => k[h.name]),
          },
          { parent: this, dependsOn: members.length ? [members[members.length - 1]] : [] },
        ),
      );
    }

    this.endpoints = pulumi.output(hosts.map((h) => clientUrl(h.address, clientPort)));
    const connection = pulumi.secret(
      pulumi.all([this.endpoints, pki.caPem, pki.clientCertPem, pki.clientKeyPem]).apply(([endpoints, caPem, certPem, keyPem]) => ({ endpoints, caPem, certPem, keyPem })),
    );
    const health = new EtcdHealth(`${name}-health`, { connection, expectedMembers: hosts.map((h) => h.name) }, { parent: this, dependsOn: members });
    // Auth on once the members are healthy: from then on each client is what its role allows.
    const auth = new EtcdAuth(`${name}-auth`, { connection }, { parent: this, dependsOn: [health] });
    this.ready = pulumi.all([health.healthy, auth.enabled]).apply(([healthy, enabled]) => healthy && enabled);
    // Handed out through the health check and auth, so whoever uses the connection waits for a
    // whole cluster with auth on (and is removed before auth's resource on destroy).
    this.connection = pulumi.secret(pulumi.all([this.ready, connection]).apply(([, c]) => c));
    this.clientCa = pulumi.secret(pulumi.all([pki.caPem, pki.caKeyPem, this.ready]).apply(([certPem, keyPem]) => ({ certPem, keyPem })));
    this.registerOutputs({ endpoints: this.endpoints, ready: this.ready });
  }
}

/** Drops unset fields: dynamic-provider inputs must be plain JSON without undefined. */
function plain(c: { endpoints: string[]; [k: string]: string[] | string | undefined }): EtcdConnection {
  return Object.fromEntries(Object.entries(c).filter(([, v]) => v !== undefined)) as unknown as EtcdConnection;
}
