// EtcdHealth: waits until an etcd cluster is whole (every expected member listed and answering,
// one leader elected) and records what it saw. Refresh re-checks: an unhealthy cluster shows as drift.
import * as pulumi from "@pulumi/pulumi";
import { EtcdConnection, withEtcd } from "./etcdClient";
import { lightProvider } from "../common/providerStub";

/** EtcdHealth's arguments: the cluster's connection and the members it must have. */
export interface EtcdHealthArgs {
  connection: pulumi.Input<EtcdConnection>;
  expectedMembers: pulumi.Input<pulumi.Input<string>[]>;
  timeoutMs?: pulumi.Input<number>;
}

interface HealthInputs {
  connection: EtcdConnection;
  expectedMembers: string[];
  timeoutMs?: number;
}

interface HealthOutputs extends HealthInputs {
  healthy: boolean;
  leader: string;
  clusterVersion: string;
  detail: string;
}

interface Observation {
  healthy: boolean;
  leader: string;
  clusterVersion: string;
  detail: string;
}

async function observe(inputs: HealthInputs): Promise<Observation> {
  try {
    return await withEtcd(
      inputs.connection,
      async (client) => {
        const members = (await client.cluster.memberList({})).members;
        // Every expected member listed (a member on its way out may still be): growth waits here.
        const names = members.map((m) => m.name);
        const missing = inputs.expectedMembers.filter((n) => !names.includes(n));
        if (missing.length) {
          return { healthy: false, leader: "", clusterVersion: "", detail: `members ${names.join(",") || "(none)"} lack ${missing.join(",")}` };
        }
        // Ask every member itself, not just whichever endpoint the client picked.
        const leaders = new Set<string>();
        let version = "";
        for (const m of members) {
          if (m.clientURLs.length === 0) return { healthy: false, leader: "", clusterVersion: "", detail: `member ${m.name} has not started` };
          const status = await withEtcd({ ...inputs.connection, endpoints: [m.clientURLs[0]] }, (c) => c.maintenance.status(), { callTimeoutMs: 2000 });
          leaders.add(status.leader);
          version = status.version;
        }
        const leaderId = [...leaders][0];
        const leader = members.find((m) => m.ID === leaderId)?.name ?? "";
        const healthy = leaders.size === 1 && leaderId !== "0" && leader !== "";
        return { healthy, leader, clusterVersion: version, detail: healthy ? "ok" : `leaders seen: ${[...leaders].join(",")}` };
      },
      { callTimeoutMs: 3000 },
    );
  } catch (e) {
    return { healthy: false, leader: "", clusterVersion: "", detail: (e as Error).message };
  }
}

async function waitHealthy(inputs: HealthInputs): Promise<Observation> {
  const timeout = inputs.timeoutMs ?? 90_000;
  const deadline = Date.now() + timeout;
  let seen = await observe(inputs);
  while (!seen.healthy && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 500));
    seen = await observe(inputs);
  }
  if (!seen.healthy) throw new Error(`etcd cluster at ${inputs.connection.endpoints.join(", ")} not healthy after ${timeout} ms: ${seen.detail}`);
  return seen;
}

export const etcdHealthProvider: pulumi.dynamic.ResourceProvider = {
  async diff(_id: string, olds: HealthOutputs, news: HealthInputs) {
    const changed =
      !olds.healthy ||
      JSON.stringify(olds.connection.endpoints) !== JSON.stringify(news.connection.endpoints) ||
      JSON.stringify(olds.expectedMembers) !== JSON.stringify(news.expectedMembers) ||
      olds.connection.caPem !== news.connection.caPem;
    return { changes: changed };
  },
  async create(inputs: HealthInputs) {
    return { id: "etcd-health", outs: { ...inputs, ...(await waitHealthy(inputs)) } };
  },
  async update(_id: string, _olds: HealthOutputs, news: HealthInputs) {
    return { outs: { ...news, ...(await waitHealthy(news)) } };
  },
  async read(id: string, props: HealthOutputs) {
    return { id, props: { ...props, ...(await observe(props)) } };
  },
  async delete() {
    // Observes only.
  },
};

/** Waits until an etcd cluster has all its members and a leader; refresh shows a cluster that lost them. */
export class EtcdHealth extends pulumi.dynamic.Resource {
  declare public readonly healthy: pulumi.Output<boolean>;
  declare public readonly leader: pulumi.Output<string>;
  declare public readonly clusterVersion: pulumi.Output<string>;

  constructor(name: string, args: EtcdHealthArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      lightProvider(etcdHealthProvider, __filename, "etcdHealthProvider"),
      name,
      { ...args, connection: pulumi.secret(args.connection), healthy: undefined, leader: undefined, clusterVersion: undefined, detail: undefined },
      { ...opts, additionalSecretOutputs: ["connection"] },
      "bpfnet",
      "EtcdHealth",
    );
  }
}
