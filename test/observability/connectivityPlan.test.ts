// The connectivity test's plan (pure): which checks, their commands (quoted), and the report.
import { spawnSync } from "child_process";
import type { InventoryHost } from "../../lab/inventory";
import { tempEndpointRemoval } from "../../node-agent/cli/health";
import { checkPassed, formatReport, pingCommand, pingSummary, planChecks, planServiceChecks, TestHost } from "../../node-agent/connectivity/plan";

const host = (n: number, mtu = 1450): TestHost => ({
  name: `h${n}`,
  underlayIp: `10.1.1.${n}`,
  a: { netns: `bpfnet-ct-7-${n}a`, ip: `10.244.${n}.2` },
  b: { netns: `bpfnet-ct-7-${n}b`, ip: `10.244.${n}.3` },
  mtu,
});

test("3 hosts: same host, every ordered pair, host paths, a ring of other-host and MTU checks", () => {
  const checks = planChecks([host(1), host(2), host(3)]);
  expect(checks.map((c) => c.name)).toEqual([
    "container→container same host (h1)", "container→container same host (h2)", "container→container same host (h3)",
    "container→container h1→h2", "container→container h1→h3", "container→container h2→h1", "container→container h2→h3", "container→container h3→h1", "container→container h3→h2",
    "container→host (h1)", "host→container (h1)", "container→host (h2)", "host→container (h2)", "container→host (h3)", "host→container (h3)",
    "container→another host h1→h2", "host→another host's container h1→h2", "MTU 1450 with DF h1→h2",
    "container→another host h2→h3", "host→another host's container h2→h3", "MTU 1450 with DF h2→h3",
    "container→another host h3→h1", "host→another host's container h3→h1", "MTU 1450 with DF h3→h1",
  ]);
  expect(checks.every((c) => c.expect === "pass")).toBe(true);
  const mtu = checks.find((c) => c.name === "MTU 1450 with DF h1→h2")!;
  expect(mtu).toMatchObject({ on: "h1", command: "ip netns exec bpfnet-ct-7-1a ping -n -q -c 2 -i 0.2 -W 2 -M do -s 1422 10.244.2.2" });
  expect(checks.find((c) => c.name === "host→container (h2)")).toMatchObject({ on: "h2", command: "ping -n -q -c 2 -i 0.2 -W 2 10.244.2.2" });
});

test("the smaller MTU of a pair decides the packet size; one host has no pair checks", () => {
  expect(planChecks([host(1, 1500), host(2, 1450)]).filter((c) => c.name.startsWith("MTU")).map((c) => c.command.split(" ").slice(-2)[0])).toEqual(["1422", "1422"]);
  expect(planChecks([host(1)]).map((c) => c.name)).toEqual(["container→container same host (h1)", "container→host (h1)", "host→container (h1)"]);
});

test("every word is quoted: a hostile value stays one inert word", () => {
  for (const bad of ["x; rm -rf /", "$(reboot)", "`id`", "a\nb", "../..", "it's", "a b"]) {
    // What sh makes of the command: its words, printed instead of run.
    const words = spawnSync("sh", ["-c", `printf '%s\\0' ${pingCommand(bad, bad)}`], { encoding: "utf8" }).stdout.split("\0").slice(0, -1);
    expect(words).toEqual(["ip", "netns", "exec", bad, "ping", "-n", "-q", "-c", "2", "-i", "0.2", "-W", "2", bad]);
  }
});

test("removing a temporary endpoint: two quoted commands, hostile ids, namespaces and host paths stay one inert word each", () => {
  const saved = process.env.BPFNET_NODE;
  process.env.BPFNET_NODE = "node"; // a shell function below prints the words instead of running them
  try {
    for (const bad of ["x; rm -rf /", "$(reboot)", "`id`", "a\nb", "../..", "it's", 'a "b"']) {
      const h = { name: "h1", installDir: `/opt/${bad}`, stateDir: `/var/${bad}` } as InventoryHost;
      const script = `node() { printf '%s\\0' node "$@"; }; ip() { printf '%s\\0' ip "$@"; }; ${tempEndpointRemoval(h, bad, bad)}`;
      const words = spawnSync("sh", ["-c", script], { encoding: "utf8" }).stdout.split("\0").slice(0, -1);
      expect(words).toEqual(["node", `/opt/${bad}/current/bin/bpfnet`, "endpoint", "del", "--id", bad, "--config", `/var/${bad}/agent/agent.json`, "ip", "netns", "del", bad]);
    }
  } finally {
    if (saved === undefined) delete process.env.BPFNET_NODE;
    else process.env.BPFNET_NODE = saved;
  }
});

test("report: one line per check, skips, a summary; ok only when every check passed", () => {
  const [c1, c2] = planChecks([host(1)]);
  const good = formatReport([{ check: c1, ok: true, detail: "2/2, rtt 0.1 ms" }], ["service VIPs: none"]);
  expect(good).toEqual({ ok: true, text: "✔ pass  container→container same host (h1)  (2/2, rtt 0.1 ms)\n- skip  service VIPs: none\nconnectivity test: 1/1 checks passed, 1 skipped" });
  const bad = formatReport([{ check: c1, ok: true, detail: "" }, { check: c2, ok: false, detail: "0/2" }], []);
  expect(bad.ok).toBe(false);
  expect(bad.text).toBe("✔ pass  container→container same host (h1)\n✘ FAIL  container→host (h1)  (0/2)\nconnectivity test: 1/2 checks passed, 1 FAILED");
  expect(formatReport([], []).ok).toBe(false);
});

test("ping summaries", () => {
  expect(pingSummary("2 packets transmitted, 2 received, 0% packet loss, time 201ms\nrtt min/avg/max/mdev = 0.051/0.067/0.083/0.016 ms", "")).toBe("2/2, rtt 0.067 ms");
  expect(pingSummary("2 packets transmitted, 0 received, 100% packet loss", "")).toBe("0/2");
  expect(pingSummary("", "ping: local error: message too long, mtu=1450\n")).toBe("ping: local error: message too long, mtu=1450");
});

test("service VIPs: a TCP connect from every host's container; accepted or refused passes, a timeout fails", () => {
  const checks = planServiceChecks([host(1), host(2)], [{ service: "api", vip: "10.96.0.10", port: 80 }]);
  expect(checks.map((c) => [c.name, c.on, c.expect])).toEqual([
    ["service api 10.96.0.10:80/TCP from h1", "h1", "answer"],
    ["service api 10.96.0.10:80/TCP from h2", "h2", "answer"],
  ]);
  // Address and port reach bash as its $0 and $1, never inside the script text.
  const words = spawnSync("sh", ["-c", `printf '%s\\0' ${checks[0].command}`], { encoding: "utf8" }).stdout.split("\0").slice(0, -1);
  expect(words).toEqual(["ip", "netns", "exec", "bpfnet-ct-7-1a", "timeout", "3", "bash", "-c", 'exec 3<>"/dev/tcp/$0/$1"', "10.96.0.10", "80"]);
  expect(checkPassed(checks[0], 0, "")).toBe(true);
  expect(checkPassed(checks[0], 1, "bash: connect: Connection refused\nbash: line 1: /dev/tcp/10.96.0.10/80: Connection refused")).toBe(true);
  expect(checkPassed(checks[0], 124, "")).toBe(false);
  expect(checkPassed(checks[0], 1, "bash: connect: No route to host")).toBe(false);
  // A ping check passes on exit 0 only.
  const ping = planChecks([host(1)])[0];
  expect(checkPassed(ping, 0, "")).toBe(true);
  expect(checkPassed(ping, 1, "Connection refused")).toBe(false);
});
