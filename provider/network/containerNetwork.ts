// ContainerNetwork: the network's spec at <prefix>/config, as a Pulumi dynamic resource.
// Registered as a stub (provider/common/providerStub.ts) that loads this module in Pulumi's
// dynamic provider host; without a current dist/ the provider object itself is serialized into
// the state, so its methods use only the local helper modules (captured by value) and
// require("etcd3") at call time; their outputs are plain JSON without undefined values.
import * as pulumi from "@pulumi/pulumi";
import { EtcdConnection, connectionProblems, plainConnection, withEtcd } from "../etcd/etcdClient";
import { configKey, prefixProblem } from "../etcd/keys";
import { Failure, NetworkMode, NetworkSpec, NetworkSpecInputs, StoredConfig, checkNetworkSpec } from "./networkSpec";
import { createConfig, deleteNetwork, readConfig, updateConfig } from "./networkStore";
import { isUnknown } from "../common/unknown";
import { lightProvider } from "../common/providerStub";

/** An EtcdConnection whose fields may be Pulumi inputs. */
export interface EtcdConnectionArgs {
  endpoints: pulumi.Input<pulumi.Input<string>[]>;
  caPem?: pulumi.Input<string>;
  certPem?: pulumi.Input<string>;
  keyPem?: pulumi.Input<string>;
  username?: pulumi.Input<string>;
  password?: pulumi.Input<string>;
}

/** Provider inputs, as `check` returns them (defaults filled). */
export interface ContainerNetworkInputs extends NetworkSpecInputs {
  connection: EtcdConnection;
  adopt?: boolean;
}

/** Provider outputs: the spec as etcd holds it, plus bookkeeping. */
export interface ContainerNetworkOutputs extends NetworkSpec {
  connection: EtcdConnection;
  networkName?: string;
  /** Written into the config; only the network that wrote it may rewrite or delete it. */
  networkId: string;
  /** etcd revision of the last write of <prefix>/config. */
  revision: number;
  configKey: string;
}

/** Changing these moves or redefines the address space: the network is replaced. */
const REPLACE_FIELDS = ["prefix", "mode", "clusterCidr", "hostPrefixLength"] as const;
const UPDATE_FIELDS = ["networkName", "vni", "vxlanPort", "mtu", "underlayMtu", "serviceCidr", "underlayCidrs", "hostAddresses", "connection"] as const;

/** Everything `check` judges: the spec, the connection and the adopt flag. */
function checkInputs(news: ContainerNetworkInputs): ReturnType<typeof checkNetworkSpec> {
  const result = checkNetworkSpec(news);
  result.failures.push(...connectionProblems(news.connection));
  if (news.adopt !== undefined && news.adopt !== null && !isUnknown(news.adopt) && typeof news.adopt !== "boolean") {
    result.failures.push({ property: "adopt", reason: `adopt must be true or false, got ${JSON.stringify(news.adopt)}` });
  }
  return result;
}

/** The spec to write; create and update re-check, so nothing invalid is ever written. */
function specOf(inputs: ContainerNetworkInputs): NetworkSpec {
  const { spec, failures } = checkInputs(inputs);
  if (!spec || failures.length) throw new Error(`invalid ContainerNetwork: ${failures.map((f) => f.reason).join("; ") || "incomplete inputs"}`);
  return spec;
}

function outsOf(spec: NetworkSpec, conn: EtcdConnection, networkId: string, revision: number, networkName: unknown): ContainerNetworkOutputs {
  return {
    ...spec,
    ...(typeof networkName === "string" ? { networkName } : {}),
    connection: plainConnection(conn),
    networkId,
    revision,
    configKey: configKey(spec.prefix),
  };
}

function specFromStored(prefix: string, c: StoredConfig): NetworkSpec {
  const { schema: _s, networkId: _n, ...rest } = c;
  return { prefix, ...rest };
}

/** Stable comparison of two plain values; an unknown new value always counts as a change. */
export function differs(a: unknown, b: unknown): boolean {
  if (isUnknown(b)) return true;
  return canonical(a) !== canonical(b);
}

/**
 * A record resource's check (NetworkPolicy, Service: a spec stored under a network) completed
 * with the network's etcd connection and key prefix: both kept in the inputs, their problems
 * added to the failures.
 */
export function withNetworkChecks<R extends { inputs: Record<string, unknown>; failures: Failure[] }>(result: R, connection: unknown, prefix: unknown): R {
  result.inputs.connection = connection;
  result.inputs.prefix = prefix;
  result.failures.push(...connectionProblems(connection));
  if (!isUnknown(prefix)) {
    const p = prefixProblem("prefix", prefix);
    if (p) result.failures.push({ property: "prefix", reason: p });
  }
  return result;
}

/** The checked spec of a record resource; create and update re-check, so nothing invalid is ever written. */
export function checkedSpec<S>(kind: string, r: { spec?: S; failures: Failure[] }): S {
  if (!r.spec || r.failures.length) throw new Error(`invalid ${kind}: ${r.failures.map((f) => f.reason).join("; ") || "incomplete inputs"}`);
  return r.spec;
}

function canonical(v: unknown): string {
  if (v === undefined || v === null) return "null";
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (typeof v === "object") {
    return `{${Object.keys(v as object)
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(v);
}

export const containerNetworkProvider: pulumi.dynamic.ResourceProvider<ContainerNetworkInputs, ContainerNetworkOutputs> = {
  async check(_olds: ContainerNetworkInputs, news: ContainerNetworkInputs) {
    const { inputs, failures } = checkInputs(news);
    if (inputs.underlayCidrs === undefined) inputs.underlayCidrs = [];
    if (inputs.hostAddresses === undefined) inputs.hostAddresses = [];
    return { inputs: inputs as unknown as ContainerNetworkInputs, failures };
  },

  async diff(_id: string, olds: ContainerNetworkOutputs, news: ContainerNetworkInputs) {
    const o = olds as unknown as Record<string, unknown>;
    const n = news as unknown as Record<string, unknown>;
    const replaces = REPLACE_FIELDS.filter((f) => differs(o[f], n[f]));
    const changes = replaces.length > 0 || UPDATE_FIELDS.some((f) => differs(o[f], n[f]));
    // The replacement writes the same <prefix>/config key: the old one must go first.
    return { changes, replaces, deleteBeforeReplace: true };
  },

  async create(inputs: ContainerNetworkInputs) {
    const spec = specOf(inputs);
    const networkId: string = require("crypto").randomUUID();
    try {
      const { revision } = await withEtcd(inputs.connection, (c) => createConfig(c, spec, networkId, inputs.adopt === true));
      return { id: spec.prefix, outs: outsOf(spec, inputs.connection, networkId, revision, inputs.networkName) };
    } catch (e) {
      // The write may have landed: record the resource so a later run adopts or deletes it.
      if ((e as { outcomeUnknown?: boolean }).outcomeUnknown) {
        throw Object.assign(e as Error, { id: spec.prefix, properties: outsOf(spec, inputs.connection, networkId, 0, inputs.networkName) });
      }
      throw e;
    }
  },

  async read(id: string, props?: ContainerNetworkOutputs) {
    if (!props) return { id: "" };
    const got = await withEtcd(props.connection, (c) => readConfig(c, props.prefix));
    // Gone, or re-created by another network: this resource no longer exists.
    if (!got || got.config.networkId !== props.networkId) return { id: "" };
    return { id, props: outsOf(specFromStored(props.prefix, got.config), props.connection, props.networkId, got.kv.modRevision, props.networkName) };
  },

  async update(_id: string, olds: ContainerNetworkOutputs, news: ContainerNetworkInputs) {
    const spec = specOf(news);
    const { revision } = await withEtcd(news.connection, (c) => updateConfig(c, spec, olds.networkId));
    return { outs: outsOf(spec, news.connection, olds.networkId, revision, news.networkName) };
  },

  async delete(_id: string, props: ContainerNetworkOutputs) {
    await withEtcd(props.connection, (c) => deleteNetwork(c, props.prefix, props.networkId));
  },
};

/** ContainerNetwork's arguments: the spec (mode, CIDRs, VNI, port, MTU), validated at preview, and etcd. */
export interface ContainerNetworkArgs {
  /** How to reach etcd. Stored as a secret (it may hold a client key or a password). */
  connection: pulumi.Input<EtcdConnectionArgs>;
  /** Name of the network; the key prefix defaults to /bpfnet/<networkName>. */
  networkName?: pulumi.Input<string>;
  /** Explicit key prefix (overrides networkName), e.g. "/bpfnet/staging". */
  prefix?: pulumi.Input<string>;
  /** "vxlan" (overlay between hosts) or "l3" (routed, hosts share an L2/L3 underlay). Changing it replaces the network. */
  mode: pulumi.Input<NetworkMode>;
  /** The pod address pool, e.g. "10.244.0.0/16". Changing it replaces the network. */
  clusterCidr: pulumi.Input<string>;
  /** Size of each host's pod subnet (default 24, at most 30; the pool must hold at least 4). Changing it replaces the network. */
  hostPrefixLength?: pulumi.Input<number>;
  /** VXLAN network identifier, 1-16777215 (default 42). */
  vni?: pulumi.Input<number>;
  /** VXLAN UDP port (default 8472). */
  vxlanPort?: pulumi.Input<number>;
  /** Pod MTU (default underlayMtu, minus 50 in vxlan mode). */
  mtu?: pulumi.Input<number>;
  /** MTU of the hosts' underlay interfaces (default 1500). */
  underlayMtu?: pulumi.Input<number>;
  /** Reserved for services; must not overlap the cluster CIDR or the underlay. */
  serviceCidr?: pulumi.Input<string>;
  /** Underlay networks of the hosts; the cluster CIDR must not overlap them. */
  underlayCidrs?: pulumi.Input<pulumi.Input<string>[]>;
  /** Underlay addresses of the hosts; the cluster CIDR must not contain them. */
  hostAddresses?: pulumi.Input<pulumi.Input<string>[]>;
  /** Take over an existing config at the prefix (pulumi import does not work for dynamic resources). */
  adopt?: pulumi.Input<boolean>;
}

/** The connection as a secret input; the engine then keeps the same-named output secret too. */
export function secretConnection(connection: pulumi.Input<EtcdConnectionArgs>): pulumi.Output<EtcdConnection> {
  return pulumi.secret(connection) as pulumi.Output<EtcdConnection>;
}

/** Adds "connection" to additionalSecretOutputs, keeping the caller's own entries. */
export function withSecretConnection(opts: pulumi.CustomResourceOptions | undefined): pulumi.CustomResourceOptions {
  return { ...opts, additionalSecretOutputs: [...(opts?.additionalSecretOutputs ?? []), "connection"] };
}

/** A container network: its spec in etcd under <prefix>/config. */
export class ContainerNetwork extends pulumi.dynamic.Resource {
  // `declare`: with ES2022 class fields a plain declaration would reset the outputs to undefined.
  declare public readonly connection: pulumi.Output<EtcdConnection>;
  declare public readonly prefix: pulumi.Output<string>;
  declare public readonly networkName: pulumi.Output<string | undefined>;
  declare public readonly mode: pulumi.Output<NetworkMode>;
  declare public readonly clusterCidr: pulumi.Output<string>;
  declare public readonly hostPrefixLength: pulumi.Output<number>;
  declare public readonly vni: pulumi.Output<number>;
  declare public readonly vxlanPort: pulumi.Output<number>;
  declare public readonly mtu: pulumi.Output<number>;
  declare public readonly underlayMtu: pulumi.Output<number>;
  declare public readonly serviceCidr: pulumi.Output<string | undefined>;
  declare public readonly underlayCidrs: pulumi.Output<string[]>;
  declare public readonly hostAddresses: pulumi.Output<string[]>;
  declare public readonly networkId: pulumi.Output<string>;
  declare public readonly revision: pulumi.Output<number>;
  declare public readonly configKey: pulumi.Output<string>;

  constructor(name: string, args: ContainerNetworkArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      lightProvider(containerNetworkProvider, __filename, "containerNetworkProvider"),
      name,
      {
        ...args,
        connection: secretConnection(args.connection),
        prefix: args.prefix,
        networkName: args.networkName,
        hostPrefixLength: args.hostPrefixLength,
        vni: args.vni,
        vxlanPort: args.vxlanPort,
        mtu: args.mtu,
        underlayMtu: args.underlayMtu,
        serviceCidr: args.serviceCidr,
        underlayCidrs: args.underlayCidrs,
        hostAddresses: args.hostAddresses,
        networkId: undefined,
        revision: undefined,
        configKey: undefined,
      },
      withSecretConnection(opts),
      "bpfnet",
      "ContainerNetwork",
    );
  }
}
