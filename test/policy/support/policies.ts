// NetworkPolicies written the way `pulumi up` writes them (the provider's check, then create),
// for lab tests and benchmarks that run real agents without a Pulumi program.
import type { EtcdConnection } from "../../../provider/etcd/etcdClient";
import { networkPolicyProvider as provider, NetworkPolicyInputs, NetworkPolicyOutputs } from "../../../provider/policy/networkPolicy";

export interface WrittenPolicy {
  id: string;
  outs: NetworkPolicyOutputs;
  /** Deletes it as `pulumi destroy` would. */
  remove(): Promise<void>;
}

/** Checks and creates the policy `name` under `prefix`; throws with the check's failures. */
export async function applyPolicy(connection: EtcdConnection, prefix: string, name: string, spec: Omit<NetworkPolicyInputs, "connection" | "prefix" | "policyName">): Promise<WrittenPolicy> {
  const checked = await provider.check!({} as NetworkPolicyInputs, { connection, prefix, policyName: name, ...spec } as NetworkPolicyInputs);
  if (!checked.inputs || checked.failures?.length) throw new Error(`policy ${name} refused: ${JSON.stringify(checked.failures)}`);
  const made = await provider.create!(checked.inputs);
  return { id: made.id, outs: made.outs!, remove: async () => void (await provider.delete!(made.id, made.outs!)) };
}
