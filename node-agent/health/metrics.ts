// Health in the agent's Prometheus registry (node-agent/metrics): per peer and path, whether the
// last probe answered and its round trip, and how many peers are unreachable (Cilium's
// node_health_connectivity_status/latency and unreachable_nodes). Read at each scrape.
import { defineGauge } from "../metrics/registry";
import type { PeerHealth } from "./view";

type PathRow = { labels: { peer: string; path: "host" | "endpoint" }; value: number };

/** Rows of the status and latency gauges (latency only for paths that answered). */
export function healthGaugeRows(view: readonly PeerHealth[]): { status: PathRow[]; latency: PathRow[]; unreachable: number } {
  const status: PathRow[] = [];
  const latency: PathRow[] = [];
  for (const p of view) {
    for (const path of ["host", "endpoint"] as const) {
      status.push({ labels: { peer: p.peer, path }, value: p[path].ok ? 1 : 0 });
      const ms = p[path].latencyMs;
      if (p[path].ok && ms !== undefined) latency.push({ labels: { peer: p.peer, path }, value: ms / 1000 });
    }
  }
  return { status, latency, unreachable: view.filter((p) => !p.reachable).length };
}

export function defineHealthMetrics(view: () => readonly PeerHealth[]): void {
  const set = (g: { reset(): void; set(labels: PathRow["labels"], v: number): void }, rows: PathRow[]) => {
    g.reset();
    for (const r of rows) g.set(r.labels, r.value);
  };
  defineGauge({ name: "bpfnet_health_peer_reachable", help: "1 when the last health probe of the peer's path answered (host: ICMP to its underlay address; endpoint: ICMP and HTTP to its health endpoint).", labelNames: ["peer", "path"] }, (g) =>
    set(g, healthGaugeRows(view()).status),
  );
  defineGauge({ name: "bpfnet_health_peer_latency_seconds", help: "Round trip of the last successful health probe of the peer's path.", labelNames: ["peer", "path"] }, (g) =>
    set(g, healthGaugeRows(view()).latency),
  );
  defineGauge({ name: "bpfnet_health_unreachable_peers", help: "Peers whose host or health endpoint path is down, as this host's probes see them." }, (g) => void g.set(healthGaugeRows(view()).unreachable));
}
