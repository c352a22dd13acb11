// EtcdMember: one etcd member on a host, provisioned over SSH (host key verified): files under
// the host's state root, TLS on for clients and peers, started under systemd where the host has
// it, else as a supervised background process. Refresh detects a stopped member or an edited
// config; `pulumi up` restarts or rewrites it.
import * as pulumi from "@pulumi/pulumi";
import { withEtcd } from "./etcdClient";
import {
  Bootstrap,
  EtcdMemberSpec,
  clientUrl,
  memberConfig,
  memberFiles,
  memberProblems,
  memberService,
  newClusterBootstrap,
  peerUrl,
  runtimeConfig,
  waitListeningCommand,
} from "./etcdMemberSpec";
import { SshSession, withSsh } from "../host/ssh";
import { requireModes } from "../host/fileModes";
import { shellWords } from "../common/shell";
import { SshConnection, SshEndpoint, connectionOf, sshConnectionProblems } from "../host/sshConnection";
import { SSH_SECRET_OUTPUTS, sshResourceInputs } from "../host/sshInputs";
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
} from "../host/supervisor";
import { lightProvider } from "../common/providerStub";

/** EtcdMember's arguments: SSH to the host, the member's spec, and its TLS material (secret). */
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
async function install(inputs: MemberInputs, fresh: boolean, bootstrap: Bootstrap = newClusterBootstrap(inputs.spec)): Promise<MemberOutputs> {
  const spec = inputs.spec;
  const f = memberFiles(spec.dir);
  const service = memberService(spec);
  return withSsh(connectionOf(inputs.connection, inputs.privateKeys), async (s) => {
    const supervisor = await detectSupervisor(s);
    const probe = await s.exec(`${shellWords(["test", "-x", spec.binary])} && ${shellWords([spec.binary, "--version"])} | head -n1`);
    if (probe.code !== 0) {
      throw new Error(`etcd binary ${spec.binary} not found on ${inputs.connection.host}: install Debian's etcd-server there, or set etcdBinary`);
    }
    await s.run(stopCommand(service, supervisor));
    if (fresh) await s.run(shellWords(["rm", "-rf", f.data])); // a create never joins with stale data
    const dirs = [spec.dir, `${spec.dir}/pki`, f.data];
    await s.run(`${shellWords(["mkdir", "-p", ...dirs])} && ${shellWords(["chmod", "700", ...dirs])}`);
    const config = memberConfig(spec, bootstrap);
    await s.writeFile(f.ca, inputs.caPem, 0o644);
    await s.writeFile(f.cert, inputs.certPem, 0o644);
    await s.writeFile(f.key, inputs.keyPem, 0o600);
    await s.writeFile(f.config, config, 0o600);
    await requireModes(s, inputs.connection.host, [f.key, f.config], "600");
    await s.writeFile(serviceFiles(service).supervisor, supervisorScript(service), 0o755);
    if (supervisor === "systemd") await s.writeFile(serviceFiles(service).unit, systemdUnit(service), 0o644);
    await s.run(startCommand(service, supervisor));
    await s.run(waitListeningCommand(spec));
    return {
      ...inputs,
      supervisor,
      running: true,
      configSha256: sha256(runtimeConfig(config)),
      etcdVersion: probe.stdout.trim().replace(/^etcd Version:\s*/, ""),
      clientUrl: clientUrl(spec.address, spec.clientPort),
    };
  });
}

function memberConnection(inputs: MemberInputs, address: string) {
  return { endpoints: [clientUrl(address, inputs.spec.clientPort)], caPem: inputs.caPem, certPem: inputs.certPem, keyPem: inputs.keyPem };
}

/** The address of a member (optionally not this one) that reports a leader: the cluster has quorum. */
async function memberWithLeader(inputs: MemberInputs, excludeSelf = false): Promise<string | undefined> {
  for (const peer of inputs.spec.peers) {
    if (excludeSelf && peer.name === inputs.spec.name) continue;
    try {
      const status = await withEtcd(memberConnection(inputs, peer.address), (c) => c.maintenance.status(), { callTimeoutMs: 1500 });
      if (status.leader !== "0") return peer.address;
    } catch {
      // try the next peer
    }
  }
  return undefined;
}

/**
 * Adds this member to a running cluster (once: a retry finds its peer URL already listed) and
 * returns how it must start: joining, with the members etcd lists.
 */
async function joinCluster(inputs: MemberInputs, via: string): Promise<Bootstrap> {
  const self = peerUrl(inputs.spec.address, inputs.spec.peerPort);
  for (let attempt = 0; ; attempt++) {
    try {
      // A fresh client each try: etcd3's circuit breaker stays open after a refused call.
      const members = await withEtcd(memberConnection(inputs, via), async (c) => {
        const listed = (await c.cluster.memberList({ linearizable: true })).members;
        return listed.some((m) => m.peerURLs.includes(self)) ? listed : (await c.cluster.memberAdd({ peerURLs: [self] })).members;
      });
      const initialCluster: Record<string, string> = {};
      for (const m of members) initialCluster[m.peerURLs.includes(self) ? inputs.spec.name : m.name] = m.peerURLs[0];
      return { state: "existing", initialCluster };
    } catch (e) {
      // "unhealthy cluster": a member added just before is still catching up; give it time.
      if (attempt >= 40 || !/unhealthy cluster/.test((e as Error).message)) throw e;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/** Takes this member out of the cluster's membership, through another member, before it stops. */
async function leaveCluster(inputs: MemberInputs): Promise<void> {
  const via = await memberWithLeader(inputs, true);
  if (!via) return; // the last member, or the others are gone too: nothing to leave
  const self = peerUrl(inputs.spec.address, inputs.spec.peerPort);
  await withEtcd(memberConnection(inputs, via), async (c) => {
    const me = (await c.cluster.memberList({ linearizable: true })).members.find((m) => m.peerURLs.includes(self));
    if (me) await c.cluster.memberRemove({ ID: me.ID });
  });
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
      ...memberProblems(news.spec ?? {}).map((reason) => ({ property: "spec", reason: `spec.${reason}` })),
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
    const drifted = !olds.running || olds.configSha256 !== sha256(runtimeConfig(memberConfig(news.spec)));
    return { changes: inputsChanged || drifted || replaces.length > 0, replaces, deleteBeforeReplace: true };
  },

  async create(inputs: MemberInputs) {
    // A member created beside a running cluster (the cluster grows) joins it; otherwise the
    // members bootstrap a new cluster together.
    const via = await memberWithLeader(inputs, true);
    const outs = await install(inputs, true, via ? await joinCluster(inputs, via) : newClusterBootstrap(inputs.spec));
    // A joined member must be in step before the next change: etcd refuses to add another
    // member while one it added is not yet connected.
    if (via) await waitHealthy(inputs);
    return { id: `${inputs.spec.name}@${inputs.connection.host}`, outs };
  },

  async read(id: string, props: MemberOutputs) {
    const f = memberFiles(props.spec.dir);
    const state = await withSsh(connectionOf(props.connection, props.privateKeys), async (s) => ({
      running: (await s.run(isRunningCommand(memberService(props.spec), props.supervisor))).trim() === "running",
      config: (await s.exec(shellWords(["cat", f.config]))).stdout,
    }));
    return { id, props: { ...props, running: state.running, configSha256: sha256(runtimeConfig(state.config)) } };
  },

  async update(_id: string, olds: MemberOutputs, news: MemberInputs) {
    // Membership lives in etcd's log: a change of peers alone needs no restart of this member.
    const restart =
      !olds.running ||
      olds.configSha256 !== sha256(runtimeConfig(memberConfig(news.spec))) ||
      (["connection", "privateKeys", "caPem", "certPem", "keyPem"] as const).some((k) => JSON.stringify(olds[k]) !== JSON.stringify(news[k]));
    if (!restart) return { outs: { ...olds, ...news } };
    // Rolling: when the cluster had quorum before this member restarts, wait until the member is
    // back with a leader before the next one goes. A cluster that was down (every member
    // stopped) has no quorum to wait for until the others restart too.
    const hadQuorum = (await memberWithLeader(news)) !== undefined;
    // Data is kept: an update restarts the member with its new config and certificates.
    const outs = await install(news, false);
    if (hadQuorum) await waitHealthy(news);
    return { outs };
  },

  async delete(_id: string, props: MemberOutputs) {
    await leaveCluster(props);
    await withSsh(connectionOf(props.connection, props.privateKeys), async (s) => {
      const service = memberService(props.spec);
      await s.run(stopCommand(service, props.supervisor));
      await s.run(uninstallCommand(service, props.supervisor));
      await s.run(shellWords(["rm", "-rf", props.spec.dir]));
    });
  },
};

/** One etcd member on a host over SSH: config, certificates and a supervised daemon; refresh shows a stopped member or an edited config. */
export class EtcdMember extends pulumi.dynamic.Resource {
  declare public readonly clientUrl: pulumi.Output<string>;
  declare public readonly etcdVersion: pulumi.Output<string>;
  declare public readonly supervisor: pulumi.Output<string>;
  declare public readonly running: pulumi.Output<boolean>;

  constructor(name: string, args: EtcdMemberArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      lightProvider(etcdMemberProvider, __filename, "etcdMemberProvider"),
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
