// Pure specs of what bpfnet runs on hosts: the agent's Node.js check, etcd's config and its
// bootstrap lines, and the supervisor's liveness test (a zombie is not alive).
import { execFileSync } from "child_process";
import { memberConfig, newClusterBootstrap, runtimeConfig, EtcdMemberSpec } from "../../provider/etcd/etcdMemberSpec";
import { nodeMajor, nodeVersionProblem } from "../../provider/agent/nodeAgentSpec";
import { isRunningCommand } from "../../provider/host/supervisor";

const member: EtcdMemberSpec = {
  name: "h1",
  address: "10.0.0.1",
  clientPort: 2379,
  peerPort: 2380,
  peers: [
    { name: "h1", address: "10.0.0.1" },
    { name: "h2", address: "10.0.0.2" },
  ],
  clusterToken: "t",
  dir: "/var/lib/bpfnet/etcd",
  binary: "/usr/bin/etcd",
  flags: { "auto-compaction-retention": "1" },
};

describe("the agent's Node.js check", () => {
  test("parses node --version", () => {
    expect(nodeMajor("v20.20.2\n")).toBe(20);
    expect(nodeMajor("v18.19.0")).toBe(18);
    expect(nodeMajor("garbage")).toBeUndefined();
  });
  test("names what it found, or that nothing was there", () => {
    expect(nodeVersionProblem("h1", "/usr/bin/node", { code: 0, stdout: "v20.1.0" })).toBeUndefined();
    expect(nodeVersionProblem("h1", "/usr/bin/node", { code: 0, stdout: "v18.19.0\n" })).toBe(
      "node agent on h1 needs Node.js >= 20; found v18.19.0 at /usr/bin/node",
    );
    expect(nodeVersionProblem("h2", "/opt/node/bin/node", { code: 127, stdout: "" })).toMatch(/^node agent on h2 needs Node\.js >= 20 at \/opt\/node\/bin\/node, but none was found there/);
  });
});

describe("etcd member config", () => {
  test("a new cluster lists every peer; a joining member starts as existing", () => {
    expect(memberConfig(member)).toContain("initial-cluster: h1=https://10.0.0.1:2380,h2=https://10.0.0.2:2380\n");
    expect(memberConfig(member)).toContain("initial-cluster-state: new\n");
    const joined = memberConfig(member, { state: "existing", initialCluster: { h2: "https://10.0.0.2:2380", h1: "https://10.0.0.1:2380" } });
    expect(joined).toContain("initial-cluster-state: existing\n");
  });
  test("bootstrap lines never force a restart; runtime settings do", () => {
    const joined = memberConfig(member, { state: "existing", initialCluster: { h1: "https://10.0.0.1:2380" } });
    expect(runtimeConfig(joined)).toBe(runtimeConfig(memberConfig(member, newClusterBootstrap(member))));
    expect(runtimeConfig(memberConfig({ ...member, flags: {} }))).not.toBe(runtimeConfig(memberConfig(member)));
    expect(memberConfig(member)).toContain("client-cert-auth: true");
  });
});

describe("supervisor liveness", () => {
  test("a live process is running, a zombie is not", () => {
    const dir = execFileSync("mktemp", ["-d"], { encoding: "utf8" }).trim();
    const svc = { name: "t", dir, argv: ["sleep", "30"], description: "t" };
    // sh starts a child, records its pid, kills it and does not reap it: a zombie while sh sleeps.
    const out = execFileSync("sh", ["-c", `sleep 30 & echo $! > ${dir}/t.pid; ${isRunningCommand(svc, "process")}; kill -9 $!; sleep 0.3; ${isRunningCommand(svc, "process")}`], {
      encoding: "utf8",
    });
    expect(out.split("\n").filter(Boolean)).toEqual(["running", "stopped"]);
    execFileSync("rm", ["-rf", dir]);
  });
});
