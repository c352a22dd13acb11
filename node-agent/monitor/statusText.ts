// The node monitor's state as `bpfnet status` prints it.
import type { MonitorStatus } from "../api/types";

/** The `monitor` line of `bpfnet status` (and `bpfnet monitor trace`'s answer). */
export function formatMonitorStatus(m: MonitorStatus): string {
  const r = m.received;
  const state = m.state === "off" ? "OFF (monitorEvents: false)" : m.state === "idle" ? "idle (no listener: the datapath writes no event)" : `${m.listeners} listener${m.listeners === 1 ? "" : "s"}`;
  const traces = [
    m.tracedEndpoints.length ? `endpoints ${m.tracedEndpoints.join(", ")}` : "",
    m.listenerTraced.length ? `while listened to: ${m.listenerTraced.join(", ")}` : "",
    m.traceSampleEvery ? `1 in ${m.traceSampleEvery} sampled` : "",
  ].filter(Boolean);
  return `monitor   ${state}; traces ${traces.length ? traces.join("; ") : "off"}; read drop ${r.drop}, verdict ${r.verdict}, trace ${r.trace}, lost ${m.lost}` +
    (m.listenerDropped ? `, ${m.listenerDropped} not sent to backed-up listeners` : "");
}
