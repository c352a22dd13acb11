// The cast of the policy lab tests that pit an intruder against a policy: web (app=web) and an
// unlabelled intruder on h1, api (app=api) on h2, in a 2-host vxlan lab with real agents, and a
// NetworkPolicy that lets web (only) reach api on the given ports. down() undoes all of it.
import type { PortRule } from "../../../provider/policy/policySpec";
import { addContainerNetns, removeContainers, waitFor } from "../../agent/support/agents";
import { AgentLab, startAgentLab } from "../../reliability/support/agentLab";
import { applyPolicy, WrittenPolicy } from "./policies";

export type Role = "web" | "intruder" | "api";

export interface WebApiLab extends AgentLab {
  /** Container namespace of each role (tpolc<octet>w/i/a). */
  netns: Record<Role, string>;
  /** Endpoint address of each role. */
  ip: Record<Role, string>;
  policy: WrittenPolicy;
}

export async function startWebApiLab(lab: string, octet: number, apiPorts: PortRule[]): Promise<WebApiLab> {
  const netns: Record<Role, string> = { web: `tpolc${octet}w`, intruder: `tpolc${octet}i`, api: `tpolc${octet}a` };
  const env = await startAgentLab({ lab, octet, hosts: 2, clusterCidr: `10.${octet}.128.0/17`, leaseTtlSeconds: 10 });
  let policy: WrittenPolicy | undefined;
  // (env.down() removes only the containers startAgentLab made itself.)
  const down = (extra: (() => unknown)[] = []) => env.down([...extra, () => policy?.remove(), () => removeContainers(Object.values(netns))]);
  try {
    const ip = {} as Record<Role, string>;
    for (const [role, host, labels] of [["web", 0, { app: "web" }], ["intruder", 0, {}], ["api", 1, { app: "api" }]] as const) {
      addContainerNetns(netns[role]);
      ip[role] = (await env.agents[host].client.addEndpoint({ id: role, netns: `/run/netns/${netns[role]}`, labels })).endpoint.ip;
    }
    policy = await applyPolicy(env.etcd.connection, env.prefix, "api", { endpointSelector: { app: "api" }, ingress: [{ fromEndpoints: [{ app: "web" }], toPorts: apiPorts }] });
    await waitFor("api enforcing", async () => (await env.agents[1].client.getEndpoint("api"))?.ingress === "enforced", 30_000);
    return { ...env, netns, ip, policy, down };
  } catch (e) {
    await down().catch(() => undefined);
    throw e;
  }
}
