// RouterRoute: in host-L3 mode the upstream router must send each host's pod CIDR to that host.
// This resource programs that one route over SSH, with a driver per router kind (drivers/).
// All RouterRoutes on a router share one pooled connection and batched command queue
// (drivers/channel.ts); the decisions (what is ours, what to add or remove) are pure
// (routerRouteSpec.ts). Ownership is marked on the router itself, so an interrupted run is
// recognised and finished by the next one, and a route someone else made is never removed.
import * as pulumi from "@pulumi/pulumi";
import { routerDriver } from "./drivers";
import { routerChannel } from "./drivers/channel";
import type { RouterOptions } from "./drivers/driver";
import {
  RouterRouteInputs,
  RouterRouteOutputs,
  StoredRouter,
  diffRouterRoute,
  observedNextHop,
  planDelete,
  planEnsure,
  routeId,
  routerConnection,
  routerRouteProblems,
} from "./routerRouteSpec";
import { SshConnection, SshEndpoint } from "../host/sshConnection";
import { SSH_SECRET_OUTPUTS, sshResourceInputs } from "../host/sshInputs";
import { lightProvider } from "../common/providerStub";

/** A router and how to program it. */
export interface RouterArgs {
  /** How to reach the router: key auth, host key verified against `hostKeyFingerprint`, optional jump host. */
  connection: SshConnection;
  /** "linux" (iproute2) or "frr" (vtysh static routes). */
  driver: "linux" | "frr";
  /** frr: arguments vtysh needs to reach the daemons, e.g. the lab's `--vty_socket DIR --config_dir DIR`. */
  vtyshArgs?: string[];
  /** frr: also `write memory` after each change, so routes survive an FRR restart (default false). */
  writeStartupConfig?: boolean;
  /** frr: the route tag that marks bpfnet's static routes (default 178). */
  tag?: number;
  /** linux: routing table, number or rt_tables name (default "main"). */
  table?: number | string;
  /** linux: route protocol that marks bpfnet's routes, number or rt_protos name (default 178). */
  protocol?: number | string;
}

export interface RouterRouteArgs {
  router: pulumi.Input<RouterArgs>;
  /** The pod CIDR to route, e.g. "10.244.3.0/24" (aligned). */
  prefix: pulumi.Input<string>;
  /** The host's underlay address the router forwards `prefix` to. */
  nextHop: pulumi.Input<string>;
  /** SSH connect and handshake timeout in milliseconds (default: the connection's, else 10000). */
  connectTimeoutMs?: pulumi.Input<number>;
}

function contextOf(inputs: RouterRouteInputs) {
  const channel = routerChannel(routerConnection(inputs.router, inputs.privateKeys, inputs.connectTimeoutMs));
  return { channel, driver: routerDriver(inputs.router) };
}

function outputsOf(inputs: RouterRouteInputs, routerName: string): RouterRouteOutputs {
  // Plain JSON only: an undefined anywhere in outputs breaks the engine's struct encoding.
  return {
    router: JSON.parse(JSON.stringify(inputs.router)) as StoredRouter,
    privateKeys: inputs.privateKeys,
    prefix: inputs.prefix,
    nextHop: inputs.nextHop,
    ...(typeof inputs.connectTimeoutMs === "number" ? { connectTimeoutMs: inputs.connectTimeoutMs } : {}),
    routerName,
  };
}

/** Makes the router route `prefix` to `nextHop` with bpfnet's marker; `claimedNextHop` as in planEnsure. */
async function converge(inputs: RouterRouteInputs, claimedNextHop?: string): Promise<RouterRouteOutputs> {
  const { channel, driver } = contextOf(inputs);
  const desired = { prefix: inputs.prefix, nextHop: inputs.nextHop };
  const plan = planEnsure(await channel.read(driver, desired.prefix), desired, channel.name, claimedNextHop);
  if (plan.add) await channel.ensure(driver, plan.add);
  await Promise.all(plan.remove.map((r) => channel.remove(driver, r)));
  // Trust the router, not the exit codes: the route must now be there, marked as ours.
  const after = await channel.read(driver, desired.prefix);
  if (!after.some((r) => r.owned && r.nextHop === desired.nextHop)) {
    throw new Error(
      `router ${channel.name} (${driver.kind}): \`${driver.describe("ensure", desired)}\` reported success, but the router shows ` +
        (after.length ? after.map((r) => r.description).join("; ") : `no route to ${desired.prefix}`),
    );
  }
  return outputsOf(inputs, channel.name);
}

export const routerRouteProvider: pulumi.dynamic.ResourceProvider = {
  async check(_olds: RouterRouteInputs, news: RouterRouteInputs) {
    return { inputs: news, failures: routerRouteProblems(news) };
  },

  async diff(_id: string, olds: RouterRouteOutputs, news: RouterRouteInputs) {
    return diffRouterRoute(olds, news);
  },

  async create(inputs: RouterRouteInputs) {
    const outs = await converge(inputs);
    return { id: routeId(outs.routerName, inputs.router, inputs.prefix), outs };
  },

  async read(id: string, props: RouterRouteOutputs) {
    const { channel, driver } = contextOf(props);
    const nextHop = observedNextHop(await channel.read(driver, props.prefix), props.nextHop);
    // Gone from the router: an empty id tells refresh the resource no longer exists.
    if (nextHop === undefined) return { id: "", props: {} };
    return { id, props: { ...props, nextHop } };
  },

  async update(_id: string, olds: RouterRouteOutputs, news: RouterRouteInputs) {
    return { outs: await converge(news, olds.nextHop) };
  },

  async delete(_id: string, props: RouterRouteOutputs) {
    const { channel, driver } = contextOf(props);
    const ours = planDelete(await channel.read(driver, props.prefix), props.prefix, channel.name);
    await Promise.all(ours.map((r) => channel.remove(driver, r)));
    const left = (await channel.read(driver, props.prefix)).filter((r) => r.owned);
    if (left.length) {
      throw new Error(`router ${channel.name} (${driver.kind}): \`${driver.describe("remove", left[0])}\` reported success, but the router still shows ${left.map((r) => r.description).join("; ")}`);
    }
  },
};

function storedRouter(r: RouterArgs, connection: SshEndpoint): StoredRouter {
  const { connection: _secret, ...options } = r;
  const defined = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as unknown as RouterOptions;
  return { ...defined, connection };
}

/** One route on the upstream router: `prefix` via `nextHop`, owned and kept by bpfnet. */
export class RouterRoute extends pulumi.dynamic.Resource {
  declare public readonly prefix: pulumi.Output<string>;
  /** The next hop the router has (after refresh: what it really has). */
  declare public readonly nextHop: pulumi.Output<string>;
  declare public readonly routerName: pulumi.Output<string>;
  declare public readonly router: pulumi.Output<StoredRouter>;

  constructor(name: string, args: RouterRouteArgs, opts?: pulumi.CustomResourceOptions) {
    const router = pulumi.output(args.router) as pulumi.Output<RouterArgs>;
    const ssh = sshResourceInputs(router.apply((r) => r.connection));
    super(
      lightProvider(routerRouteProvider, __filename, "routerRouteProvider"),
      name,
      {
        router: pulumi.all([router, ssh.connection]).apply(([r, endpoint]) => storedRouter(r, endpoint)),
        privateKeys: ssh.privateKeys,
        prefix: args.prefix,
        nextHop: args.nextHop,
        connectTimeoutMs: args.connectTimeoutMs,
        routerName: undefined,
      },
      { ...opts, additionalSecretOutputs: SSH_SECRET_OUTPUTS },
      "bpfnet",
      "RouterRoute",
    );
  }
}
