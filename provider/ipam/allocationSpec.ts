// Validation of HostAllocation inputs. Pure; what can only be judged against the stored network
// config (the pool when clusterCidr is not given, whether a CIDR is free) is judged at create.
import { Cidr, containsCidr, formatCidr } from "./cidr";
import { nameProblem } from "../etcd/keys";
import { Failure, checkCidr, checkPool, resolvePrefix } from "../network/networkSpec";
import { isUnknown } from "../common/unknown";

export interface AllocationSpecInputs {
  prefix?: string;
  networkName?: string;
  host?: string;
  clusterCidr?: string;
  hostPrefixLength?: number;
  requestedCidr?: string;
}

const given = (v: unknown) => v !== undefined && v !== null;

export function checkAllocationSpec(raw: AllocationSpecInputs): { inputs: Record<string, unknown>; failures: Failure[] } {
  const failures: Failure[] = [];
  const inputs: Record<string, unknown> = { ...raw };
  const prefix = resolvePrefix(raw, failures);
  if (prefix !== undefined) inputs.prefix = prefix;

  if (!given(raw.host)) failures.push({ property: "host", reason: "host is required (the node's name, used as its key in etcd)" });
  else if (!isUnknown(raw.host)) {
    const p = nameProblem("host", raw.host);
    if (p) failures.push({ property: "host", reason: p });
  }

  let pool: Cidr | undefined;
  if (given(raw.clusterCidr) && !isUnknown(raw.clusterCidr)) pool = checkCidr("clusterCidr", "clusterCidr", raw.clusterCidr, failures);
  if (given(raw.hostPrefixLength)) checkPool(pool, raw.clusterCidr, raw.hostPrefixLength, failures);

  if (given(raw.requestedCidr) && !isUnknown(raw.requestedCidr)) {
    const req = checkCidr("requestedCidr", "requestedCidr", raw.requestedCidr, failures);
    const hp = raw.hostPrefixLength;
    if (req && typeof hp === "number" && req.prefix !== hp) {
      failures.push({ property: "requestedCidr", reason: `requestedCidr ${JSON.stringify(raw.requestedCidr)} must be a /${hp} (the hostPrefixLength), got /${req.prefix}` });
    } else if (req && pool && !containsCidr(pool, req)) {
      failures.push({ property: "requestedCidr", reason: `requestedCidr ${JSON.stringify(raw.requestedCidr)} is outside the pool ${formatCidr(pool)}` });
    }
  }
  return { inputs, failures };
}
