// Service: a virtual IP in front of every endpoint carrying the selector's labels, as a Pulumi
// dynamic resource stored at <prefix>/services/v1/ (docs/services.md). Every node agent watches
// the specs and programs its BPF service maps. Serialized like NetworkPolicy: helpers by value,
// require("etcd3") at call time, plain-JSON outputs.
import * as pulumi from "@pulumi/pulumi";
import { EtcdConnection, plainConnection, withEtcd } from "../etcd/etcdClient";
import { serviceSpecKey } from "../etcd/keys";
import { EtcdConnectionArgs, checkedSpec, differs, secretConnection, withNetworkChecks, withSecretConnection } from "../network/containerNetwork";
import { isUnknown } from "../common/unknown";
import type { Selector } from "../policy/policySpec";
import {
  checkServiceSpec,
  ServiceAlgorithm,
  ServiceFrontendArgs,
  ServiceSpec,
  ServiceSpecInputs,
  SessionAffinity,
  StoredService,
  StoredServicePort,
} from "./serviceSpec";
import { deleteService, readService, writeService } from "./serviceStore";
import { lightProvider } from "../common/providerStub";

export interface ServiceInputs extends ServiceSpecInputs {
  connection: EtcdConnection;
  prefix: string;
}

export interface ServiceOutputs extends Omit<StoredService, "schema" | "serviceId" | "frontend"> {
  connection: EtcdConnection;
  prefix: string;
  /** The frontend as stored: the VIP (given or allocated) and each port's reverse-NAT number. */
  frontend: { ip: string; ports: StoredServicePort[] };
  /** The virtual IP (given, or allocated from the serviceCidr). */
  ip: string;
  /** Tags the records; only this resource rewrites or deletes them. */
  serviceId: string;
  /** etcd revision of the last write of the record. */
  revision: number;
  serviceKey: string;
  /** Whether the user gave frontend.ip: an omitted one keeps the allocated VIP across updates. */
  ipGiven: boolean;
  serviceCidr?: string;
  /** Set by refresh when the record was edited by hand into something invalid: why it is. */
  storedProblems?: string[];
}

const SPEC_FIELDS = ["selector", "sessionAffinity", "sessionAffinityTimeoutSeconds", "algorithm"] as const;
/** Another key: the new service is written before the old one goes. */
const REPLACE_FIELDS = ["prefix", "serviceName"] as const;

function checkInputs(news: ServiceInputs): ReturnType<typeof checkServiceSpec> {
  const { connection, prefix, ...spec } = news;
  return withNetworkChecks(checkServiceSpec(spec), connection, prefix);
}

/** The spec to write; create and update re-check, so nothing invalid is ever written. */
function specOf(inputs: ServiceInputs): ServiceSpec {
  return checkedSpec("Service", checkInputs(inputs));
}

function outsOf(stored: StoredService, inputs: { connection: EtcdConnection; prefix: string; serviceCidr?: string }, ipGiven: boolean, revision: number): ServiceOutputs {
  const { schema: _s, ...rest } = stored;
  return {
    ...rest,
    connection: plainConnection(inputs.connection),
    prefix: inputs.prefix,
    ip: stored.frontend.ip,
    revision,
    serviceKey: serviceSpecKey(inputs.prefix, stored.serviceName),
    ipGiven,
    ...(inputs.serviceCidr !== undefined ? { serviceCidr: inputs.serviceCidr } : {}),
  };
}

/** Ports without their reverse-NAT numbers, for comparing with the inputs' normal form. */
const bare = (ports: StoredServicePort[] | undefined) => (ports ?? []).map(({ revNatIndex: _r, ...p }) => p);

export const serviceProvider: pulumi.dynamic.ResourceProvider<ServiceInputs, ServiceOutputs> = {
  async check(_olds: ServiceInputs, news: ServiceInputs) {
    const { inputs, failures } = checkInputs(news);
    return { inputs: inputs as unknown as ServiceInputs, failures };
  },

  async diff(_id: string, olds: ServiceOutputs, news: ServiceInputs) {
    const o = olds as unknown as Record<string, unknown>;
    const n = news as unknown as Record<string, unknown>;
    // Compare normal forms; while something is unknown, the raw inputs.
    const target = checkInputs(news).spec;
    const t = (target ?? n) as Record<string, unknown>;
    const replaces = REPLACE_FIELDS.filter((f) => differs(o[f], n[f]));
    const fe = (target?.frontend ?? news.frontend) as ServiceFrontendArgs | undefined;
    const frontendChanged =
      differs(bare(olds.frontend?.ports), fe?.ports) || (fe?.ip !== undefined ? differs(olds.ip, fe.ip) : olds.ipGiven);
    const changes =
      replaces.length > 0 ||
      (olds.storedProblems?.length ?? 0) > 0 ||
      frontendChanged ||
      SPEC_FIELDS.some((f) => differs(o[f], t[f])) ||
      isUnknown(news.connection) ||
      differs(plainConnection(olds.connection), plainConnection(news.connection));
    return { changes, replaces, deleteBeforeReplace: false };
  },

  async create(inputs: ServiceInputs) {
    const spec = specOf(inputs);
    const serviceId: string = require("crypto").randomUUID();
    const id = serviceSpecKey(inputs.prefix, spec.serviceName);
    try {
      const { service, revision } = await withEtcd(inputs.connection, (c) => writeService(c, inputs.prefix, spec, serviceId));
      return { id, outs: outsOf(service, inputs, spec.frontend.ip !== undefined, revision) };
    } catch (e) {
      // The write may have landed: record the resource so a later run rewrites or deletes it.
      if ((e as { outcomeUnknown?: boolean }).outcomeUnknown) {
        const pending = { schema: 0, serviceId, ...spec, frontend: { ip: spec.frontend.ip ?? "", ports: [] }, ipAllocated: spec.frontend.ip === undefined };
        throw Object.assign(e as Error, { id, properties: outsOf(pending, inputs, spec.frontend.ip !== undefined, 0) });
      }
      throw e;
    }
  },

  async read(id: string, props?: ServiceOutputs) {
    if (!props) return { id: "" };
    const got = await withEtcd(props.connection, (c) => readService(c, props.prefix, props.serviceName));
    // Removed by hand, or now another service's: this resource no longer exists.
    if (!got || got.owner !== props.serviceId) return { id: "" };
    if (!got.service) {
      const { storedProblems: _p, ...rest } = props;
      return { id, props: { ...rest, revision: got.kv.modRevision, storedProblems: got.problems } };
    }
    return { id, props: outsOf(got.service, props, props.ipGiven, got.kv.modRevision) };
  },

  async update(_id: string, olds: ServiceOutputs, news: ServiceInputs) {
    const spec = specOf(news);
    const { service, revision } = await withEtcd(news.connection, (c) => writeService(c, news.prefix, spec, olds.serviceId));
    return { outs: outsOf(service, news, spec.frontend.ip !== undefined, revision) };
  },

  async delete(_id: string, props: ServiceOutputs) {
    await withEtcd(props.connection, (c) => deleteService(c, props.prefix, props.serviceName, props.serviceId));
  },
};

/** What a Service needs of a network: a ContainerNetwork, or a Network component (its serviceCidr, when it has one, checks frontend.ip at preview). */
export type ServiceNetwork =
  | { prefix: pulumi.Input<string>; connection: pulumi.Input<EtcdConnectionArgs>; serviceCidr?: pulumi.Input<string | undefined> }
  | { prefix: pulumi.Input<string>; etcdConnection: pulumi.Input<EtcdConnectionArgs>; containerNetwork?: { serviceCidr: pulumi.Input<string | undefined> } };

/** Service's arguments: the network, the frontend (virtual IP and ports), the backends' selector and how connections are spread. */
export interface ServiceArgs {
  /** The network the service belongs to (a Network or its ContainerNetwork): etcd, prefix and serviceCidr come from it. */
  network?: ServiceNetwork;
  /** How to reach etcd (without `network`). Stored as a secret. */
  connection?: pulumi.Input<EtcdConnectionArgs>;
  /** The network's key prefix (without `network`). */
  prefix?: pulumi.Input<string>;
  /** The network's serviceCidr (without `network`): frontend.ip is checked against it at preview. */
  serviceCidr?: pulumi.Input<string>;
  /** The service's key in etcd (default: the resource name). Changing it replaces the service, new one first. */
  serviceName?: pulumi.Input<string>;
  /** The virtual IP (omit it to get one from the network's serviceCidr) and its ports. */
  frontend: pulumi.Input<ServiceFrontendArgs>;
  /** Labels of the backends: every endpoint of the network carrying them, on any host. At least one label. */
  selector: pulumi.Input<Selector>;
  /** "none" (default): each connection picks a backend; "clientIP": a client keeps its backend. */
  sessionAffinity?: pulumi.Input<SessionAffinity>;
  /** How long a clientIP session sticks after its last connection, 1-65535 s (default 10800). */
  sessionAffinityTimeoutSeconds?: pulumi.Input<number>;
  /** "random" (default) or "maglev" (consistent hashing: a backend change moves the fewest flows). */
  algorithm?: pulumi.Input<ServiceAlgorithm>;
}

/** A virtual IP load-balanced in the kernel over the network's endpoints that match a selector (docs/services.md). */
export class Service extends pulumi.dynamic.Resource {
  declare public readonly connection: pulumi.Output<EtcdConnection>;
  declare public readonly prefix: pulumi.Output<string>;
  declare public readonly serviceName: pulumi.Output<string>;
  /** The virtual IP: given, or allocated from the network's serviceCidr. */
  declare public readonly ip: pulumi.Output<string>;
  declare public readonly frontend: pulumi.Output<{ ip: string; ports: StoredServicePort[] }>;
  declare public readonly selector: pulumi.Output<Selector>;
  declare public readonly sessionAffinity: pulumi.Output<SessionAffinity>;
  declare public readonly sessionAffinityTimeoutSeconds: pulumi.Output<number>;
  declare public readonly algorithm: pulumi.Output<ServiceAlgorithm>;
  declare public readonly serviceId: pulumi.Output<string>;
  declare public readonly revision: pulumi.Output<number>;
  declare public readonly serviceKey: pulumi.Output<string>;

  constructor(name: string, args: ServiceArgs, opts?: pulumi.CustomResourceOptions) {
    const net = args.network;
    const connection = args.connection ?? (net === undefined ? undefined : "etcdConnection" in net ? net.etcdConnection : net.connection);
    const prefix = args.prefix ?? net?.prefix;
    const serviceCidr = args.serviceCidr ?? (net === undefined ? undefined : "etcdConnection" in net ? net.containerNetwork?.serviceCidr : net.serviceCidr);
    if (connection === undefined || prefix === undefined) throw new Error(`Service ${name}: give network, or connection and prefix`);
    super(
      lightProvider(serviceProvider, __filename, "serviceProvider"),
      name,
      {
        connection: secretConnection(connection),
        prefix,
        serviceCidr,
        serviceName: args.serviceName ?? name,
        frontend: args.frontend,
        selector: args.selector,
        sessionAffinity: args.sessionAffinity,
        sessionAffinityTimeoutSeconds: args.sessionAffinityTimeoutSeconds,
        algorithm: args.algorithm,
        ip: undefined,
        serviceId: undefined,
        revision: undefined,
        serviceKey: undefined,
        ipGiven: undefined,
        ipAllocated: undefined,
        storedProblems: undefined,
      },
      withSecretConnection(opts),
      "bpfnet",
      "Service",
    );
  }
}
