// Removing a host from the root project's Network: one `pulumi up`, recording the order in which
// the engine finished its deletes (scenario 7, docs/reliability.md).
import { Stack, UpResult } from "@pulumi/pulumi/automation";

/** The root project's Network is "net": a host's resources are net-agent-<h>, net-route-<h>, net-<h> (the allocation), net-access-<h>. */
export const removalOrder = (host: string) => ["agent", "route", "", "access"].map((r) => (r ? `net-${r}-${host}` : `net-${host}`));

export async function upRecordingDeletes(stack: Stack): Promise<{ up: UpResult; deleted: string[]; ms: number }> {
  const deleted: string[] = [];
  const t0 = Date.now();
  const up = await stack.up({
    onEvent: (e) => {
      const m = e.resOutputsEvent?.metadata;
      if (m?.op === "delete") deleted.push(m.urn.split("::").pop()!);
    },
  });
  return { up, deleted, ms: Date.now() - t0 };
}

/** True when every name was deleted, in the given order. */
export function deletedInOrder(deleted: string[], names: string[]): boolean {
  const at = names.map((n) => deleted.indexOf(n));
  return at.every((i) => i >= 0) && at.every((i, k) => k === 0 || i > at[k - 1]);
}
