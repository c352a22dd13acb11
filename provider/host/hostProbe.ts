// HostProbe: proves a host is reachable over SSH with a verified host key and records its
// kernel and OS. The first real resource: it exercises the whole dynamic-provider path
// (check, diff, create, read for drift, update, delete) before the network needs it.
import * as pulumi from "@pulumi/pulumi";
import { withSsh } from "./ssh";
import { SshConnection, SshEndpoint, connectionOf, sshConnectionProblems } from "./sshConnection";
import { SSH_SECRET_OUTPUTS, sshResourceInputs } from "./sshInputs";
import { lightProvider } from "../common/providerStub";

/** HostProbe's arguments. */
export interface HostProbeArgs {
  /** How to reach the host; its host key must match `hostKeyFingerprint`. */
  connection: pulumi.Input<SshConnection>;
}

interface ProbeInputs {
  connection: SshEndpoint;
  /** The connection's private keys (host, then each jump host): always secret. */
  privateKeys: string[];
}

interface ProbeFacts {
  hostname: string;
  kernelVersion: string;
  os: string;
}

type ProbeOutputs = ProbeInputs & ProbeFacts;

async function probe(inputs: ProbeInputs): Promise<ProbeFacts> {
  return withSsh(connectionOf(inputs.connection, inputs.privateKeys), async (s) => {
    const out = await s.run("uname -n; uname -r; . /etc/os-release 2>/dev/null; echo \"${PRETTY_NAME:-unknown}\"");
    const [hostname, kernelVersion, os] = out.trim().split("\n");
    return { hostname, kernelVersion, os };
  });
}

export const hostProbeProvider: pulumi.dynamic.ResourceProvider = {
  async check(_olds: ProbeInputs, news: ProbeInputs) {
    const problems = sshConnectionProblems(news.connection as Partial<SshConnection>);
    return { inputs: news, failures: problems.map((reason) => ({ property: "connection", reason })) };
  },

  async diff(_id: string, olds: ProbeOutputs, news: ProbeInputs) {
    const changed = JSON.stringify(olds.connection) !== JSON.stringify(news.connection) || JSON.stringify(olds.privateKeys) !== JSON.stringify(news.privateKeys);
    // Another address is another host: a new probe, not an edit of this one.
    const replaces = olds.connection?.host !== news.connection?.host ? ["connection"] : [];
    return { changes: changed, replaces };
  },

  async create(inputs: ProbeInputs) {
    const facts = await probe(inputs);
    return { id: `${inputs.connection.host}:${inputs.connection.port ?? 22}`, outs: { ...inputs, ...facts } };
  },

  async read(id: string, props: ProbeOutputs) {
    // Refresh re-probes: a changed kernel or hostname shows as drift.
    const facts = await probe(props);
    return { id, props: { ...props, ...facts } };
  },

  async update(_id: string, _olds: ProbeOutputs, news: ProbeInputs) {
    return { outs: { ...news, ...(await probe(news)) } };
  },

  async delete() {
    // A probe leaves nothing on the host.
  },
};

/** Proves a host is reachable over SSH with a verified host key; records its hostname, kernel and OS. */
export class HostProbe extends pulumi.dynamic.Resource {
  declare public readonly hostname: pulumi.Output<string>;
  declare public readonly kernelVersion: pulumi.Output<string>;
  declare public readonly os: pulumi.Output<string>;
  declare public readonly connection: pulumi.Output<SshEndpoint>;

  constructor(name: string, args: HostProbeArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      lightProvider(hostProbeProvider, __filename, "hostProbeProvider"),
      name,
      { ...sshResourceInputs(args.connection), hostname: undefined, kernelVersion: undefined, os: undefined },
      { ...opts, additionalSecretOutputs: SSH_SECRET_OUTPUTS },
      "bpfnet",
      "HostProbe",
    );
  }
}
