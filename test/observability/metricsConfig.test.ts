/**
 * Metrics without a lab: the metricsAddress field where a user sets it (agent config, NodeAgent
 * spec, Network hosts[i]) validated with hostile input, refused naming the field and the value;
 * the default address (control address, port 9962, never 0.0.0.0); the registry's naming rules;
 * and the aggregation of the datapath's counters into metric samples.
 */
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { DropReason, Verdict } from "../../bpf";
import type { NetworkArgs, NetworkHostArgs } from "../../components/network";
import { networkArgsProblems } from "../../components/networkValidation";
import type { MetricsEntry, VerdictEntry } from "../../bpf/maps";
import { parseAgentConfig } from "../../node-agent/config";
import { dropRows, endpointIdentities, forwardRows, verdictRows } from "../../node-agent/metrics/agentMetrics";
import { defineCounter, defineGauge, registry, setCounter } from "../../node-agent/metrics/registry";
import { agentConfig, agentSpecProblems, DEFAULT_METRICS_PORT } from "../../provider/agent/nodeAgentSpec";
import { BUNDLE_SHA256, MINIMAL_NODE_AGENT_SPEC } from "../support/nodeAgentSpec";
import { listenAddressProblem, splitListenAddress } from "../../provider/common/validate";
import { MINIMAL_AGENT_CONFIG } from "../agent/support/agentConfig";

const HOSTILE = ["10.0.0.1:99 ", " 10.0.0.1:99", "10.0.0.1;id:99", "$(id):99", "`id`:99", "10.0.0.1:99\n", "a\nb:99", "..:99", "'10.0.0.1':99", '"h":99', "10.0.0.1:9;9", "10.0.0.1:$(id)"];
const WRONG = ["10.0.0.1", "10.0.0.1:0", "10.0.0.1:65536", "10.0.0.1:080", "10.0.0.256:80", ":80", "10.0.0.1:", 9962, null, {}];

describe("listen addresses", () => {
  test("HOST:PORT with an IPv4 address or a DNS name; 0.0.0.0 only when written out", () => {
    for (const ok of ["10.0.0.1:9962", "127.0.0.1:1", "metrics.example.com:65535", "0.0.0.0:9962"]) expect(listenAddressProblem("f", ok)).toBeUndefined();
    expect(splitListenAddress("10.0.0.1:9962")).toEqual({ host: "10.0.0.1", port: 9962 });
  });

  test.each([...HOSTILE, ...WRONG])("%j is refused naming the field and the value", (bad) => {
    expect(listenAddressProblem("hosts[0] (\"h1\").metricsAddress", bad)).toBe(
      `hosts[0] ("h1").metricsAddress must be "HOST:PORT" (an IPv4 address or a DNS name, and a port from 1 to 65535), got ${JSON.stringify(bad)}`,
    );
  });
});

const AGENT = MINIMAL_AGENT_CONFIG;

test("the agent config: metricsAddress optional (no server when absent), hostile values refused", () => {
  expect(parseAgentConfig(AGENT).metricsAddress).toBeUndefined();
  expect(parseAgentConfig({ ...AGENT, metricsAddress: "10.0.0.1:9962" }).metricsAddress).toBe("10.0.0.1:9962");
  for (const bad of HOSTILE) expect(() => parseAgentConfig({ ...AGENT, metricsAddress: bad })).toThrow(`metricsAddress must be "HOST:PORT" (an IPv4 address or a DNS name, and a port from 1 to 65535), got ${JSON.stringify(bad)}`);
});

test("the NodeAgent spec: written to the agent's config when set, checked at preview naming spec.metricsAddress", () => {
  const spec = MINIMAL_NODE_AGENT_SPEC;
  const sha = BUNDLE_SHA256;
  expect(JSON.parse(agentConfig(spec, AGENT.etcd, sha))).not.toHaveProperty("metricsAddress");
  expect(JSON.parse(agentConfig({ ...spec, metricsAddress: `10.0.0.1:${DEFAULT_METRICS_PORT}` }, AGENT.etcd, sha)).metricsAddress).toBe("10.0.0.1:9962");
  expect(agentSpecProblems({ ...spec, metricsAddress: "10.0.0.1:9962" }, sha)).toEqual([]);
  for (const bad of HOSTILE) expect(agentSpecProblems({ ...spec, metricsAddress: bad }, sha)).toEqual([expect.stringContaining(`spec.metricsAddress must be "HOST:PORT"`)]);
});

test("Network: hosts[i].metricsAddress checked at construction, naming the host and the value", () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "tmon-key-"));
  try {
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "tmon", "-f", path.join(tmp, "id")]);
    const key = fs.readFileSync(path.join(tmp, "id"), "utf8");
    const host = (extra: Partial<NetworkHostArgs>): NetworkHostArgs => ({
      name: "h1",
      underlayIp: "10.0.1.1",
      connection: { host: "10.0.0.1", user: "root", privateKey: key, hostKeyFingerprint: `SHA256:${"A".repeat(43)}` },
      ...extra,
    });
    const args = (h: NetworkHostArgs): NetworkArgs => ({ hosts: [h], mode: "vxlan", clusterCidr: "10.244.0.0/16", etcd: { members: [{ name: "h1", connection: h.connection, address: "10.0.0.1" }] } });
    expect(networkArgsProblems("prod", args(host({})))).toEqual([]);
    expect(networkArgsProblems("prod", args(host({ metricsAddress: "10.0.0.1:9100" })))).toEqual([]);
    for (const bad of HOSTILE) {
      expect(networkArgsProblems("prod", args(host({ metricsAddress: bad })))).toEqual([expect.stringContaining(`hosts[0] ("h1").metricsAddress must be "HOST:PORT" (an IPv4 address or a DNS name, and a port from 1 to 65535), got ${JSON.stringify(bad)}`)]);
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

describe("the registry", () => {
  test("refuses names without the bpfnet_ prefix or against Prometheus conventions", () => {
    expect(() => defineCounter({ name: "drops_total", help: "x" })).toThrow(/bpfnet_ prefix/);
    expect(() => defineCounter({ name: "bpfnet_drops", help: "x" })).toThrow(/must end in _total/);
    expect(() => defineGauge({ name: "bpfnet_things_total", help: "x" })).toThrow(/must not end in _total/);
    expect(() => defineGauge({ name: "bpfnet_Bad-Name", help: "x" })).toThrow(/snake_case/);
  });

  test("counters set from running totals at scrape time; a redefinition replaces the metric", async () => {
    let total = 5n;
    defineCounter({ name: "bpfnet_test_things_total", help: "Things.", labelNames: ["kind"] }, (c) => setCounter(c, [{ labels: { kind: "a" }, value: total }]));
    expect(await registry.metrics()).toContain('bpfnet_test_things_total{kind="a"} 5');
    total = 8n;
    expect(await registry.metrics()).toContain('bpfnet_test_things_total{kind="a"} 8');
    defineCounter({ name: "bpfnet_test_things_total", help: "Things again." });
    expect(await registry.metrics()).toContain("# HELP bpfnet_test_things_total Things again.");
    registry.removeSingleMetric("bpfnet_test_things_total");
  });
});

describe("aggregation of the datapath's counters", () => {
  const m = (id: number, direction: "ingress" | "egress", reason: number, packets: number): MetricsEntry => ({ id, direction, reason, packets: BigInt(packets), bytes: BigInt(packets * 100) });
  const entries = [
    m(4, "ingress", Verdict.FORWARDED, 10),
    m(5, "ingress", Verdict.FORWARDED, 5),
    m(4, "ingress", Verdict.PASSED, 2),
    m(6, "egress", Verdict.FORWARDED, 1),
    m(4, "ingress", DropReason.SPOOFED_SOURCE, 3),
    m(5, "ingress", DropReason.SPOOFED_SOURCE, 4),
    m(6, "egress", DropReason.NO_ROUTE, 1),
    m(4, "ingress", Verdict.POLICY_AUDIT, 9), // counted besides a verdict: not a forward
  ];

  test("forwarded and passed, summed over devices by direction", () => {
    expect(forwardRows(entries, "packets")).toEqual([
      { labels: { direction: "ingress", path: "forwarded" }, value: 15n },
      { labels: { direction: "ingress", path: "passed" }, value: 2n },
      { labels: { direction: "egress", path: "forwarded" }, value: 1n },
    ]);
    expect(forwardRows(entries, "bytes")[0].value).toBe(1500n);
  });

  test("drops by reason name and direction", () => {
    expect(dropRows(entries, "packets")).toEqual([
      { labels: { reason: "spoofed-source", direction: "ingress" }, value: 7n },
      { labels: { reason: "no-route", direction: "egress" }, value: 1n },
    ]);
  });

  test("verdicts by verdict and policy direction; identities counted once, reserved ones not", () => {
    const v = (verdict: VerdictEntry["verdict"], direction: number, packets: number): VerdictEntry => ({ endpointId: 1, ruleId: 0, direction, verdict, packets: BigInt(packets), bytes: 0n });
    expect(verdictRows([v("allow", 1, 2), v("allow", 1, 3), v("deny", 2, 1)])).toEqual([
      { labels: { verdict: "allow", direction: "ingress" }, value: 5n },
      { labels: { verdict: "deny", direction: "egress" }, value: 1n },
    ]);
    expect(endpointIdentities([1, 2, 6, 256, 256, 300])).toBe(2);
  });
});
