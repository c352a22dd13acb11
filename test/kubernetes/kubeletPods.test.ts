// Level 3 of issue 14: real Kubernetes nodes and pods networked by bpfnet (lab tk3, 2 hosts).
// `lab k8s up --kubelet` runs the control plane and, on each lab host, a real kubelet with
// containerd + runc (lab/kubelet.ts: a mount namespace and a cgroup of its own per host).
// KubernetesNetwork goes on through the Automation API (project test/projects/kubernetes); then:
//   - the agent pods run from the locally built image on both kubelets and load BPF (their API,
//     read over the socket in each node's private state directory, shows the programs attached);
//   - the Nodes turn Ready once the agent's init container installed the CNI plugin;
//   - two busybox pods scheduled onto different nodes get addresses from each node's pod CIDR
//     through bpfnet's CNI (each is an endpoint of that node's agent), and a pod on each node
//     pings the other node's pod (its logs read through the API server and the kubelet);
//   - destroy, then `lab down`: no process, cgroup, mount target or namespace is left.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import type { Stack } from "@pulumi/pulumi/automation";
import { KubeAccess, kubeGet, kubeRequest } from "../../lab/kubeApi";
import { labKubeAccess, labKubernetesUp, LabKubernetes } from "../../lab/kubernetes";
import { cgroupHierarchies, nodeCgroup, nodePrivateDirs } from "../../lab/kubelet";
import { netnsExists } from "../../lab/sh";
import { AgentClient } from "../../node-agent/api/client";
import { OBJECT_NAMES } from "../../components/kubernetes";
import { startTestLab, TestLab } from "../support/lab";
import { startEtcd, TestEtcd } from "../support/etcd";
import { kubernetesNetworkStack, removeKubernetesLab } from "./support/stack";
import { waitFor } from "../support/traffic";
import { keysUnder } from "../etcd/helpers";
import { containsAddress, parseCidr, parseIpv4 } from "../../provider/ipam/cidr";

jest.setTimeout(900_000);

const LAB = "tk3";
const OCTET = 143;
const API_PORT = 16450;
const NS = "bpfnet-tk3";
const NET = `tk3net${process.pid}`;
const ROOT_PASSWORD = `tk3-${process.pid}-root`;
const BUSYBOX = "bpfnet-lab/busybox:1.35";
const CAP_SYS_RESOURCE = 24;
const boundingSet = BigInt(`0x${/^CapBnd:\s*([0-9a-f]+)$/m.exec(fs.readFileSync("/proc/self/status", "utf8"))![1]}`);
const SECURITY_MODE = (boundingSet >> BigInt(CAP_SYS_RESOURCE)) & 1n ? "capabilities" : "privileged";

let lab: TestLab | undefined;
let k8s: LabKubernetes | undefined;
let etcd: TestEtcd | undefined;
let stack: Stack | undefined;
let api: KubeAccess;
/** The busybox pods' addresses, by node. */
const ips: Record<string, string> = {};
/** Mount targets that existed before the lab (what must still exist after, and nothing more). */
const targetsBefore = Object.fromEntries([...Object.keys(nodePrivateDirs()), "/opt/cni", "/etc/cni"].map((t) => [t, fs.existsSync(t)]));

const hosts = () => lab!.inventory.hosts;
const nodes = () => hosts().map((h) => ({ name: h.name, underlayIp: h.underlayIp }));
/** The agent's API socket on a node: the node's private /var/lib/bpfnet, seen from this (the root) mount namespace. */
const agentOn = (host: string) => new AgentClient(path.join(lab!.stateDir, "k8s", `node-${host}`, "private", "bpfnet-state", "agent", "agent.sock"), 10_000);

async function agentPods(): Promise<Record<string, { phase: string; ready: boolean }>> {
  const pods = await kubeGet(api, `/api/v1/namespaces/${NS}/pods?labelSelector=${encodeURIComponent("app.kubernetes.io/name=bpfnet-agent")}`);
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  return Object.fromEntries((pods.items as any[]).map((p) => [p.spec.nodeName, { phase: p.status.phase, ready: !!p.status.containerStatuses?.every((c: { ready: boolean }) => c.ready) }]));
}

/** A busybox pod on `node` (scheduled there by its hostname label, so the scheduler sees the Node Ready). */
async function createPod(name: string, node: string, command: string[], restartPolicy = "Always"): Promise<void> {
  const r = await kubeRequest(api, "POST", "/api/v1/namespaces/default/pods", {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, labels: { test: "tk3" } },
    spec: {
      nodeSelector: { "kubernetes.io/hostname": node },
      automountServiceAccountToken: false,
      terminationGracePeriodSeconds: 0,
      restartPolicy,
      containers: [{ name: "c", image: BUSYBOX, imagePullPolicy: "Never", command }],
    },
  });
  expect([r.status, r.body?.message]).toEqual([201, undefined]);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const getPod = async (name: string): Promise<any> => kubeGet(api, `/api/v1/namespaces/default/pods/${name}`);

async function podLog(name: string): Promise<string> {
  const r = await kubeRequest(api, "GET", `/api/v1/namespaces/default/pods/${name}/log`);
  return typeof r.body === "string" ? r.body : JSON.stringify(r.body);
}

beforeAll(async () => {
  lab = await startTestLab(LAB, OCTET, "vxlan", 2);
  k8s = await labKubernetesUp(lab.stateDir, { port: API_PORT, kubelet: true });
  api = labKubeAccess(lab.stateDir);
  // On the lab's management bridge: the agents run in the lab hosts' namespaces.
  etcd = await startEtcd({ auth: { username: "root", password: ROOT_PASSWORD }, host: `10.${OCTET}.0.254` });
  // The default "capabilities" mode adds CAP_SYS_RESOURCE, which runc cannot grant where the
  // machine's bounding set lacks it (a sandboxed VM): there the agent runs privileged (the
  // runtime's own capabilities).
  stack = await kubernetesNetworkStack({
    stackName: `tk3-${process.pid}`, kubeconfigPath: k8s.kubeconfigPath, etcd, etcdRootPassword: ROOT_PASSWORD, nodes: nodes(), networkName: NET, namespace: NS,
    overrides: SECURITY_MODE === "privileged" ? { securityMode: "privileged" } : {},
  });
}, 600_000);

afterAll(async () => {
  await removeKubernetesLab({ stack, etcd, lab });
  // Nothing of the nodes outlives the lab: processes (kubelets, containerd, shims, pods: their cgroups are gone), mount targets, namespaces.
  for (const h of ["h1", "h2"]) {
    for (const hier of cgroupHierarchies()) expect(fs.existsSync(path.join(hier, nodeCgroup(LAB, h)))).toBe(false);
    expect(netnsExists(`${LAB}-${h}`)).toBe(false);
  }
  for (const [t, existed] of Object.entries(targetsBefore)) expect([t, fs.existsSync(t)]).toEqual([t, existed]);
  if (lab) expect(fs.existsSync(lab.stateDir)).toBe(false);
}, 600_000);

test("every lab host is a real kubelet Node (containerd + runc), serving only on its lab address", async () => {
  expect(k8s!.nodeKind).toBe("kubelet");
  for (const h of hosts()) {
    const node = await waitFor(`Node ${h.name} registered by its kubelet`, () => kubeGet(api, `/api/v1/nodes/${h.name}`), 120_000, 500);
    expect(node.status.nodeInfo.kubeletVersion).toBe("v1.34.4");
    expect(node.status.nodeInfo.containerRuntimeVersion).toMatch(/^containerd:\/\/1\./);
    expect(node.status.addresses).toContainEqual({ type: "InternalIP", address: h.underlayIp });
    // No CNI yet: the runtime reports its network not ready, so the Node is not Ready.
    expect(node.status.conditions.find((c: { type: string }) => c.type === "Ready").status).not.toBe("True");
    // The kubelet's API listens on the host's underlay address only, and refuses a client without a lab certificate.
    const listening = spawnSync("ip", ["netns", "exec", h.netns!, "ss", "-Hltn", "sport = :10250"], { encoding: "utf8" }).stdout.trim().split("\n").map((l) => l.split(/\s+/)[3]);
    expect(listening).toEqual([`${h.underlayIp}:10250`]);
    const other = hosts().find((o) => o.name !== h.name)!;
    const get = `require("https").get(process.argv[1], { rejectUnauthorized: false }, (r) => { console.log(r.statusCode); r.resume(); }).on("error", (e) => console.log(e.message))`;
    const anonymous = spawnSync("ip", ["netns", "exec", other.netns!, process.execPath, "-e", get, `https://${h.underlayIp}:10250/pods`], { encoding: "utf8", timeout: 30_000 });
    expect(anonymous.stdout.trim()).toBe("401");
  }
});

test("pulumi up: the agent pods run from the local image on both kubelets, load BPF, and the Nodes turn Ready", async () => {
  const up = await stack!.up();
  expect(up.summary.result).toBe("succeeded");
  const running = await waitFor("an agent pod Running and ready on every node", async () => {
    const p = await agentPods();
    return hosts().every((h) => p[h.name]?.phase === "Running" && p[h.name].ready) ? p : undefined;
  }, 240_000, 1000);
  expect(Object.keys(running!).sort()).toEqual(["h1", "h2"]);
  const agent = (await kubeGet(api, `/apis/apps/v1/namespaces/${NS}/daemonsets/${OBJECT_NAMES.daemonSet}`)).spec.template.spec.containers[0];
  expect(agent.securityContext.privileged).toBe(SECURITY_MODE === "privileged");
  expect((await kubeGet(api, `/apis/apps/v1/namespaces/${NS}/daemonsets/${OBJECT_NAMES.daemonSet}`)).status).toMatchObject({ numberReady: 2 });
  const podCidrs = (await stack!.outputs()).podCidrs.value as Record<string, string>;
  for (const h of hosts()) {
    // The agent inside the pod: its API on the node's own state directory, its BPF programs attached.
    const status = await agentOn(h.name).status();
    expect(status.agent).toMatchObject({ host: h.name, mode: "vxlan", podCidr: podCidrs[h.name], underlayIp: h.underlayIp, ready: true });
    expect(status.programs.length).toBeGreaterThan(0);
    expect(status.programs.every((p) => p.current && p.attachedProgId !== undefined)).toBe(true);
    await waitFor(`Node ${h.name} Ready (the CNI installed by the agent's init container)`, async () => {
      const n = await kubeGet(api, `/api/v1/nodes/${h.name}`);
      return n.status.conditions.some((c: { type: string; status: string }) => c.type === "Ready" && c.status === "True");
    }, 120_000, 1000);
  }
});

test("pods on different nodes get their network from bpfnet's CNI and ping each other across the VXLAN", async () => {
  const podCidrs = (await stack!.outputs()).podCidrs.value as Record<string, string>;
  await createPod("web-h1", "h1", ["/bin/sleep", "3600"]);
  await createPod("web-h2", "h2", ["/bin/sleep", "3600"]);
  for (const h of ["h1", "h2"]) {
    const pod = await waitFor(`web-${h} Running`, async () => {
      const p = await getPod(`web-${h}`);
      return p?.status?.phase === "Running" && p.status.podIP ? p : undefined;
    }, 180_000, 1000);
    expect(pod.spec.nodeName).toBe(h);
    ips[h] = pod.status.podIP;
    expect(inCidr(ips[h], podCidrs[h])).toBe(true);
    // bpfnet's endpoint on that node's agent, and only there.
    const endpoints = await agentOn(h).listEndpoints();
    expect(endpoints.map((e) => e.ip)).toContain(ips[h]);
    const other = h === "h1" ? "h2" : "h1";
    expect((await agentOn(other).listEndpoints()).map((e) => e.ip)).not.toContain(ips[h]);
  }
  // One pinger per node, towards the other node's pod; each exits 0 only if its pings were answered.
  await createPod("ping-from-h1", "h1", ["/bin/ping", "-c", "3", "-W", "5", ips.h2], "Never");
  await createPod("ping-from-h2", "h2", ["/bin/ping", "-c", "3", "-W", "5", ips.h1], "Never");
  for (const [pinger, target] of [["ping-from-h1", ips.h2], ["ping-from-h2", ips.h1]]) {
    const phase = await waitFor(`${pinger} finished`, async () => {
      const p = await getPod(pinger);
      return ["Succeeded", "Failed"].includes(p?.status?.phase) ? (p.status.phase as string) : undefined;
    }, 180_000, 1000);
    const log = await podLog(pinger);
    expect([pinger, phase, log]).toEqual([pinger, "Succeeded", expect.stringContaining(`3 packets transmitted, 3 packets received`)]);
    expect(log).toContain(`PING ${target}`);
  }
  // The path was bpfnet's: each agent's datapath forwarded the pods' packets (ping's 3 + 3 echoes at least).
  for (const h of ["h1", "h2"]) expect(BigInt((await agentOn(h).status()).counters.forwarded.packets)).toBeGreaterThanOrEqual(6n);
});

test("destroy removes the network from the cluster and etcd; the pods' endpoints go with their pods", async () => {
  for (const name of ["web-h1", "web-h2", "ping-from-h1", "ping-from-h2"]) {
    const r = await kubeRequest(api, "DELETE", `/api/v1/namespaces/default/pods/${name}`);
    expect([200, 202]).toContain(r.status);
  }
  const podIps = new Set(Object.values(ips));
  for (const h of ["h1", "h2"]) {
    await waitFor(`${h}'s pod endpoints released by CNI DEL`, async () => (await agentOn(h).listEndpoints()).every((e) => !podIps.has(e.ip)), 120_000, 1000);
  }
  const destroyed = await stack!.destroy();
  expect(destroyed.summary.result).toBe("succeeded");
  expect(await kubeGet(api, `/api/v1/namespaces/${NS}`)).toBeUndefined();
  expect(await keysUnder(etcd!.connection, `/bpfnet/${NET}/`)).toEqual([]);
});

const inCidr = (ip: string, cidr: string) => containsAddress(parseCidr(cidr)!, parseIpv4(ip)!);
