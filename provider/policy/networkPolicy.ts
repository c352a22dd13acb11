// NetworkPolicy: who may talk to whom, as a Pulumi dynamic resource stored at
// <prefix>/policies/v1/<policyName>. Every node agent watches that directory and turns the
// policies into its endpoints' BPF policy maps (docs/policy.md). Serialized like
// ContainerNetwork: helpers by value, require("etcd3") at call time, plain-JSON outputs.
import * as pulumi from "@pulumi/pulumi";
import { EtcdConnection, plainConnection, withEtcd } from "../etcd/etcdClient";
import { EtcdConnectionArgs, checkedSpec, differs, secretConnection, withNetworkChecks, withSecretConnection } from "../network/containerNetwork";
import { isUnknown } from "../common/unknown";
import { EgressRule, IngressRule, PolicySpec, PolicySpecInputs, Selector, checkPolicySpec } from "./policySpec";
import { deletePolicy, policyKey, readPolicy, writePolicy } from "./policyStore";
import { lightProvider } from "../common/providerStub";

export interface NetworkPolicyInputs extends PolicySpecInputs {
  connection: EtcdConnection;
  prefix: string;
}

export interface NetworkPolicyOutputs extends PolicySpec {
  connection: EtcdConnection;
  prefix: string;
  /** Tags the record; only this resource rewrites or deletes it. */
  policyId: string;
  /** etcd revision of the last write of the record. */
  revision: number;
  policyKey: string;
  /** Set by refresh when the record was edited by hand into something invalid: why it is. */
  storedProblems?: string[];
}

const SPEC_FIELDS = ["endpointSelector", "ingress", "egress", "audit"] as const;
/** Another key: the new policy is written before the old one goes (no window without it). */
const REPLACE_FIELDS = ["prefix", "policyName"] as const;

function checkInputs(news: NetworkPolicyInputs): ReturnType<typeof checkPolicySpec> {
  const { connection, prefix, ...spec } = news;
  return withNetworkChecks(checkPolicySpec(spec), connection, prefix);
}

/** The spec to write; create and update re-check, so nothing invalid is ever written. */
function specOf(inputs: NetworkPolicyInputs): PolicySpec {
  return checkedSpec("NetworkPolicy", checkInputs(inputs));
}

function outsOf(spec: PolicySpec, conn: EtcdConnection, prefix: string, policyId: string, revision: number): NetworkPolicyOutputs {
  return { ...spec, connection: plainConnection(conn), prefix, policyId, revision, policyKey: policyKey(prefix, spec.policyName) };
}

export const networkPolicyProvider: pulumi.dynamic.ResourceProvider<NetworkPolicyInputs, NetworkPolicyOutputs> = {
  async check(_olds: NetworkPolicyInputs, news: NetworkPolicyInputs) {
    const { inputs, failures } = checkInputs(news);
    return { inputs: inputs as unknown as NetworkPolicyInputs, failures };
  },

  async diff(_id: string, olds: NetworkPolicyOutputs, news: NetworkPolicyInputs) {
    const o = olds as unknown as Record<string, unknown>;
    const n = news as unknown as Record<string, unknown>;
    // Compare normal forms (a default protocol filled in, a CIDR written otherwise is no change);
    // while something is unknown, the raw inputs.
    const target = (checkInputs(news).spec ?? n) as Record<string, unknown>;
    const replaces = REPLACE_FIELDS.filter((f) => differs(o[f], n[f]));
    const changes =
      replaces.length > 0 ||
      (olds.storedProblems?.length ?? 0) > 0 ||
      SPEC_FIELDS.some((f) => differs(o[f], target[f] ?? (f === "audit" ? false : undefined))) ||
      isUnknown(news.connection) ||
      differs(plainConnection(olds.connection), plainConnection(news.connection));
    return { changes, replaces, deleteBeforeReplace: false };
  },

  async create(inputs: NetworkPolicyInputs) {
    const spec = specOf(inputs);
    const policyId: string = require("crypto").randomUUID();
    try {
      const { revision } = await withEtcd(inputs.connection, (c) => writePolicy(c, inputs.prefix, spec, policyId));
      return { id: policyKey(inputs.prefix, spec.policyName), outs: outsOf(spec, inputs.connection, inputs.prefix, policyId, revision) };
    } catch (e) {
      // The write may have landed: record the resource so a later run rewrites or deletes it.
      if ((e as { outcomeUnknown?: boolean }).outcomeUnknown) {
        throw Object.assign(e as Error, { id: policyKey(inputs.prefix, spec.policyName), properties: outsOf(spec, inputs.connection, inputs.prefix, policyId, 0) });
      }
      throw e;
    }
  },

  async read(id: string, props?: NetworkPolicyOutputs) {
    if (!props) return { id: "" };
    const got = await withEtcd(props.connection, (c) => readPolicy(c, props.prefix, props.policyName));
    // Removed by hand, or now another policy's: this resource no longer exists.
    if (!got || got.owner !== props.policyId) return { id: "" };
    if (!got.policy) {
      const { storedProblems: _p, ...rest } = props;
      return { id, props: { ...rest, revision: got.kv.modRevision, storedProblems: got.problems } };
    }
    const { schema: _s, policyId: _i, ...spec } = got.policy;
    return { id, props: outsOf(spec, props.connection, props.prefix, props.policyId, got.kv.modRevision) };
  },

  async update(_id: string, olds: NetworkPolicyOutputs, news: NetworkPolicyInputs) {
    const spec = specOf(news);
    const { revision } = await withEtcd(news.connection, (c) => writePolicy(c, news.prefix, spec, olds.policyId));
    return { outs: outsOf(spec, news.connection, news.prefix, olds.policyId, revision) };
  },

  async delete(_id: string, props: NetworkPolicyOutputs) {
    await withEtcd(props.connection, (c) => deletePolicy(c, props.prefix, props.policyName, props.policyId));
  },
};

/** What a NetworkPolicy needs of a network: a ContainerNetwork, or a Network component. */
export type PolicyNetwork =
  | { prefix: pulumi.Input<string>; connection: pulumi.Input<EtcdConnectionArgs> }
  | { prefix: pulumi.Input<string>; etcdConnection: pulumi.Input<EtcdConnectionArgs> };

/** NetworkPolicy's arguments: the network (or its etcd and prefix), the endpoints it selects, and its ingress/egress rules. */
export interface NetworkPolicyArgs {
  /** The network the policy belongs to (a Network or its ContainerNetwork): etcd and prefix come from it. */
  network?: PolicyNetwork;
  /** How to reach etcd (without `network`). Stored as a secret. */
  connection?: pulumi.Input<EtcdConnectionArgs>;
  /** The network's key prefix (without `network`). */
  prefix?: pulumi.Input<string>;
  /** The policy's key in etcd (default: the resource name). Changing it replaces the policy, new one first. */
  policyName?: pulumi.Input<string>;
  /** Labels of the endpoints this policy selects; {} selects every endpoint of the network. */
  endpointSelector: pulumi.Input<Selector>;
  /** Present (even empty): the selected endpoints accept only what some policy's ingress rules allow. */
  ingress?: pulumi.Input<IngressRule[]>;
  /** Present (even empty): the selected endpoints send only what some policy's egress rules allow. */
  egress?: pulumi.Input<EgressRule[]>;
  /** Count would-be drops as audit verdicts and let the packets pass (safe roll-out). */
  audit?: pulumi.Input<boolean>;
}

/** An identity-based network policy of one network (docs/policy.md). */
export class NetworkPolicy extends pulumi.dynamic.Resource {
  declare public readonly connection: pulumi.Output<EtcdConnection>;
  declare public readonly prefix: pulumi.Output<string>;
  declare public readonly policyName: pulumi.Output<string>;
  declare public readonly endpointSelector: pulumi.Output<Selector>;
  declare public readonly ingress: pulumi.Output<IngressRule[] | undefined>;
  declare public readonly egress: pulumi.Output<EgressRule[] | undefined>;
  declare public readonly audit: pulumi.Output<boolean>;
  declare public readonly policyId: pulumi.Output<string>;
  declare public readonly revision: pulumi.Output<number>;
  declare public readonly policyKey: pulumi.Output<string>;

  constructor(name: string, args: NetworkPolicyArgs, opts?: pulumi.CustomResourceOptions) {
    const net = args.network;
    const connection = args.connection ?? (net === undefined ? undefined : "etcdConnection" in net ? net.etcdConnection : net.connection);
    const prefix = args.prefix ?? net?.prefix;
    if (connection === undefined || prefix === undefined) throw new Error(`NetworkPolicy ${name}: give network, or connection and prefix`);
    super(
      lightProvider(networkPolicyProvider, __filename, "networkPolicyProvider"),
      name,
      {
        connection: secretConnection(connection),
        prefix,
        policyName: args.policyName ?? name,
        endpointSelector: args.endpointSelector,
        ingress: args.ingress,
        egress: args.egress,
        audit: args.audit,
        policyId: undefined,
        revision: undefined,
        policyKey: undefined,
        storedProblems: undefined,
      },
      withSecretConnection(opts),
      "bpfnet",
      "NetworkPolicy",
    );
  }
}
