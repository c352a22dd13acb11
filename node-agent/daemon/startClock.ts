// Where the agent's start goes: ms per step, from the process's own start (module loading and
// the config are "boot"). Logged with "agent ready" and measured by bench/agentStart.ts.
import { performance } from "perf_hooks";

const round1 = (ms: number): number => Math.round(ms * 10) / 10;

export class StartClock {
  private last = performance.now();
  /** Step name → ms it took; "boot" is process start → the agent's start() (node, modules, config). */
  readonly steps: Record<string, number> = { boot: round1(this.last) };

  /** Closes the step that ran since the previous mark. */
  mark(step: string): void {
    const t = performance.now();
    this.steps[step] = round1(t - this.last);
    this.last = t;
  }

  /** ms since the process started. */
  get total(): number {
    return round1(performance.now());
  }
}
