// Network: the API users write. One ComponentResource composes etcd (provisioned or existing),
// the network's spec in etcd, one pod-CIDR allocation per host, and (as they land) the node
// agents and the router's routes. Pure argument checks run at construction, so bad input fails
// at preview with nothing written.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { ContainerNetwork, ContainerNetworkArgs } from "../provider/network/containerNetwork";
import { EtcdConnection } from "../provider/etcd/etcdClient";
import { EtcdHostAccess } from "../provider/etcd/etcdHostAccess";
import { HostAllocation } from "../provider/ipam/hostAllocation";
import { SharedEtcdConnection, sharedConnectionEnabled } from "../provider/etcd/sharedConnection";
import { NetworkMode } from "../provider/network/networkSpec";
import { NodeAgent } from "../provider/agent/nodeAgent";
import { DEFAULT_METRICS_PORT } from "../provider/agent/nodeAgentSpec";
import { mapSizesFor } from "../provider/network/mapSizes";
import { RouterArgs, RouterRoute } from "../provider/router/routerRoute";
import { SshConnection } from "../provider/host/sshConnection";
import { findUp } from "../bpf/paths";
import { validateNetworkArgs } from "./networkValidation";
import { DEFAULT_STATE_DIR, EtcdCluster, EtcdHostArgs, ExistingEtcdArgs } from "./etcdCluster";

/** A Linux host that joins the network. */
export interface NetworkHostArgs {
  /** The host's name in the network (its key in etcd). */
  name: string;
  /** SSH access (host key verified) for provisioning etcd and the agent. */
  connection: pulumi.Input<SshConnection>;
  /** The data-plane address other hosts (or the router) reach this host on. */
  underlayIp: string;
  /** The data-plane interface (default eth0). */
  underlayInterface?: string;
  /** Where the agent bundle goes (default /opt/bpfnet). */
  installDir?: string;
  /** The host's state root: etcd data, agent state (default /var/lib/bpfnet). */
  stateDir?: string;
  /** bpffs directory for pinned maps (default /sys/fs/bpf/bpfnet). */
  bpffsDir?: string;
  /** Address etcd members and clients use on this host (default: the SSH host). */
  controlAddress?: string;
  /**
   * "HOST:PORT" the host's agent serves Prometheus metrics on, GET /metrics (default: the
   * control address, port 9962). Never every interface unless written out ("0.0.0.0:9962").
   */
  metricsAddress?: string;
  /** Any value; changing it re-issues this host's etcd credentials now (e.g. after a suspected leak). */
  credentialRotation?: string;
  /**
   * The host is gone or cannot be reached over SSH and is to be removed (docs/reliability.md,
   * scenario 7). Set it and `pulumi up` (bpfnet stops contacting the host), then remove the host
   * from `hosts` and `pulumi up`: its etcd credentials and keys are revoked with the admin
   * identity and <prefix>/state/removed/v1/<host> records what stays on the host.
   */
  unreachable?: boolean;
}

/** Where the network's etcd runs: provisioned on some hosts (`members`) or `existing`. */
export interface NetworkEtcdArgs {
  /** Hosts that run an etcd member: 1, 3 or 5 (often some of the network's hosts: see etcdMembersOn). */
  members?: EtcdHostArgs[];
  /** Use an etcd the user already runs instead. */
  existing?: ExistingEtcdArgs;
  /** Extra etcd config keys for provisioned members. */
  flags?: Record<string, string>;
  /** Keep provisioned etcd running when this stack is destroyed (other stacks share it). */
  retainOnDelete?: boolean;
  /**
   * What each host's agent authenticates to etcd as (docs/security.md, "Least privilege in etcd").
   * "per-host" (default): its own user, which reads the network and writes only its own keys
   * (a client certificate from the cluster's CA; for `existing`, a password user made with the
   * given admin login). "shared": every agent uses the cluster's connection as given. Default
   * for `existing` without a `username`: "shared" (bpfnet holds no CA key nor an admin login there).
   */
  hostCredentials?: "per-host" | "shared";
  /** Any value; changing it re-issues every host's etcd credentials now. */
  credentialRotation?: string;
  /** Lifetime of a host's certificate (default 365 days); `pulumi up` renews it within renewBeforeDays (default 30) of expiry. */
  credentialValidityDays?: number;
  renewBeforeDays?: number;
  /** `existing` + per-host: a TLS client certificate for the agents' transport when that etcd requires one (never the admin's). */
  agentTransport?: pulumi.Input<{ certPem: string; keyPem: string }>;
}

/** The node agents Network deploys to every host. */
export interface NetworkAgentArgs {
  /** Deploy a node agent to every host (default true). */
  enabled?: boolean;
  /** The agent bundle (default: build/agent-bundle.tgz of this package, made by scripts/setup). */
  bundlePath?: string;
  /** Node.js (>= 20) on the hosts (default /usr/bin/node). */
  nodePath?: string;
  /**
   * How many agents an update (a new bundle, a changed config) restarts at once (default 1,
   * at most 1000). First creates all run in parallel.
   */
  maxUnavailable?: number;
  /**
   * At most this many hosts will join (default: every host subnet of clusterCidr). Sizes each
   * agent's tunnel, peer and route maps (compiled for 4,096 hosts; never smaller), at most 262,144.
   */
  maxHosts?: number;
  /**
   * At most this many endpoints on one host (default: a host subnet's pod addresses, at most
   * 16,384). With maxHosts it sizes each agent's ipcache (compiled for 65,536 rows; never smaller).
   */
  maxEndpointsPerHost?: number;
  /**
   * The agents' registration lease TTL in seconds (default 15, at most 3600). Each host renews
   * its lease every third of it, so etcd's leader answers hosts / (TTL / 3) keepalives a second
   * (1,000/s at 5,000 hosts with 15 s); a host that dies without leaving stays routed for up to
   * the TTL. Raise it for networks of many thousands of hosts (docs/scale.md).
   */
  leaseTtlSeconds?: number;
}

/** The network's spec: the fields of ContainerNetwork (CIDRs, VNI, port, MTU), documented there. */
type NetworkSpecArgs = Pick<ContainerNetworkArgs, "clusterCidr" | "hostPrefixLength" | "vni" | "vxlanPort" | "mtu" | "underlayMtu" | "serviceCidr">;

/** Network's arguments: the hosts, the mode and CIDRs, etcd, the agents and (l3) the router. Checked at construction, naming the field and value. */
export interface NetworkArgs extends NetworkSpecArgs {
  hosts: NetworkHostArgs[];
  /** "vxlan": tunnel between hosts. "l3": routed; the router must route each pod CIDR to its host. */
  mode: NetworkMode;
  /** Names the network; its etcd prefix is /bpfnet/<networkName> (default: the component's name). */
  networkName?: string;
  etcd: NetworkEtcdArgs;
  agents?: NetworkAgentArgs;
  /** l3 mode: the upstream router that must route each host's pod CIDR to that host. */
  router?: RouterArgs;
}

/** build/agent-bundle.tgz of this package: found by walking up, from components/ (repository) or dist/components/ (installed package). */
export const DEFAULT_BUNDLE_PATH = findUp(path.join("build", "agent-bundle.tgz")) ?? path.resolve(__dirname, "..", "build", "agent-bundle.tgz");

/** What a Network hands back. */
export interface NetworkOutputs {
  etcdEndpoints: pulumi.Output<string[]>;
  /** Secret: includes the client key. */
  etcdConnection: pulumi.Output<EtcdConnection>;
  /** The network's key prefix in etcd. */
  prefix: pulumi.Output<string>;
  /** Each host's pod CIDR, by host name. */
  podCidrs: pulumi.Output<Record<string, string>>;
}

/** Network's argument checks (in the user's field names) live in networkValidation.ts. */
export { networkArgsProblems, validateNetworkArgs } from "./networkValidation";

/** Etcd members on some of the network's hosts, at their control addresses and state roots. */
export function etcdMembersOn(hosts: NetworkHostArgs[]): EtcdHostArgs[] {
  return hosts.map((h) => ({ name: h.name, connection: h.connection, address: controlAddressOf(h), stateDir: h.stateDir ?? DEFAULT_STATE_DIR }));
}

/**
 * A bpfnet container network: etcd (provisioned or existing), the network's spec in etcd, one pod
 * CIDR per host, a node agent per host and, in l3 mode, a route per host on the router.
 * `import { Network } from "bpfnet"`; see the README's "Using it from a Pulumi program".
 */
export class Network extends pulumi.ComponentResource implements NetworkOutputs {
  public readonly etcdEndpoints: pulumi.Output<string[]>;
  public readonly etcdConnection: pulumi.Output<EtcdConnection>;
  public readonly prefix: pulumi.Output<string>;
  public readonly podCidrs: pulumi.Output<Record<string, string>>;
  /** The resources, for programs that compose further. */
  public readonly etcd: EtcdCluster;
  public readonly containerNetwork: ContainerNetwork;
  public readonly allocations: Record<string, HostAllocation>;
  public readonly agents: Record<string, NodeAgent>;
  /** Each host's own etcd identity (empty with hostCredentials "shared"). */
  public readonly hostAccess: Record<string, EtcdHostAccess>;
  public readonly routes: Record<string, RouterRoute>;

  constructor(name: string, args: NetworkArgs, opts?: pulumi.ComponentResourceOptions) {
    super("bpfnet:index:Network", name, {}, opts);
    validateNetworkArgs(name, args);
    this.etcd = new EtcdCluster(
      `${name}-etcd`,
      args.etcd.members?.length ? { clusterName: `${name}-etcd`, flags: args.etcd.flags, hosts: args.etcd.members } : { existing: args.etcd.existing },
      { parent: this, retainOnDelete: args.etcd.retainOnDelete },
    );

    const { hosts, etcd: _etcd, agents: _agents, router: _router, networkName, ...spec } = args;
    this.containerNetwork = new ContainerNetwork(
      `${name}-spec`,
      { ...spec, connection: this.etcd.connection, networkName: networkName ?? name, hostAddresses: hosts.map((h) => h.underlayIp) },
      { parent: this },
    );

    // A host's credentials are made before its allocation and so removed after it: removing a
    // host goes agent (with its endpoints), route, allocation, credentials (docs/reliability.md).
    this.hostAccess = args.agents?.enabled === false ? {} : this.grantHostAccess(name, args);
    // The allocations' etcd connection once, in this provider's config; each allocation stores its hash (~10 KB less per host).
    const allocationProvider = sharedConnectionEnabled() ? new SharedEtcdConnection(`${name}-allocations`, this.etcd.connection, { parent: this }) : undefined;
    this.allocations = Object.fromEntries(
      args.hosts.map((h) => [
        h.name,
        new HostAllocation(`${name}-${h.name}`, { network: this.containerNetwork, host: h.name }, { parent: this, provider: allocationProvider, dependsOn: this.hostAccess[h.name] ? [this.hostAccess[h.name]] : [] }),
      ]),
    );

    // l3: a route per allocation, created after it and deleted before its CIDR is released.
    this.routes = Object.fromEntries(
      args.mode === "l3" && args.router
        ? args.hosts.map((h) => [
            h.name,
            new RouterRoute(`${name}-route-${h.name}`, { router: args.router!, prefix: this.allocations[h.name].podCidr, nextHop: h.underlayIp }, { parent: this, dependsOn: [this.allocations[h.name]] }),
          ])
        : [],
    );
    this.agents = args.agents?.enabled === false ? {} : this.deployAgents(name, args);

    this.etcdEndpoints = this.etcd.endpoints;
    this.etcdConnection = this.etcd.connection;
    this.prefix = this.containerNetwork.prefix;
    this.podCidrs = pulumi.all(Object.fromEntries(Object.entries(this.allocations).map(([h, a]) => [h, a.podCidr]))) as pulumi.Output<Record<string, string>>;
    this.registerOutputs({ etcdEndpoints: this.etcdEndpoints, prefix: this.prefix, podCidrs: this.podCidrs });
  }

  /** Each host's own etcd user and credentials; none when every agent shares the cluster's connection. */
  private grantHostAccess(name: string, args: NetworkArgs): Record<string, EtcdHostAccess> {
    if (hostCredentialsMode(args.etcd) === "shared") {
      if (args.etcd.existing && args.etcd.hostCredentials === undefined) {
        pulumi.log.warn(
          `Network ${name}: every agent uses the given etcd connection (full access of that identity): give etcd.existing a username/password with the root role ` +
            `so bpfnet can make one user per host, or set etcd.hostCredentials: "shared" to say this is intended (docs/security.md)`,
          this,
        );
      }
      return {};
    }
    const e = args.etcd;
    return Object.fromEntries(
      args.hosts.map((h) => [
        h.name,
        new EtcdHostAccess(
          `${name}-access-${h.name}`,
          {
            connection: this.etcd.connection,
            networkPrefix: this.containerNetwork.prefix,
            hostName: h.name,
            ca: this.etcd.clientCa,
            transport: this.etcd.clientCa ? undefined : e.agentTransport,
            validityDays: e.credentialValidityDays,
            renewBeforeDays: e.renewBeforeDays,
            rotation: rotationOf(e.credentialRotation, h.credentialRotation),
          },
          { parent: this, dependsOn: [this.containerNetwork] },
        ),
      ]),
    );
  }

  /**
   * One agent per host, each after its host's allocation. Created in parallel; an update rolls
   * `agents.maxUnavailable` hosts at a time (the providers' shared gate, provider/agent/rollout.ts),
   * not through a chain of dependencies, which would serialize the first `up` too.
   */
  private deployAgents(name: string, args: NetworkArgs): Record<string, NodeAgent> {
    const bundlePath = args.agents?.bundlePath ?? DEFAULT_BUNDLE_PATH;
    const bundleSha256 = bundleDigest(bundlePath, name);
    const agents: Record<string, NodeAgent> = {};
    const mapSizes = pulumi.all([this.containerNetwork.clusterCidr, this.containerNetwork.hostPrefixLength]).apply(([clusterCidr, hostPrefixLength]) =>
      mapSizesFor({ clusterCidr, hostPrefixLength, maxHosts: args.agents?.maxHosts, maxEndpointsPerHost: args.agents?.maxEndpointsPerHost }),
    );
    for (const h of args.hosts) {
      if (h.unreachable) {
        pulumi.log.warn(
          `Network ${name}: host ${h.name} is marked unreachable: bpfnet no longer contacts it. Removing it from hosts revokes its etcd credentials and keys ` +
            `and records in etcd what stays on it (the agent's service, files, pins and devices: the agent resource's leftOnHost output lists them)`,
          this,
        );
      }
      const allocation = this.allocations[h.name];
      agents[h.name] = new NodeAgent(
        `${name}-agent-${h.name}`,
        {
          connection: h.connection,
          // Its own identity (least privilege), else the cluster's connection (hostCredentials "shared").
          etcd: this.hostAccess[h.name]?.agentConnection ?? this.etcd.connection,
          bundlePath,
          bundleSha256,
          // A plain object, not one Output: its known fields are checked at preview while the prefix is unknown.
          spec: {
            hostName: h.name,
            networkPrefix: this.containerNetwork.prefix,
            installDir: h.installDir ?? "/opt/bpfnet",
            stateDir: h.stateDir ?? DEFAULT_STATE_DIR,
            bpffsDir: h.bpffsDir ?? "/sys/fs/bpf/bpfnet",
            underlayInterface: h.underlayInterface ?? "eth0",
            underlayIp: h.underlayIp,
            nodePath: args.agents?.nodePath ?? "/usr/bin/node",
            metricsAddress: h.metricsAddress ?? pulumi.output(h.connection).apply((c) => `${h.controlAddress ?? c.host}:${DEFAULT_METRICS_PORT}`),
            mapSizes,
            ...(args.agents?.leaseTtlSeconds !== undefined ? { leaseTtlSeconds: args.agents.leaseTtlSeconds } : {}),
          },
          // Only a marked host's state holds the admin connection: its removal is done with it.
          ...(h.unreachable ? { unreachable: true, adminEtcd: this.etcd.connection } : {}),
          ...(args.agents?.maxUnavailable !== undefined ? { maxUnavailable: args.agents.maxUnavailable } : {}),
        },
        // After its route too, so that removing the host stops the agent before the route goes.
        { parent: this, dependsOn: [allocation, ...(this.routes[h.name] ? [this.routes[h.name]] : [])] },
      );
    }
    return agents;
  }
}

/** "per-host" unless asked otherwise, or when bpfnet can neither issue certificates nor make users (existing etcd without an admin login). */
export function hostCredentialsMode(etcd: NetworkEtcdArgs): "per-host" | "shared" {
  const given = etcd.hostCredentials;
  if (given !== undefined && given !== "per-host" && given !== "shared") {
    throw new Error(`Network: etcd.hostCredentials must be "per-host" or "shared", got ${JSON.stringify(given)}`);
  }
  if (given) return given;
  return etcd.existing && etcd.existing.username === undefined ? "shared" : "per-host";
}

/** One rotation value from the network's and the host's triggers: either changing rotates. */
export function rotationOf(all: string | undefined, host: string | undefined): string | undefined {
  return all === undefined && host === undefined ? undefined : JSON.stringify([all ?? "", host ?? ""]);
}

/** Reads the bundle once, here in the program: its hash decides whether hosts roll. */
export function bundleDigest(bundlePath: string, network = ""): string {
  if (!fs.existsSync(bundlePath)) {
    throw new Error(`Network ${JSON.stringify(network)}: agents.bundlePath ${JSON.stringify(bundlePath)} does not exist (the package ships build/agent-bundle.tgz; in a checkout, scripts/setup builds it)`);
  }
  return crypto.createHash("sha256").update(fs.readFileSync(bundlePath)).digest("hex");
}

function controlAddressOf(h: NetworkHostArgs): string {
  if (h.controlAddress) return h.controlAddress;
  const c = h.connection as SshConnection;
  if (typeof c?.host !== "string") throw new Error(`Network: host "${h.name}" needs controlAddress when its connection is not a plain value`);
  return c.host;
}
