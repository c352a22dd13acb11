// HostAllocation: one host's pod CIDR, allocated atomically from the network's pool, as a Pulumi
// dynamic resource. Serialized like ContainerNetwork: helpers by value, require("etcd3") at call
// time, plain-JSON outputs.
import * as pulumi from "@pulumi/pulumi";
import { checkAllocationSpec } from "./allocationSpec";
import { ContainerNetwork, EtcdConnectionArgs, secretConnection, withSecretConnection } from "../network/containerNetwork";
import { EtcdConnection, withEtcd } from "../etcd/etcdClient";
import { ConnectionRef, SharedEtcdConnection, configureSharedConnection, resolveConnection, storedConnection, storedConnectionProblems } from "../etcd/sharedConnection";
import { Allocation, allocate, inspectHost, isIpamError, release } from "./ipamStore";
import { hostKey } from "../etcd/keys";
import { isUnknown } from "../common/unknown";
import { canonicalCidr, gatewayIp, parseCidr } from "./cidr";
import { lightProvider } from "../common/providerStub";

export interface HostAllocationInputs {
  /** The connection, or (provider: a SharedEtcdConnection) its reference. */
  connection: EtcdConnection | ConnectionRef;
  prefix: string;
  networkName?: string;
  host: string;
  clusterCidr?: string;
  hostPrefixLength?: number;
  requestedCidr?: string;
}

export interface HostAllocationOutputs {
  connection: EtcdConnection | ConnectionRef;
  prefix: string;
  networkName?: string;
  host: string;
  requestedCidr?: string;
  /** The pool, as the network config says. */
  clusterCidr: string;
  hostPrefixLength: number;
  /** The host's pod subnet, e.g. "10.244.3.0/24". */
  podCidr: string;
  /** The pod gateway (router) address: the first usable address of podCidr. */
  gatewayIp: string;
  /** etcd revision of the transaction that wrote the host record. */
  revision: number;
  /** Tags both records; only this allocation may release them. */
  allocationId: string;
  hostKey: string;
}

/** Changing these means another subnet (or another host): release, then allocate again. */
const REPLACE_FIELDS = ["prefix", "host", "clusterCidr", "hostPrefixLength"] as const;

function fail(message: string): never {
  throw new Error(`invalid HostAllocation: ${message}`);
}

function validated(inputs: HostAllocationInputs): HostAllocationInputs & { prefix: string } {
  const { inputs: checked, failures } = checkAllocationSpec(inputs);
  failures.push(...storedConnectionProblems(inputs.connection));
  if (failures.length) fail(failures.map((f) => f.reason).join("; "));
  return checked as unknown as HostAllocationInputs;
}

function outsOf(inputs: HostAllocationInputs, a: Allocation): HostAllocationOutputs {
  return {
    connection: storedConnection(inputs.connection),
    prefix: inputs.prefix,
    ...(typeof inputs.networkName === "string" ? { networkName: inputs.networkName } : {}),
    host: inputs.host,
    ...(typeof inputs.requestedCidr === "string" ? { requestedCidr: inputs.requestedCidr } : {}),
    clusterCidr: a.clusterCidr,
    hostPrefixLength: a.hostPrefixLength,
    podCidr: a.podCidr,
    gatewayIp: a.gatewayIp,
    revision: a.revision,
    allocationId: a.allocationId,
    hostKey: hostKey(inputs.prefix, inputs.host),
  };
}

async function ensure(inputs: HostAllocationInputs, allocationId: string): Promise<HostAllocationOutputs> {
  try {
    const a = await withEtcd(resolveConnection(inputs.connection), (c) =>
      allocate(c, {
        prefix: inputs.prefix,
        host: inputs.host,
        allocationId,
        ...(inputs.clusterCidr !== undefined ? { clusterCidr: inputs.clusterCidr } : {}),
        ...(inputs.hostPrefixLength !== undefined ? { hostPrefixLength: inputs.hostPrefixLength } : {}),
        ...(inputs.requestedCidr !== undefined ? { requestedCidr: inputs.requestedCidr } : {}),
      }),
    );
    return outsOf(inputs, a);
  } catch (e) {
    // The transaction may have committed: keep the resource (with its allocation id) in the
    // state, so the next run adopts the CIDR or a destroy releases it.
    if (isIpamError(e) && e.outcomeUnknown) {
      const pending: Allocation = {
        host: inputs.host,
        podCidr: "",
        gatewayIp: "",
        allocationId,
        revision: 0,
        clusterCidr: inputs.clusterCidr ?? "",
        hostPrefixLength: inputs.hostPrefixLength ?? 0,
        outcome: "new",
        conflicts: 0,
        retries: 0,
      };
      throw Object.assign(e, { id: hostKey(inputs.prefix, inputs.host), properties: outsOf(inputs, pending) });
    }
    throw e;
  }
}

export const hostAllocationProvider: pulumi.dynamic.ResourceProvider<HostAllocationInputs, HostAllocationOutputs> = {
  // A SharedEtcdConnection's config: the connection its resources' references name.
  async configure(req) {
    configureSharedConnection(req);
  },

  async check(_olds: HostAllocationInputs, news: HostAllocationInputs) {
    const { inputs, failures } = checkAllocationSpec(news);
    failures.push(...storedConnectionProblems(news.connection));
    return { inputs: inputs as unknown as HostAllocationInputs, failures };
  },

  async diff(_id: string, olds: HostAllocationOutputs, news: HostAllocationInputs) {
    const o = olds as unknown as Record<string, unknown>;
    const n = news as unknown as Record<string, unknown>;
    // The pool fields are outputs even when not given: only a given (or unknown) value is compared.
    const replaces: string[] = REPLACE_FIELDS.filter((f) => n[f] !== undefined && (isUnknown(n[f]) || n[f] !== o[f]));
    // Pinning the CIDR the host already holds is no change of subnet.
    if (news.requestedCidr !== undefined && (isUnknown(news.requestedCidr) || canonicalCidr(news.requestedCidr) !== olds.podCidr)) replaces.push("requestedCidr");
    const changes =
      replaces.length > 0 ||
      news.requestedCidr !== olds.requestedCidr ||
      news.networkName !== olds.networkName ||
      isUnknown(news.connection) ||
      JSON.stringify(storedConnection(news.connection)) !== JSON.stringify(storedConnection(olds.connection));
    // Releasing first lets the new allocation take the same host key.
    return { changes, replaces, deleteBeforeReplace: true };
  },

  async create(inputs: HostAllocationInputs) {
    const checked = validated(inputs);
    const outs = await ensure(checked, require("crypto").randomUUID());
    return { id: outs.hostKey, outs };
  },

  async read(id: string, props?: HostAllocationOutputs) {
    if (!props) return { id: "" };
    const view = await withEtcd(resolveConnection(props.connection), (c) => inspectHost(c, props.prefix, props.host));
    const rec = view.host?.record;
    const owner = view.cidr?.record;
    // Both records present and still ours, else the allocation is gone (removed by hand or
    // taken over): dropping it from the state lets the next `pulumi up` allocate it again.
    if (!rec || !owner || rec.allocationId !== props.allocationId || owner.allocationId !== props.allocationId || owner.host !== props.host) {
      return { id: "" };
    }
    const cidr = canonicalCidr(rec.cidr)!;
    return {
      id,
      props: { ...props, connection: storedConnection(props.connection), podCidr: cidr, gatewayIp: gatewayIp(parseCidr(cidr)!), revision: view.host!.kv.modRevision },
    };
  },

  async update(_id: string, olds: HostAllocationOutputs, news: HostAllocationInputs) {
    // Re-asserts the allocation under the same id: a no-op when etcd agrees, a repair otherwise.
    const checked = validated(news);
    return { outs: await ensure(checked, olds.allocationId || require("crypto").randomUUID()) };
  },

  async delete(_id: string, props: HostAllocationOutputs) {
    await withEtcd(resolveConnection(props.connection), (c) =>
      release(c, { prefix: props.prefix, host: props.host, allocationId: props.allocationId, ...(props.podCidr ? { podCidr: props.podCidr } : {}) }),
    );
  },
};

/** HostAllocation's arguments: the network (or its prefix and connection) and the host. */
export interface HostAllocationArgs {
  /** Take connection, prefix and pool from this network (explicit args win). */
  network?: ContainerNetwork;
  /** How to reach etcd (required without `network`). Stored as a secret. */
  connection?: pulumi.Input<EtcdConnectionArgs>;
  /** The network's key prefix (or give networkName, or network). */
  prefix?: pulumi.Input<string>;
  networkName?: pulumi.Input<string>;
  /** The host's name: its key in etcd. Changing it replaces the allocation. */
  host: pulumi.Input<string>;
  /** Guards against allocating from another pool: must equal the network's (read from <prefix>/config when omitted). */
  clusterCidr?: pulumi.Input<string>;
  hostPrefixLength?: pulumi.Input<number>;
  /** A specific host subnet: inside the pool, aligned, of hostPrefixLength, and free. */
  requestedCidr?: pulumi.Input<string>;
}

/**
 * One host's pod CIDR, held in etcd under <prefix>/ipam/v1/. With a SharedEtcdConnection as its
 * `provider` option (as Network gives it), the state stores the connection's reference instead
 * of the connection (~10 KB less per host).
 */
export class HostAllocation extends pulumi.dynamic.Resource {
  declare public readonly connection: pulumi.Output<EtcdConnection>;
  declare public readonly prefix: pulumi.Output<string>;
  declare public readonly host: pulumi.Output<string>;
  declare public readonly clusterCidr: pulumi.Output<string>;
  declare public readonly hostPrefixLength: pulumi.Output<number>;
  declare public readonly requestedCidr: pulumi.Output<string | undefined>;
  declare public readonly podCidr: pulumi.Output<string>;
  declare public readonly gatewayIp: pulumi.Output<string>;
  declare public readonly revision: pulumi.Output<number>;
  declare public readonly allocationId: pulumi.Output<string>;
  declare public readonly hostKey: pulumi.Output<string>;

  constructor(name: string, args: HostAllocationArgs, opts?: pulumi.CustomResourceOptions) {
    const net = args.network;
    const connection = args.connection ?? net?.connection;
    if (connection === undefined) throw new Error(`HostAllocation ${name}: give connection or network`);
    // Served by a SharedEtcdConnection: the state keeps the connection's reference, the provider's config the connection.
    const shared = opts?.provider instanceof SharedEtcdConnection ? opts.provider : undefined;
    super(
      lightProvider(hostAllocationProvider, __filename, "hostAllocationProvider"),
      name,
      {
        connection: shared ? shared.ref : secretConnection(connection as pulumi.Input<EtcdConnectionArgs>),
        prefix: args.prefix ?? (args.networkName === undefined ? net?.prefix : undefined),
        networkName: args.networkName,
        host: args.host,
        clusterCidr: args.clusterCidr ?? net?.clusterCidr,
        hostPrefixLength: args.hostPrefixLength ?? net?.hostPrefixLength,
        requestedCidr: args.requestedCidr,
        podCidr: undefined,
        gatewayIp: undefined,
        revision: undefined,
        allocationId: undefined,
        hostKey: undefined,
      },
      withSecretConnection(opts),
      "bpfnet",
      "HostAllocation",
    );
  }
}
