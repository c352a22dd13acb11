// NodeAgent: deploys the node agent to a host over SSH: uploads the bundle (agent JS, native
// addon, BPF objects) with SFTP, unpacks it as a release, writes the agent's config, runs it
// (systemd unit where the host has systemd, else a supervised process) and waits until the
// agent has registered in etcd. A new bundle is a new release; delete tears everything down.
import * as pulumi from "@pulumi/pulumi";
import { EtcdConnection, withEtcd } from "../etcd/etcdClient";
import { detectSupervisor } from "../etcd/etcdMember";
import { nodeKey } from "../etcd/keys";
import { NodeAgentSpec, agentConfig, agentPaths, agentService, agentSpecProblems, nodeVersionProblem } from "./nodeAgentSpec";
import { shellQuote, shellWords } from "../common/shell";
import { requireModes } from "../host/fileModes";
import { SshSession, withSsh } from "../host/ssh";
import { SshConnection, SshEndpoint, connectionOf, sshConnectionProblems } from "../host/sshConnection";
import { SSH_SECRET_OUTPUTS, sshResourceInputs } from "../host/sshInputs";
import { SupervisorKind, isRunningCommand, serviceFiles, startCommand, stopCommand, supervisorScript, systemdUnit } from "../host/supervisor";
import { booleanProblem } from "../common/validate";
import { forgetUnreachableHost } from "./forgetHost";
import { LeftOnHost, leftOnHost, removalCommands } from "./removalRecord";
import { DEFAULT_MAX_UNAVAILABLE, maxUnavailableProblem, rolling } from "./rollout";
import { lightProvider } from "../common/providerStub";

/** NodeAgent's arguments: SSH to the host, the agent's spec (paths, interfaces), etcd, and the bundle to run. */
export interface NodeAgentArgs {
  connection: pulumi.Input<SshConnection>;
  /** Field by field, so preview checks every known field even while another (the prefix) is unknown. */
  spec: pulumi.Input<{ [K in keyof NodeAgentSpec]: pulumi.Input<NodeAgentSpec[K]> }>;
  etcd: pulumi.Input<EtcdConnection>;
  /** Local path of the agent bundle (scripts/build-agent-bundle.js) and its sha256. */
  bundlePath: pulumi.Input<string>;
  bundleSha256: pulumi.Input<string>;
  /** How long to wait for the agent's registration in etcd (default 60 s). */
  readyTimeoutMs?: pulumi.Input<number>;
  /**
   * The host cannot be reached over SSH: this resource stops contacting it (an update only
   * records the mark), and its delete revokes the host's etcd credentials and keys with
   * `adminEtcd` and records what stays on the host, instead of tearing the agent down over SSH.
   */
  unreachable?: pulumi.Input<boolean>;
  /** With `unreachable`: the admin connection the removal is done and recorded with (not the host's own). */
  adminEtcd?: pulumi.Input<EtcdConnection>;
  /**
   * Updates of this network's agents restart at most this many at a time (default 1); first
   * creates are not held back. Every agent of one network should give the same value.
   */
  maxUnavailable?: pulumi.Input<number>;
}

interface AgentInputs {
  connection: SshEndpoint;
  privateKeys: string[];
  spec: NodeAgentSpec;
  etcd: EtcdConnection;
  bundlePath: string;
  bundleSha256: string;
  readyTimeoutMs?: number;
  unreachable?: boolean;
  adminEtcd?: EtcdConnection;
  maxUnavailable?: number;
}

interface AgentOutputs extends AgentInputs {
  supervisor: SupervisorKind;
  nodeVersion: string;
  running: boolean;
  release: string;
  incarnation: string;
  /** Set while marked unreachable: what a removal would leave on the host (and record in etcd). */
  leftOnHost?: LeftOnHost;
}

interface Registration {
  incarnation?: string;
  underlayIp?: string;
}

async function registration(inputs: AgentInputs): Promise<Registration | undefined> {
  const raw = await withEtcd(inputs.etcd, (c) => c.get(nodeKey(inputs.spec.networkPrefix, inputs.spec.hostName)).string(), { callTimeoutMs: 3000 });
  return raw ? (JSON.parse(raw) as Registration) : undefined;
}

/** Waits for a registration from a new incarnation of the agent (a restart must re-register). */
async function waitRegistered(inputs: AgentInputs, previous: string | undefined, s: SshSession, logPath: string): Promise<string> {
  const timeout = inputs.readyTimeoutMs ?? 60_000;
  const deadline = Date.now() + timeout;
  let last = "no registration yet";
  while (Date.now() < deadline) {
    try {
      const reg = await registration(inputs);
      if (reg?.incarnation && reg.incarnation !== previous) return reg.incarnation;
    } catch (e) {
      last = (e as Error).message;
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  const tail = (await s.exec(shellWords(["tail", "-n", 25, logPath]))).stdout;
  throw new Error(`node agent on ${inputs.spec.hostName} did not register in etcd within ${timeout} ms (${last}); its log ends:\n${tail}`);
}

async function deploy(inputs: AgentInputs): Promise<AgentOutputs> {
  const { spec, bundleSha256 } = inputs;
  const p = agentPaths(spec, bundleSha256);
  const service = agentService(spec, bundleSha256);
  const fs = require("fs") as typeof import("fs");
  return withSsh(connectionOf(inputs.connection, inputs.privateKeys), async (s) => {
    const node = await s.exec(shellWords([spec.nodePath, "--version"]));
    const problem = nodeVersionProblem(spec.hostName, spec.nodePath, node);
    if (problem) throw new Error(problem);
    const supervisor = await detectSupervisor(s);

    const complete = `${p.release}/.complete`;
    if ((await s.exec(shellWords(["test", "-f", complete]))).code !== 0) {
      await s.run(shellWords(["mkdir", "-p", `${spec.installDir}/bundles`, p.release]));
      await s.writeFile(p.bundle, fs.readFileSync(inputs.bundlePath), 0o644);
      const sum = (await s.run(shellWords(["sha256sum", p.bundle]))).split(" ")[0];
      if (sum !== bundleSha256) throw new Error(`agent bundle on ${spec.hostName} has sha256 ${sum}, expected ${bundleSha256} (upload corrupted?)`);
      await s.run(`${shellWords(["tar", "-xzf", p.bundle, "-C", p.release])} && ${shellWords(["touch", complete])} && ${shellWords(["rm", "-f", p.bundle])}`);
    }
    await s.run(`${shellWords(["mkdir", "-p", p.dir])} && ${shellWords(["chmod", "700", p.dir])}`);
    await s.writeFile(p.config, agentConfig(spec, inputs.etcd, bundleSha256), 0o600);
    // agent.json holds the etcd client key.
    await requireModes(s, spec.hostName, [p.config], "600");

    const before = (await registration(inputs).catch(() => undefined))?.incarnation;
    await s.run(stopCommand(service, supervisor));
    await s.run(shellWords(["ln", "-sfn", p.release, p.current]));
    await s.writeFile(serviceFiles(service).supervisor, supervisorScript(service), 0o755);
    if (supervisor === "systemd") await s.writeFile(serviceFiles(service).unit, systemdUnit(service), 0o644);
    await s.run(startCommand(service, supervisor));
    const incarnation = await waitRegistered(inputs, before, s, serviceFiles(service).log);
    // Older releases are no longer referenced.
    await s.run(`for r in ${shellQuote(spec.installDir)}/releases/*; do [ "$r" = ${shellQuote(p.release)} ] || rm -rf "$r"; done`);
    return { ...inputs, supervisor, nodeVersion: node.stdout.trim(), running: true, release: p.release, incarnation };
  });
}

export const nodeAgentProvider: pulumi.dynamic.ResourceProvider = {
  async check(_olds: AgentInputs, news: AgentInputs) {
    const failures = [
      ...sshConnectionProblems(news.connection as Partial<SshConnection>).map((reason) => ({ property: "connection", reason })),
      ...agentSpecProblems(news.spec, news.bundleSha256).map((reason) => ({ property: reason.startsWith("bundleSha256") ? "bundleSha256" : "spec", reason })),
    ];
    const fs = require("fs") as typeof import("fs");
    if (typeof news.bundlePath === "string" && !news.bundlePath.startsWith("04da6b54") && !fs.existsSync(news.bundlePath)) {
      failures.push({ property: "bundlePath", reason: `agent bundle ${news.bundlePath} does not exist: run scripts/setup (it builds build/agent-bundle.tgz)` });
    }
    const maxUnavailable = maxUnavailableProblem("maxUnavailable", news.maxUnavailable);
    if (maxUnavailable) failures.push({ property: "maxUnavailable", reason: maxUnavailable });
    const unreachable = news.unreachable === undefined ? undefined : booleanProblem("unreachable", news.unreachable);
    if (unreachable) failures.push({ property: "unreachable", reason: unreachable });
    if (news.unreachable === true && news.adminEtcd === undefined) {
      failures.push({ property: "adminEtcd", reason: "unreachable: true needs adminEtcd, the admin connection the host's removal is done and recorded with" });
    }
    return { inputs: news, failures };
  },

  async diff(_id: string, olds: AgentOutputs, news: AgentInputs) {
    // Marked unreachable: only the mark is recorded (no SSH, no redeploy, never a replace, whose
    // delete would need the host); the state keeps describing what is deployed there.
    if (news.unreachable === true) return { changes: olds.unreachable !== true || JSON.stringify(olds.adminEtcd) !== JSON.stringify(news.adminEtcd), replaces: [] };
    const replaces = olds.spec.hostName !== news.spec.hostName || olds.connection.host !== news.connection.host ? ["spec"] : [];
    const changed = (["connection", "privateKeys", "spec", "etcd", "bundleSha256"] as const).some((k) => JSON.stringify(olds[k]) !== JSON.stringify(news[k]));
    // A stopped agent or a release switched by hand (found by refresh) is repaired by an update.
    const drifted = !olds.running || olds.release !== agentPaths(news.spec, news.bundleSha256).release || olds.unreachable === true; // unmarked: redeploy
    return { changes: changed || drifted || replaces.length > 0, replaces, deleteBeforeReplace: true };
  },

  async create(inputs: AgentInputs) {
    return { id: `agent@${inputs.spec.hostName}`, outs: await deploy(inputs) };
  },

  async update(_id: string, olds: AgentOutputs, news: AgentInputs) {
    if (news.unreachable === true) {
      return { outs: { ...olds, unreachable: true, adminEtcd: news.adminEtcd, leftOnHost: leftOnHost(olds.spec, olds.bundleSha256, olds.supervisor) } };
    }
    // No leftOnHost key at all: outputs replace the old ones, and an undefined value fails the
    // provider's protobuf encoding ("Unexpected struct type.").
    // Rolled: at most maxUnavailable of the network's agents restart at once (creates are not held).
    return { outs: await rolling(news.spec.networkPrefix, news.maxUnavailable ?? DEFAULT_MAX_UNAVAILABLE, () => deploy(news)) };
  },

  async read(id: string, props: AgentOutputs) {
    if (props.unreachable === true) return { id, props };
    const service = agentService(props.spec, props.bundleSha256);
    const seen = await withSsh(connectionOf(props.connection, props.privateKeys), async (s) => ({
      running: (await s.run(isRunningCommand(service, props.supervisor))).trim() === "running",
      release: (await s.exec(shellWords(["readlink", agentPaths(props.spec, props.bundleSha256).current]))).stdout.trim(),
    }));
    return { id, props: { ...props, running: seen.running, release: seen.release } };
  },

  async delete(_id: string, props: AgentOutputs) {
    if (props.unreachable === true) {
      await forgetUnreachableHost(props.adminEtcd!, props.spec, leftOnHost(props.spec, props.bundleSha256, props.supervisor));
      return;
    }
    const p = agentPaths(props.spec, props.bundleSha256);
    const remove = removalCommands(props.spec, props.bundleSha256, props.supervisor);
    await withSsh(connectionOf(props.connection, props.privateKeys), async (s) => {
      await s.run(remove.stop);
      if ((await s.exec(shellWords(["test", "-x", p.cli]))).code === 0) await s.run(remove.teardown);
      await s.run(remove.uninstall);
      await s.run(remove.remove);
    });
    // Its registration is lease-bound; remove it now rather than when the lease expires.
    await withEtcd(props.etcd, (c) => c.delete().key(nodeKey(props.spec.networkPrefix, props.spec.hostName)).exec()).catch(() => undefined);
  },
};

/** The node agent on one host: bundle copied over SFTP into a release, config written, service started, registration awaited; a new bundle rolls it. */
export class NodeAgent extends pulumi.dynamic.Resource {
  declare public readonly nodeVersion: pulumi.Output<string>;
  declare public readonly release: pulumi.Output<string>;
  declare public readonly running: pulumi.Output<boolean>;
  declare public readonly incarnation: pulumi.Output<string>;
  /** While marked unreachable: the agent's service, paths, pins and devices a removal leaves on the host. */
  declare public readonly leftOnHost: pulumi.Output<LeftOnHost | undefined>;

  constructor(name: string, args: NodeAgentArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      lightProvider(nodeAgentProvider, __filename, "nodeAgentProvider"),
      name,
      {
        ...sshResourceInputs(args.connection),
        spec: args.spec,
        etcd: pulumi.secret(args.etcd),
        bundlePath: args.bundlePath,
        bundleSha256: args.bundleSha256,
        readyTimeoutMs: args.readyTimeoutMs,
        unreachable: args.unreachable,
        adminEtcd: args.adminEtcd === undefined ? undefined : pulumi.secret(args.adminEtcd),
        maxUnavailable: args.maxUnavailable,
        leftOnHost: undefined,
        supervisor: undefined,
        nodeVersion: undefined,
        running: undefined,
        release: undefined,
        incarnation: undefined,
      },
      { ...opts, additionalSecretOutputs: [...SSH_SECRET_OUTPUTS, "etcd", "adminEtcd"] },
      "bpfnet",
      "NodeAgent",
    );
  }
}
