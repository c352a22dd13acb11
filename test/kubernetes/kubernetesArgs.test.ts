// KubernetesNetwork's argument checks (what preview runs, before anything is written) and the
// pod-side config the init container derives: every user field refused with hostile input,
// naming the field and the value; the agent config a pod writes is the one the agent accepts.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { kubernetesNetworkArgsProblems } from "../../components/kubernetesValidation";
import { KubernetesNetworkArgs } from "../../components/kubernetes";
import { cniConflist, podAgentConfig, PodNetworkConfig } from "../../node-agent/kubernetes/podConfig";
import { podSetup } from "../../node-agent/kubernetes/podSetup";

const good = (): KubernetesNetworkArgs =>
  ({
    provider: {} as never, // only its presence is checked here; the lab test uses a real one
    nodes: [{ name: "h1", underlayIp: "10.1.1.11" }, { name: "h2", underlayIp: "10.1.1.12", underlayInterface: "eth1" }],
    mode: "vxlan",
    clusterCidr: "10.244.0.0/16",
    etcd: { existing: { endpoints: ["https://10.0.0.5:2379"], username: "root", password: "pw" } },
  }) as KubernetesNetworkArgs;

const HOSTILE = ["a b", "x;touch /tmp/p", "$(touch /tmp/p)", "`touch /tmp/p`", "x\ntouch /tmp/p", "..", "'q'", '"q"'];

test("good arguments have no problem", () => {
  expect(kubernetesNetworkArgsProblems("k", good())).toEqual([]);
  expect(kubernetesNetworkArgsProblems("k", { ...good(), namespace: "net-1", image: "registry.lab:5000/bpfnet/agent:0.1.0-abc", paths: { stateDir: "/var/lib/x" } })).toEqual([]);
});

describe.each(HOSTILE)("hostile value %j", (v) => {
  const shown = JSON.stringify(v);
  const expectNamed = (args: KubernetesNetworkArgs, field: string) => {
    const problems = kubernetesNetworkArgsProblems("k", args);
    expect(problems.find((p) => p.startsWith(field) && p.endsWith(`got ${shown}`))).toBeDefined();
  };
  test("namespace", () => expectNamed({ ...good(), namespace: v }, "namespace must be a Kubernetes name"));
  test("image", () => expectNamed({ ...good(), image: v }, "image must be a container image reference"));
  test("nodes[i].name", () => expectNamed({ ...good(), nodes: [{ name: v, underlayIp: "10.1.1.11" }] }, `nodes[0] (${shown}).name`));
  test("nodes[i].underlayIp", () => expectNamed({ ...good(), nodes: [{ name: "h1", underlayIp: v }] }, `nodes[0] ("h1").underlayIp`));
  test("nodes[i].underlayInterface", () => expectNamed({ ...good(), nodes: [{ name: "h1", underlayIp: "10.1.1.11", underlayInterface: v }] }, `nodes[0] ("h1").underlayInterface`));
  test.each(["installDir", "stateDir", "bpffsDir", "cniBinDir", "cniConfDir"] as const)("paths.%s", (k) => {
    const problems = kubernetesNetworkArgsProblems("k", { ...good(), paths: { [k]: `/opt/${v}` } });
    expect(problems.find((p) => p.startsWith(`paths.${k} must be an absolute, normalized path`) && p.endsWith(`got ${JSON.stringify(`/opt/${v}`)}`))).toBeDefined();
  });
});

test("the other fields are named with their value", () => {
  const p = (over: object) => kubernetesNetworkArgsProblems("k", { ...good(), ...over } as KubernetesNetworkArgs).join("\n");
  expect(p({ provider: undefined })).toContain("provider is required");
  expect(p({ nodes: [] })).toContain("nodes must list at least one");
  expect(p({ nodes: [{ name: "h1", underlayIp: "10.1.1.11" }, { name: "h1", underlayIp: "10.1.1.12" }] })).toContain('nodes: node "h1" is listed twice');
  expect(p({ nodes: [{ name: "H1", underlayIp: "10.1.1.11" }] })).toContain('nodes[0] ("H1").name must be a Kubernetes Node name');
  expect(p({ clusterCidr: "10.244.0.1/16" })).toMatch(/clusterCidr.*10\.244\.0\.1\/16/);
  expect(p({ imagePullPolicy: "Sometimes" })).toContain('imagePullPolicy must be "Always", "IfNotPresent" or "Never", got "Sometimes"');
  expect(p({ securityMode: "root" })).toContain('securityMode must be "capabilities" or "privileged", got "root"');
  expect(p({ podCidrOnNodes: "yes" })).toContain('podCidrOnNodes must be true or false, got "yes"');
  expect(p({ mode: "l3" })).toContain('KubernetesNetwork supports "vxlan" so far');
  expect(p({ etcd: {} })).toContain("etcd needs exactly one of existing");
});

const net: PodNetworkConfig = {
  networkPrefix: "/bpfnet/k",
  stateDir: "/var/lib/bpfnet/agent",
  bpffsDir: "/sys/fs/bpf/bpfnet",
  nodes: { h1: { underlayIp: "10.1.1.11", underlayInterface: "eth0" } },
};
const etcd = { endpoints: ["https://10.0.0.5:2379"], username: "bpfnet-h1", password: "pw" };

test("a pod's agent config is its node's entry with its own credentials, validated like a host's", () => {
  const cfg = podAgentConfig(net, "h1", etcd);
  expect(cfg).toMatchObject({ hostName: "h1", networkPrefix: "/bpfnet/k", etcd, underlayIp: "10.1.1.11", apiSocket: "/var/lib/bpfnet/agent/agent.sock" });
  expect(() => podAgentConfig(net, "h9", etcd)).toThrow('node "h9" is not in the network\'s ConfigMap (nodes: h1)');
  expect(() => podAgentConfig({ ...net, nodes: { h1: { underlayIp: "$(x)", underlayInterface: "eth0" } } }, "h1", etcd)).toThrow('underlayIp must be an IPv4 address, got "$(x)"');
  expect(JSON.parse(cniConflist("k", cfg.apiSocket))).toEqual({ cniVersion: "1.0.0", name: "k", plugins: [{ type: "bpfnet-cni", agentSocket: "/var/lib/bpfnet/agent/agent.sock" }] });
});

test("the init container's setup writes the config (0600), the CNI launcher and the conflist onto the host", () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "tk-podsetup-"));
  try {
    const d = (n: string) => fs.mkdirSync(path.join(root, n), { recursive: true }) ?? path.join(root, n);
    for (const n of ["config", "etcd", "install", "cni-bin", "cni-conf", "release/bin"]) d(n);
    fs.writeFileSync(path.join(root, "release", "bin", "bpfnet-cni"), "#!/usr/bin/env node\n");
    const stateDir = path.join(root, "state");
    fs.writeFileSync(path.join(root, "config", "network.json"), JSON.stringify({ ...net, stateDir, networkName: "k" }));
    fs.writeFileSync(path.join(root, "etcd", "h1.json"), JSON.stringify(etcd));
    const flags = new Map(Object.entries({ node: "h1", release: path.join(root, "release"), config: path.join(root, "config"), etcd: path.join(root, "etcd"), "host-install": path.join(root, "install"), "host-cni-bin": path.join(root, "cni-bin"), "host-cni-conf": path.join(root, "cni-conf") }));
    podSetup(flags);
    const cfgFile = path.join(stateDir, "agent.json");
    expect(fs.statSync(cfgFile).mode & 0o777).toBe(0o600);
    expect(JSON.parse(fs.readFileSync(cfgFile, "utf8"))).toMatchObject({ hostName: "h1", etcd });
    const launcher = fs.readFileSync(path.join(root, "cni-bin", "bpfnet-cni"), "utf8");
    expect(launcher).toContain(`exec ${path.join(root, "install", "node")} ${path.join(root, "install", "release", "bin", "bpfnet-cni")} "$@"`);
    expect(fs.statSync(path.join(root, "install", "node")).mode & 0o111).not.toBe(0);
    expect(fs.existsSync(path.join(root, "install", "release", "bin", "bpfnet-cni"))).toBe(true);
    expect(JSON.parse(fs.readFileSync(path.join(root, "cni-conf", "10-bpfnet.conflist"), "utf8")).plugins[0].agentSocket).toBe(path.join(stateDir, "agent.sock"));
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
