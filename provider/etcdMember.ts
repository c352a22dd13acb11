// EtcdMember: one etcd member on a host, provisioned over SSH (host key verified): files under
// the host's state root, TLS on for clients and peers, started under systemd where the host has
// it, else as a supervised background process. Refresh detects a stopped member or an edited
// config; `pulumi up` restarts or rewrites it.
import * as pulumi from "@pulumi/pulumi";
import { withEtcd } from "./etcdClient";
import { EtcdMemberSpec, clientUrl, memberConfig, memberFiles, memberProblems, memberService, waitListeningCommand } from "./etcdMemberSpec";
import { SshSession, withSsh } from "./ssh";
import { SshConnection, SshEndpoint, connectionOf, sshConnectionProblems } from "./sshConnection";
import { SSH_SECRET_OUTPUTS, sshResourceInputs } from "./sshInputs";
import {
  DETECT_SUPERVISOR,
  SupervisorKind,
  isRunningCommand,
  serviceFiles,
  startCommand,
  stopCommand,
  supervisorScript,
  systemdUnit,
  uninstallCommand,
} from "./supervisor";

export interface EtcdMemberArgs {
  connection: pulumi.Input<SshConnection>;
  spec: pulumi.Input<EtcdMemberSpec>;
  caPem: pulumi.Input<string>;
  certPem: pulumi.Input<string>;
  keyPem: pulumi.Input<string>;
}

interface MemberInputs {
  connection: SshEndpoint;
  privateKeys: string[];
  spec: EtcdMemberSpec;
  caPem: string;
  certPem: string;
  keyPem: string;
}

interface MemberOutputs extends MemberInputs {
  supervisor: SupervisorKind;
  running: boolean;
  configSha256: string;
  etcdVersion: string;
  clientUrl: string;
}

function sha256(text: string): string {
  return (require("crypto") as typeof import("crypto")).createHash("sha256").update(text).digest("hex");
}

export async function detectSupervisor(s: SshSession): Promise<SupervisorKind> {
  return (await s.run(DETECT_SUPERVISOR)).trim() === "systemd" ? "systemd" : "process";
}

/** Writes every file of the member and (re)starts it; returns what create/update record. */
async function install(inputs: MemberInputs, fresh: boolean): Promise<MemberOutputs> {
  const spec = inputs.spec;
  const f = memberFiles(spec.dir);
  const service = memberService(spec);
  return withSsh(connectionOf(inputs.connection, inputs.privateKeys), async (s) => {
    const supervisor = await detectSupervisor(s);
    const probe = await s.exec(`test -x ${spec.binary} && ${spec.binary} --version | head -n1`);
    if (probe.code !== 0) {
      throw new Error(`etcd binary ${spec.binary} not found on ${inputs.connection.host}: install Debian's etcd-server there, or set etcdBinary`);
    }
    await s.run(stopCommand(service, supervisor));
    if (fresh) await s.run(`rm -rf ${f.data}`); // a create never joins with stale data
    await s.run(`mkdir -p ${spec.dir}/pki ${f.data} && chmod 700 ${spec.dir} ${spec.dir}/pki ${f.data}`);
    const config = memberConfig(spec);
    await s.writeFile(f.ca, inputs.caPem, 0o644);
    await s.writeFile(f.cert, inputs.certPem, 0o644);
    await s.writeFile(f.key, inputs.keyPem, 0o600);
    await s.writeFile(f.config, config, 0o600);
    await s.writeFile(serviceFiles(service).supervisor, supervisorScript(service), 0o755);
    if (supervisor === "systemd") await s.writeFile(serviceFiles(service).unit, systemdUnit(service), 0o644);
    await s.run(startCommand(service, supervisor));
    await s.run(waitListeningCommand(spec));
    return {
      ...inputs,
      supervisor,
      running: true,
      configSha256: sha256(config),
      etcdVersion: probe.stdout.trim().replace(/^etcd Version:\s*/, ""),
      clientUrl: clientUrl(spec.address, spec.clientPort),
    };
  });
}

function memberConnection(inputs: MemberInputs, address: string) {
  return { endpoints: [clientUrl(address, inputs.spec.clientPort)], caPem: inputs.caPem, certPem: inputs.certPem, keyPem: inputs.keyPem };
}

/** Whether some member (this one or a peer) reports a leader: the cluster has quorum. */
async function clusterHasLeader(inputs: MemberInputs): Promise<boolean> {
  for (const peer of inputs.spec.peers) {
    try {
      const status = await withEtcd(memberConnection(inputs, peer.address), (c) => c.maintenance.status(), { callTimeoutMs: 1500 });
      if (status.leader !== "0") return true;
    } catch {
      // try the next peer
    }
  }
  return false;
}

/** Waits until this member answers with a leader known: the roll goes on only past a healthy member. */
async function waitHealthy(inputs: MemberInputs, timeoutMs = 60_000): Promise<void> {
  const conn = memberConnection(inputs, inputs.spec.address);
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    try {
      const status = await withEtcd(conn, (c) => c.maintenance.status(), { callTimeoutMs: 2000 });
      if (status.leader !== "0") return;
      last = "no leader";
    } catch (e) {
      last = (e as Error).message;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`etcd member ${inputs.spec.name} at ${conn.endpoints[0]} not healthy after ${timeoutMs} ms: ${last}`);
}

export const etcdMemberProvider: pulumi.dynamic.ResourceProvider = {
  async check(_olds: MemberInputs, news: MemberInputs) {
    const failures = [
      ...sshConnectionProblems(news.connection as Partial<SshConnection>).map((reason) => ({ property: "connection", reason })),
      ...memberProblems(news.spec ?? {}).map((reason) => ({ property: "spec", reason })),
    ];
    return { inputs: news, failures };
  },

  async diff(_id: string, olds: MemberOutputs, news: MemberInputs) {
    const replaces: string[] = [];
    if (olds.spec.name !== news.spec.name || olds.spec.dir !== news.spec.dir) replaces.push("spec");
    if (olds.connection.host !== news.connection.host) replaces.push("connection");
    const same = (k: keyof MemberInputs) => JSON.stringify(olds[k]) === JSON.stringify(news[k]);
    const inputsChanged = !(["connection", "privateKeys", "spec", "caPem", "certPem", "keyPem"] as const).every(same);
    // Drift found by refresh (stopped, or config edited by hand) is repaired by an update.
    const drifted = !olds.running || olds.configSha256 !== sha256(memberConfig(news.spec));
    return { changes: inputsChanged || drifted || replaces.length > 0, replaces, deleteBeforeReplace: true };
  },

  async create(inputs: MemberInputs) {
    const outs = await install(inputs, true);
    return { id: `${inputs.spec.name}@${inputs.connection.host}`, outs };
  },

  async read(id: string, props: MemberOutputs) {
    const f = memberFiles(props.spec.dir);
    const state = await withSsh(connectionOf(props.connection, props.privateKeys), async (s) => ({
      running: (await s.run(isRunningCommand(memberService(props.spec), props.supervisor))).trim() === "running",
      config: (await s.exec(`cat ${f.config}`)).stdout,
    }));
    return { id, props: { ...props, running: state.running, configSha256: sha256(state.config) } };
  },

  async update(_id: string, _olds: MemberOutputs, news: MemberInputs) {
    // Rolling: when the cluster had quorum before this member restarts, wait until the member is
    // back with a leader before the next one goes. A cluster that was down (every member
    // stopped) has no quorum to wait for until the others restart too.
    const hadQuorum = await clusterHasLeader(news);
    // Data is kept: an update restarts the member with its new config and certificates.
    const outs = await install(news, false);
    if (hadQuorum) await waitHealthy(news);
    return { outs };
  },

  async delete(_id: string, props: MemberOutputs) {
    await withSsh(connectionOf(props.connection, props.privateKeys), async (s) => {
      const service = memberService(props.spec);
      await s.run(stopCommand(service, props.supervisor));
      await s.run(uninstallCommand(service, props.supervisor));
      await s.run(`rm -rf ${props.spec.dir}`);
    });
  },
};

export class EtcdMember extends pulumi.dynamic.Resource {
  declare public readonly clientUrl: pulumi.Output<string>;
  declare public readonly etcdVersion: pulumi.Output<string>;
  declare public readonly supervisor: pulumi.Output<string>;
  declare public readonly running: pulumi.Output<boolean>;

  constructor(name: string, args: EtcdMemberArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      etcdMemberProvider,
      name,
      {
        ...sshResourceInputs(args.connection),
        spec: args.spec,
        caPem: args.caPem,
        certPem: args.certPem,
        keyPem: pulumi.secret(args.keyPem),
        clientUrl: undefined,
        etcdVersion: undefined,
        supervisor: undefined,
        running: undefined,
        configSha256: undefined,
      },
      { ...opts, additionalSecretOutputs: [...SSH_SECRET_OUTPUTS, "keyPem"] },
      "bpfnet",
      "EtcdMember",
    );
  }
}
