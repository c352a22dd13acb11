// The rolling-update gate of a network's agents: at most `maxUnavailable` NodeAgent updates of
// one network restart their agent at the same time, while first creates run in parallel (a
// 200-host first `up` is not 200 agents in a row). The engine runs every dynamic resource of a
// `pulumi up` in one provider process but deserializes each resource's provider separately, so
// the gate lives on globalThis (as the router channels do), keyed by the network's prefix.

/** The globalThis key; bumped when the shape changes (old and new provider code may share a process). */
const REGISTRY = "__bpfnetAgentRollout_v1";

export const DEFAULT_MAX_UNAVAILABLE = 1;
export const MAX_UNAVAILABLE_LIMIT = 1000;

interface Gate {
  held: number;
  waiting: (() => void)[];
  /** The most agents of this network that restarted at once (tests, the scale bench). */
  peak: number;
}

function gates(): Map<string, Gate> {
  const g = globalThis as unknown as Record<string, Map<string, Gate> | undefined>;
  return (g[REGISTRY] ??= new Map());
}

/** Problems with a maxUnavailable value, naming `field` (undefined: the default applies). */
export function maxUnavailableProblem(field: string, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value === "number" && Number.isInteger(value) && value >= 1 && value <= MAX_UNAVAILABLE_LIMIT) return undefined;
  return `${field} must be an integer from 1 to ${MAX_UNAVAILABLE_LIMIT} (agents restarted at once during an update), got ${JSON.stringify(value)}`;
}

/** Runs `work` once fewer than `limit` updates of `network` hold the gate; waiters go in arrival order. */
export async function rolling<T>(network: string, limit: number, work: () => Promise<T>): Promise<T> {
  const all = gates();
  let gate = all.get(network);
  if (!gate) all.set(network, (gate = { held: 0, waiting: [], peak: 0 }));
  const g = gate;
  // A released slot is handed to the first waiter directly, so no newcomer slips in between.
  if (g.held < limit) g.held++;
  else await new Promise<void>((resolve) => g.waiting.push(resolve));
  g.peak = Math.max(g.peak, g.held);
  try {
    return await work();
  } finally {
    const next = g.waiting.shift();
    if (next) next();
    else g.held--;
  }
}

/** The most updates of `network` that ran at once in this process (undefined: none ran). */
export function rolloutPeak(network: string): number | undefined {
  return gates().get(network)?.peak;
}
