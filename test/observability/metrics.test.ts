/**
 * The agents' Prometheus metrics on a 2-host vxlan lab (lab tmon2): each agent serves GET
 * /metrics on its configured address only (its control address, as Network's default; not
 * every interface); drops caused on purpose (a
 * container pinging with a spoofed source) are counted by reason and direction, exactly; and a
 * real Prometheus (Debian's package, a lab-scoped process on a lab address) scrapes every agent
 * and answers a PromQL query for those drop counters.
 */
import * as http from "http";
import type { EndpointView } from "../../node-agent/api/types";
import { addContainerNetns, inNetns, LabAgent, removeContainers, waitFor } from "../agent/support/agents";
import { AgentLab, startAgentLab } from "./support/agentLab";
import { LabPrometheus, startLabPrometheus } from "./support/prometheus";

const OCTET = 111;
const PORT = 9962;
const CONTAINERS = ["tmoncm"];
const SPOOFED = "10.241.250.250";
const PINGS = 5;
let L: AgentLab | undefined;
let prom: LabPrometheus | undefined;
let h1: LabAgent;
let web: EndpointView;

beforeAll(async () => {
  L = await startAgentLab({ name: "tmon2", octet: OCTET, topology: "vxlan", hosts: 2, clusterCidr: "10.241.0.0/16", healthIntervalSeconds: 30, metricsPort: PORT });
  h1 = L.agents[0];
  for (const c of CONTAINERS) addContainerNetns(c);
  web = (JSON.parse(h1.cli("endpoint", "add", "--netns", "/run/netns/tmoncm", "--id", "web", "--labels", "app=web", "--json")) as { endpoint: EndpointView }).endpoint;
  expect(inNetns("tmoncm", ["ip", "addr", "add", `${SPOOFED}/32`, "dev", "eth0"]).status).toBe(0);
  prom = await startLabPrometheus(`10.${OCTET}.0.254`, Object.fromEntries(L.agents.map((a) => [a.host.name, `${a.host.ssh.host}:${PORT}`])));
}, 240_000);

afterAll(async () => {
  await prom?.stop();
  removeContainers(CONTAINERS);
  await L?.down();
}, 90_000);

function scrape(address: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(`http://${address}/metrics`, { timeout: 10_000 }, (res) => {
        let text = "";
        res.on("data", (c: Buffer) => (text += c.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
      })
      .on("error", reject);
  });
}

/** A sample's value from the text format, by name and exact label set ("" for none). */
function sample(text: string, name: string, labels: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ""} `));
  return line === undefined ? undefined : Number(line.split(" ").pop());
}

test("each agent listens on its configured address only, and serves the bpfnet_ metrics in Prometheus' format", async () => {
  for (const a of L!.agents) {
    const listening = inNetns(a.netns, ["ss", "-Hltn", `sport = :${PORT}`]).stdout.trim().split("\n").filter(Boolean);
    expect(listening).toHaveLength(1);
    expect(listening[0]).toContain(`${a.host.ssh.host}:${PORT}`);
    const { status, text } = await scrape(`${a.host.ssh.host}:${PORT}`);
    expect({ status, text: status === 200 ? "" : text }).toEqual({ status: 200, text: "" });
    for (const family of [
      "bpfnet_forward_packets_total counter",
      "bpfnet_drop_packets_total counter",
      "bpfnet_policy_verdicts_total counter",
      "bpfnet_endpoints gauge",
      "bpfnet_identities gauge",
      "bpfnet_etcd_watch_connected gauge",
      "bpfnet_etcd_watch_reconnects_total counter",
      "bpfnet_reconcile_duration_seconds histogram",
      "bpfnet_monitor_events_lost_total counter",
    ]) {
      expect(text).toContain(`# TYPE ${family}`);
    }
    expect(sample(text, "bpfnet_endpoints", "")).toBe(a === h1 ? 2 : 1); // h1: web and the health endpoint; h2: health
    expect(sample(text, "bpfnet_monitor_events_lost_total", "")).toBe(0);
    expect(text).toMatch(/^bpfnet_etcd_watch_connected\{prefix="[^"]+"\} 1$/m);
    expect(text).toMatch(/^bpfnet_reconcile_duration_seconds_count\{target="[^"]+",result="ok"\} [1-9]\d*$/m);
  }
  // Anything but GET /metrics: 404.
  expect((await new Promise<number>((r, j) => http.get(`http://${h1.host.ssh.host}:${PORT}/`, (res) => (res.resume(), r(res.statusCode ?? 0))).on("error", j)))).toBe(404);
}, 60_000);

test("drops caused on purpose are counted exactly by reason and direction, on the agent and through a real Prometheus", async () => {
  const address = `${h1.host.ssh.host}:${PORT}`;
  const before = sample((await scrape(address)).text, "bpfnet_drop_packets_total", 'reason="spoofed-source",direction="ingress"') ?? 0;
  const monitoredBefore = sample((await scrape(address)).text, "bpfnet_monitor_events_total", 'type="drop"') ?? 0;
  const r = inNetns("tmoncm", ["ping", "-c", String(PINGS), "-i", "0.2", "-W", "1", "-I", SPOOFED, "10.241.0.1"], 20_000);
  expect(r.stdout).toContain(`${PINGS} packets transmitted, 0 received`);
  const after = sample((await scrape(address)).text, "bpfnet_drop_packets_total", 'reason="spoofed-source",direction="ingress"');
  expect(after).toBe(before + PINGS);
  // Nobody listens to h1's monitor: the drops are counted, but no event was written or read.
  expect(sample((await scrape(address)).text, "bpfnet_monitor_events_total", 'type="drop"') ?? 0).toBe(monitoredBefore);

  // Prometheus scrapes both agents…
  const up = await waitFor("Prometheus scraping both agents", async () => {
    const s = await prom!.query('up{job="bpfnet-agents"}');
    return s.length === 2 && s.every((x) => x.value === 1) ? s : undefined;
  }, 60_000, 500);
  expect(up!.map((s) => s.metric.host).sort()).toEqual(["h1", "h2"]);
  // …and answers the drop counters, by host and reason.
  const q = 'sum by (host, reason, direction) (bpfnet_drop_packets_total{reason="spoofed-source"})';
  const drops = await waitFor(`PromQL ${q} = ${before + PINGS} for h1`, async () => {
    const s = await prom!.query(q);
    return s.find((x) => x.metric.host === "h1" && x.value === before + PINGS) ? s : undefined;
  }, 60_000, 500);
  expect(drops!.map((s) => [s.metric.host, s.metric.reason, s.metric.direction, s.value])).toEqual([["h1", "spoofed-source", "ingress", before + PINGS]]);
  expect(web.ip).toMatch(/^10\.241\./);
}, 120_000);
