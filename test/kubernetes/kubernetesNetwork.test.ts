// KubernetesNetwork against a real Kubernetes control plane (lab tk1: kube-apiserver with TLS and
// RBAC, controller-manager, scheduler, its own etcd; each lab host a Node through virtual-kubelet)
// through the real Pulumi CLI and the Automation API (project test/projects/kubernetes, the
// built pulumi-resource-kubernetes plugin):
//   - hostile input fails at preview naming the field and value; nothing reaches the cluster or etcd;
//   - `pulumi up` (the CLI): every object with the right spec, read back through the API server;
//     the agent's RBAC checked with SubjectAccessReviews; each node's own etcd identity in the Secret;
//     one pod CIDR per Node in etcd, written to the Node's spec.podCIDR; the DaemonSet's pods
//     scheduled onto every Node and Running (level 2: virtual-kubelet's mock runs nothing);
//   - a second up changes nothing; hand drift (an edited ConfigMap, a deleted DaemonSet) is found by
//     refresh and repaired by up;
//   - destroy leaves nothing in the cluster or in etcd.
import { spawnSync } from "child_process";
import type { Stack } from "@pulumi/pulumi/automation";
import { KubeAccess, kubeGet, kubeRequest } from "../../lab/kubeApi";
import { labKubeAccess, labKubernetesUp, LabKubernetes } from "../../lab/kubernetes";
import { OBJECT_NAMES } from "../../components/kubernetes";
import { startTestLab, TestLab } from "../support/lab";
import { serviceAccountCan } from "./support/access";
import { startEtcd, TestEtcd } from "../support/etcd";
import { pulumiEnv } from "../support/pulumi";
import { KUBERNETES_PROJECT, kubernetesNetworkStack, removeKubernetesLab } from "./support/stack";
import { waitFor } from "../support/traffic";
import { keysUnder } from "../etcd/helpers";

jest.setTimeout(900_000);

const LAB = "tk1";
const OCTET = 125;
const API_PORT = 16443;
const NS = "bpfnet-tk1";
const NET = `tk1net${process.pid}`;
const ROOT_PASSWORD = `tk1-${process.pid}-root`;

let lab: TestLab | undefined;
let k8s: LabKubernetes | undefined;
let etcd: TestEtcd | undefined;
let stack: Stack | undefined;
let api: KubeAccess;

const nsPath = (kind: string, name = "") => `/api/v1/namespaces/${NS}/${kind}${name ? `/${name}` : ""}`;
const appsPath = (kind: string, name = "") => `/apis/apps/v1/namespaces/${NS}/${kind}${name ? `/${name}` : ""}`;
const nodes = () => lab!.inventory.hosts.map((h) => ({ name: h.name, underlayIp: h.underlayIp }));

/** The real CLI, as a user runs it, in the project with this test's stack. */
function cli(...args: string[]): { status: number | null; out: string } {
  const r = spawnSync("pulumi", [...args, "--stack", stack!.name, "--non-interactive", "--color", "never"], {
    cwd: KUBERNETES_PROJECT,
    encoding: "utf8",
    env: { ...process.env, ...pulumiEnv() },
    timeout: 600_000,
  });
  return { status: r.status, out: `${r.stdout}\n${r.stderr}` };
}

async function podsRunning(): Promise<Record<string, string>> {
  const pods = await kubeGet(api, `${nsPath("pods")}?labelSelector=${encodeURIComponent("app.kubernetes.io/name=bpfnet-agent")}`);
  return Object.fromEntries((pods.items as any[]).map((p) => [p.spec.nodeName, p.status.phase])); // eslint-disable-line @typescript-eslint/no-explicit-any
}

beforeAll(async () => {
  lab = await startTestLab(LAB, OCTET, "vxlan", 2);
  k8s = await labKubernetesUp(lab.stateDir, { port: API_PORT });
  api = labKubeAccess(lab.stateDir);
  etcd = await startEtcd({ auth: { username: "root", password: ROOT_PASSWORD } });
  stack = await kubernetesNetworkStack({
    stackName: `tk1-${process.pid}`, kubeconfigPath: k8s.kubeconfigPath, etcd, etcdRootPassword: ROOT_PASSWORD, nodes: nodes(), networkName: NET, namespace: NS,
  });
}, 600_000);

// Nothing of the control plane outlives the lab.
afterAll(() => removeKubernetesLab({ stack, etcd, lab }), 600_000);

test("the lab's control plane: TLS + RBAC on the lab address only, every lab host a Ready Node", async () => {
  expect(k8s!.server).toBe(`https://${lab!.inventory.hosts[0].ssh.host}:${API_PORT}`);
  expect(k8s!.nodeKind).toBe("virtual-kubelet");
  // An identity the lab CA did not sign is refused; no client certificate is anonymous and denied.
  const anonymous = await kubeRequest({ ...api, certPem: "", keyPem: "" }, "GET", "/api/v1/nodes");
  expect([401, 403]).toContain(anonymous.status);
  for (const h of lab!.inventory.hosts) {
    const node = await waitFor(`Node ${h.name} Ready`, async () => {
      const n = await kubeGet(api, `/api/v1/nodes/${h.name}`);
      return n?.status?.conditions?.some((c: { type: string; status: string }) => c.type === "Ready" && c.status === "True") ? n : undefined;
    }, 120_000, 500);
    expect(node.status.addresses).toContainEqual({ type: "InternalIP", address: h.underlayIp });
  }
});

test("hostile input fails at preview (the CLI) naming the field and value; nothing is written", async () => {
  await stack!.setConfig("k8stest:overrides", {
    value: JSON.stringify({ namespace: "bpf net;$(touch /tmp/tk1)", image: "x`id`", paths: { cniBinDir: "/opt/cni/../bin" }, nodes: [{ name: "h1\nrm", underlayIp: "10.125.1.11" }] }),
  });
  const r = cli("preview");
  expect(r.status).not.toBe(0);
  for (const m of [
    /namespace must be a Kubernetes name .*got \\*"bpf net;\$\(touch \/tmp\/tk1\)\\*"/,
    /image must be a container image reference .*got \\*"x`id`\\*"/,
    /paths\.cniBinDir must be an absolute, normalized path .*no "\.\." segment.*got \\*"\/opt\/cni\/\.\.\/bin\\*"/,
    /nodes\[0\] \(\\*"h1\\+nrm\\*"\)\.name must be a host name/,
  ]) {
    expect(r.out).toMatch(m);
  }
  expect(await kubeGet(api, `/api/v1/namespaces/${NS}`)).toBeUndefined();
  expect(await keysUnder(etcd!.connection, `/bpfnet/${NET}/`)).toEqual([]);
  await stack!.setConfig("k8stest:overrides", { value: "{}" });
});

test("pulumi up (CLI): every object with its spec, least-privilege RBAC, per-node credentials, one pod CIDR per Node, pods Running on every Node", async () => {
  const up = cli("up", "--yes", "--skip-preview");
  expect(up.out).not.toMatch(/error:/);
  expect(up.status).toBe(0);
  const outputs = await stack!.outputs();
  const podCidrs = outputs.podCidrs.value as Record<string, string>;
  expect(Object.keys(podCidrs).sort()).toEqual(nodes().map((n) => n.name).sort());
  expect(new Set(Object.values(podCidrs)).size).toBe(nodes().length);

  const ns = await kubeGet(api, `/api/v1/namespaces/${NS}`);
  expect(ns.metadata.labels["app.kubernetes.io/part-of"]).toBe("bpfnet");
  const sa = await kubeGet(api, nsPath("serviceaccounts", OBJECT_NAMES.serviceAccount));
  expect(sa.automountServiceAccountToken).toBe(false);

  // The network config: every node with its address, the network's prefix.
  const cm = await kubeGet(api, nsPath("configmaps", OBJECT_NAMES.configMap));
  const network = JSON.parse(cm.data["network.json"]);
  expect(network).toMatchObject({ networkName: NET, networkPrefix: `/bpfnet/${NET}`, stateDir: "/var/lib/bpfnet/agent", bpffsDir: "/sys/fs/bpf/bpfnet" });
  for (const n of nodes()) expect(network.nodes[n.name]).toEqual({ underlayIp: n.underlayIp, underlayInterface: "eth0" });

  // Each node's own etcd user (not root), each a distinct identity.
  const secret = await kubeGet(api, nsPath("secrets", OBJECT_NAMES.secret));
  const creds = Object.fromEntries(Object.entries(secret.data as Record<string, string>).map(([k, v]) => [k, JSON.parse(Buffer.from(v, "base64").toString())]));
  expect(Object.keys(creds).sort()).toEqual(nodes().map((n) => `${n.name}.json`).sort());
  const users = Object.values(creds).map((c) => c.username);
  expect(users).not.toContain("root");
  expect(new Set(users).size).toBe(nodes().length);
  for (const c of Object.values(creds)) expect(c.endpoints).toEqual(etcd!.endpoints);

  // The DaemonSet: hostNetwork, precise capabilities, the mounts, the init container, readiness, one node at a time.
  const ds = await kubeGet(api, appsPath("daemonsets", OBJECT_NAMES.daemonSet));
  const pod = ds.spec.template.spec;
  expect(ds.spec.updateStrategy).toEqual({ type: "RollingUpdate", rollingUpdate: { maxUnavailable: 1, maxSurge: 0 } });
  expect(pod.hostNetwork).toBe(true);
  expect(pod.serviceAccountName).toBe(OBJECT_NAMES.serviceAccount);
  const agent = pod.containers.find((c: { name: string }) => c.name === "agent");
  expect(agent.securityContext.privileged).toBe(false);
  expect(agent.securityContext.capabilities).toEqual({ drop: ["ALL"], add: ["BPF", "NET_ADMIN", "SYS_ADMIN", "PERFMON", "SYS_RESOURCE", "NET_RAW"] });
  expect(agent.readinessProbe.exec.command.slice(-3)).toEqual(["status", "--socket", "/var/lib/bpfnet/agent/agent.sock"]);
  const mounts = Object.fromEntries(agent.volumeMounts.map((m: { name: string; mountPath: string }) => [m.name, m.mountPath]));
  expect(mounts).toMatchObject({ bpffs: "/sys/fs/bpf", netns: "/run/netns", state: "/var/lib/bpfnet/agent" });
  const volumes = Object.fromEntries(pod.volumes.map((v: { name: string; hostPath?: { path: string } }) => [v.name, v.hostPath?.path]));
  expect(volumes).toMatchObject({ bpffs: "/sys/fs/bpf", netns: "/run/netns", "cni-bin": "/opt/cni/bin", "cni-conf": "/etc/cni/net.d" });
  expect(pod.initContainers.map((c: { name: string }) => c.name)).toEqual(["install"]);
  expect(pod.initContainers[0].command).toEqual(expect.arrayContaining(["--node", "$(NODE_NAME)", "--host-cni-bin", "/opt/cni/bin"]));

  // RBAC, asked of the API server: read its own ConfigMap and the Nodes; no Secret, no write, nothing elsewhere.
  const can = serviceAccountCan(api, NS, OBJECT_NAMES.serviceAccount);
  await waitFor("the agent's grants in effect", () => can("get", "configmaps", OBJECT_NAMES.configMap), 30_000, 250);
  expect(await can("list", "nodes", undefined, undefined)).toBe(true);
  expect(await can("get", "configmaps", "kube-root-ca.crt")).toBe(false);
  expect(await can("get", "secrets", OBJECT_NAMES.secret)).toBe(false);
  expect(await can("update", "configmaps", OBJECT_NAMES.configMap)).toBe(false);
  expect(await can("create", "pods")).toBe(false);
  expect(await can("patch", "nodes", "h1", undefined)).toBe(false);

  // IPAM through etcd, and each Node's spec.podCIDR.
  const keys = await keysUnder(etcd!.connection, `/bpfnet/${NET}/`);
  for (const n of nodes()) expect(keys).toContain(`/bpfnet/${NET}/ipam/v1/hosts/${n.name}`);
  for (const n of nodes()) expect((await kubeGet(api, `/api/v1/nodes/${n.name}`)).spec.podCIDR).toBe(podCidrs[n.name]);

  // Level 2: one agent pod per Node, Running.
  const running = await waitFor("an agent pod Running on every Node", async () => {
    const p = await podsRunning();
    return nodes().every((n) => p[n.name] === "Running") ? p : undefined;
  }, 120_000, 500);
  expect(Object.keys(running!).sort()).toEqual(nodes().map((n) => n.name).sort());
  const status = (await kubeGet(api, appsPath("daemonsets", OBJECT_NAMES.daemonSet))).status;
  expect(status).toMatchObject({ desiredNumberScheduled: nodes().length, numberReady: nodes().length });
});

test("a second up changes nothing (Automation API)", async () => {
  const again = await stack!.up();
  expect(Object.keys(again.summary.resourceChanges ?? {}).filter((k) => k !== "same")).toEqual([]);
});

test("hand drift (an edited ConfigMap, a deleted DaemonSet) is found by refresh and repaired by up", async () => {
  const cmPath = nsPath("configmaps", OBJECT_NAMES.configMap);
  const original = (await kubeGet(api, cmPath)).data["network.json"];
  const patched = await kubeRequest(api, "PATCH", cmPath, { data: { "network.json": '{"networkPrefix":"/bpfnet/evil"}' } });
  expect(patched.status).toBe(200);
  const deleted = await kubeRequest(api, "DELETE", appsPath("daemonsets", OBJECT_NAMES.daemonSet), { kind: "DeleteOptions", apiVersion: "v1", propagationPolicy: "Foreground" });
  expect([200, 202]).toContain(deleted.status);
  await waitFor("the DaemonSet gone", async () => (await kubeGet(api, appsPath("daemonsets", OBJECT_NAMES.daemonSet))) === undefined, 120_000, 500);

  // (The Nodes' patches also refresh the Nodes' live status: only these two are drift.)
  const refresh = await stack!.refresh();
  expect(refresh.summary.resourceChanges).toMatchObject({ delete: 1 });
  expect(refresh.stdout).toMatch(/ConfigMap\s+k8snet-config\s+updated/);
  expect(refresh.stdout).toMatch(/DaemonSet\s+k8snet-agent\s+deleted/);
  // @pulumi/kubernetes replaces a ConfigMap whose data changed (its dependents then roll).
  const up = await stack!.up();
  expect(up.summary.resourceChanges).toMatchObject({ replace: 1, create: 1 });
  expect(up.stdout).toMatch(/ConfigMap\s+k8snet-config\s+replaced/);
  expect(up.stdout).toMatch(/DaemonSet\s+k8snet-agent\s+created/);
  expect((await kubeGet(api, cmPath)).data["network.json"]).toBe(original);
  expect(await kubeGet(api, appsPath("daemonsets", OBJECT_NAMES.daemonSet))).toBeDefined();
  await waitFor("agent pods Running again", async () => {
    const p = await podsRunning();
    return nodes().every((n) => p[n.name] === "Running") ? p : undefined;
  }, 120_000, 500);
});

test("destroy leaves nothing: no namespace, no cluster-wide RBAC, no keys in etcd", async () => {
  const destroyed = await stack!.destroy();
  expect(destroyed.summary.resourceChanges?.delete).toBeGreaterThan(10);
  expect(await kubeGet(api, `/api/v1/namespaces/${NS}`)).toBeUndefined();
  expect(await kubeGet(api, `/apis/rbac.authorization.k8s.io/v1/clusterroles/bpfnet-agent-${NS}`)).toBeUndefined();
  expect(await kubeGet(api, `/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/bpfnet-agent-${NS}`)).toBeUndefined();
  const left = await kubeGet(api, `/api/v1/pods?labelSelector=${encodeURIComponent("app.kubernetes.io/name=bpfnet-agent")}`);
  expect(left.items).toEqual([]);
  expect(await keysUnder(etcd!.connection, `/bpfnet/${NET}/`)).toEqual([]);
});
