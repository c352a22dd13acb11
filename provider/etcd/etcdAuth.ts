// EtcdAuth: turns on etcd's authentication for a cluster bpfnet provisioned, once its members
// are healthy: the root user (root role) and `auth enable`. From then on every request is
// checked against its user's roles, the user being a client certificate's CN (etcd runs with
// client-cert-auth) or a password login. The Pulumi side is root through its admin certificate
// (CN root, see pki.ts); root has no password, so only that certificate (or a member's) is root.
import * as pulumi from "@pulumi/pulumi";
import { EtcdConnection, connectionProblems, withEtcd } from "./etcdClient";
import { authEnabled, ensureUser } from "./etcdAuthOps";
import { ETCD_ROOT_USER } from "./pki";
import { lightProvider } from "../common/providerStub";

export interface EtcdAuthArgs {
  /** The admin connection: a client certificate with CN root. */
  connection: pulumi.Input<EtcdConnection>;
}

interface AuthInputs {
  connection: EtcdConnection;
}

interface AuthOutputs extends AuthInputs {
  enabled: boolean;
}

async function enable(inputs: AuthInputs): Promise<AuthOutputs> {
  await withEtcd(inputs.connection, async (c) => {
    // etcd refuses `auth enable` unless root exists with the root role.
    await ensureUser(c, ETCD_ROOT_USER, [ETCD_ROOT_USER]);
    await c.auth.authEnable(); // a no-op when already on
  });
  return { ...inputs, enabled: true };
}

export const etcdAuthProvider: pulumi.dynamic.ResourceProvider = {
  async check(_olds: AuthInputs, news: AuthInputs) {
    return { inputs: news, failures: connectionProblems(news.connection) };
  },
  async diff(_id: string, olds: AuthOutputs, news: AuthInputs) {
    const moved = JSON.stringify(olds.connection.endpoints) !== JSON.stringify(news.connection.endpoints) || olds.connection.caPem !== news.connection.caPem;
    return { changes: !olds.enabled || moved };
  },
  async create(inputs: AuthInputs) {
    return { id: "etcd-auth", outs: await enable(inputs) };
  },
  async update(_id: string, _olds: AuthOutputs, news: AuthInputs) {
    return { outs: await enable(news) };
  },
  async read(id: string, props: AuthOutputs) {
    // Turned off by hand (`etcdctl auth disable`) shows as drift; `pulumi up` turns it on again.
    const enabled = await withEtcd(props.connection, (c) => authEnabled(c));
    return { id, props: { ...props, enabled } };
  },
  async delete() {
    // Auth stays on: turning it off would open a cluster that other stacks may still use
    // (retained etcd); a cluster being destroyed takes its users with its data.
  },
};

export class EtcdAuth extends pulumi.dynamic.Resource {
  declare public readonly enabled: pulumi.Output<boolean>;

  constructor(name: string, args: EtcdAuthArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      lightProvider(etcdAuthProvider, __filename, "etcdAuthProvider"),
      name,
      { connection: pulumi.secret(args.connection), enabled: undefined },
      { ...opts, additionalSecretOutputs: ["connection"] },
      "bpfnet",
      "EtcdAuth",
    );
  }
}
