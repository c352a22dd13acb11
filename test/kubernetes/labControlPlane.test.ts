// The lab's Kubernetes control plane (lab tk2): `bpfnet lab k8s up` starts etcd, kube-apiserver
// (TLS from the lab CA, RBAC), controller-manager and scheduler inside the first host's namespace,
// listening only on that namespace's loopback and the host's management address; the admin
// kubeconfig works and nothing else gets in; every lab host is a Node and the scheduler places
// pods on them; KubernetesNetwork's DaemonSet spec (both security modes) passes the API server's
// admission and validation and is scheduled onto every Node; its RBAC rules grant exactly what
// docs/kubernetes.md says (SubjectAccessReviews); `lab k8s up` again is a no-op; `lab down`
// leaves no process, file or namespace.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { KubeAccess, kubeGet, kubeRequest } from "../../lab/kubeApi";
import { kubeconfigPath, kubernetesStatePath, labKubeAccess, readKubernetesState } from "../../lab/kubernetes";
import { pidAlive, pidsInNetns } from "../../lab/sh";
import { AGENT_CLUSTER_ROLE_RULES, AGENT_ROLE_RULES, DEFAULT_NODE_PATHS, OBJECT_NAMES, agentDaemonSetSpec } from "../../components/kubernetes";
import { startTestLab, TestLab } from "../support/lab";
import { serviceAccountCan } from "./support/access";
import { cleanupAll } from "../support/cleanup";
import { REPO } from "../support/pulumi";
import { waitFor } from "../support/traffic";

jest.setTimeout(600_000);

const LAB = "tk2";
const OCTET = 126;
const PORT = 16444;
let lab: TestLab | undefined;
let api: KubeAccess;

/** The product command, as a user runs it. */
const bpfnet = (...args: string[]) =>
  spawnSync("node", [path.join(REPO, "bin", "bpfnet"), ...args, "--name", LAB, "--state-dir", lab!.stateDir], { encoding: "utf8", timeout: 300_000 });

beforeAll(async () => {
  lab = await startTestLab(LAB, OCTET, "vxlan", 2);
  const up = bpfnet("lab", "k8s", "up", "--port", String(PORT), "--no-virtual-kubelet");
  expect(up.stderr).toBe("");
  expect(up.status).toBe(0);
  expect(up.stdout).toContain(`kubernetes is up: https://${lab.inventory.hosts[0].ssh.host}:${PORT}`);
  api = labKubeAccess(lab.stateDir);
}, 600_000);

afterAll(() => cleanupAll([() => lab?.down()]), 120_000);

test("listens only on the control-plane host's loopback and management address", () => {
  const h1 = lab!.inventory.hosts[0];
  const listening = spawnSync("ip", ["netns", "exec", h1.netns!, "ss", "-Htlnp"], { encoding: "utf8" }).stdout;
  const ours = listening.split("\n").filter((l) => /kube-|etcd/.test(l));
  expect(ours.length).toBeGreaterThanOrEqual(3);
  for (const l of ours) expect(l.split(/\s+/)[3]).toMatch(new RegExp(`^(127\\.0\\.0\\.1|${h1.ssh.host.replace(/\./g, "\\.")}):`));
  // Nothing of it in the root namespace.
  expect(spawnSync("ss", ["-Htlnp"], { encoding: "utf8" }).stdout).not.toMatch(new RegExp(`:${PORT}\\b`));
  const status = bpfnet("lab", "k8s", "status");
  expect(status.status).toBe(0);
  for (const p of ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"]) expect(status.stdout).toMatch(new RegExp(`${p}\\s+pid \\d+ running`));
});

test("TLS with the lab CA and RBAC: the admin kubeconfig works; no certificate, or one from another CA, gets nothing", async () => {
  const kubeconfig = JSON.parse(fs.readFileSync(kubeconfigPath(lab!.stateDir), "utf8"));
  expect(fs.statSync(kubeconfigPath(lab!.stateDir)).mode & 0o777).toBe(0o600);
  expect(kubeconfig.clusters[0].cluster.server).toBe(api.server);
  expect((await kubeRequest(api, "GET", "/api/v1/namespaces")).status).toBe(200);
  const anonymous = await kubeRequest({ ...api, certPem: "", keyPem: "" }, "GET", "/api/v1/namespaces");
  expect(anonymous.status).toBe(403);
  expect(anonymous.body.message).toContain("system:anonymous");
  const { issueCertificate } = await import("../../provider/etcd/pki");
  const otherCa = issueCertificate({ cn: "another CA", isCa: true });
  const stranger = issueCertificate({ cn: "admin", org: "system:masters", issuer: otherCa, clientAuth: true });
  expect((await kubeRequest({ ...api, ...stranger }, "GET", "/api/v1/namespaces")).status).toBe(401);
  // The server's certificate is the lab CA's: a client trusting another CA refuses it.
  await expect(kubeRequest({ ...api, caPem: otherCa.certPem }, "GET", "/readyz")).rejects.toThrow(/self[- ]signed|unable to verify|certificate/i);
});

test("every lab host is a Node, and the scheduler places pods on them", async () => {
  for (const h of lab!.inventory.hosts) {
    const node = await kubeGet(api, `/api/v1/nodes/${h.name}`);
    expect(node.status.addresses).toContainEqual({ type: "InternalIP", address: h.underlayIp });
  }
  const created = await kubeRequest(api, "POST", "/api/v1/namespaces/default/pods", {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "tk2-sched" },
    spec: { nodeSelector: { "kubernetes.io/hostname": "h2" }, tolerations: [{ operator: "Exists" }], containers: [{ name: "c", image: "bpfnet/none:0" }] },
  });
  expect(created.status).toBe(201);
  const bound = await waitFor("the scheduler binds the pod", async () => (await kubeGet(api, "/api/v1/namespaces/default/pods/tk2-sched"))?.spec?.nodeName, 60_000, 250);
  expect(bound).toBe("h2");
  // No kubelet confirms a deletion here: delete it at once.
  expect((await kubeRequest(api, "DELETE", "/api/v1/namespaces/default/pods/tk2-sched", { kind: "DeleteOptions", apiVersion: "v1", gracePeriodSeconds: 0 })).status).toBe(200);
});

const NS = "tk2-agent";
const body = (kind: string, apiVersion: string, metadata: object, rest: object) => ({ apiVersion, kind, metadata, ...rest });
const post = async (p: string, b: object) => {
  const r = await kubeRequest(api, "POST", p, b);
  expect([r.status, r.body?.message]).toEqual([201, undefined]);
};

test("the component's DaemonSet spec is accepted by the API server (privileged admission, validation) and scheduled onto every Node", async () => {
  await post("/api/v1/namespaces", body("Namespace", "v1", { name: NS }, {}));
  await post(`/api/v1/namespaces/${NS}/serviceaccounts`, body("ServiceAccount", "v1", { name: OBJECT_NAMES.serviceAccount }, { automountServiceAccountToken: false }));
  for (const privileged of [false, true]) {
    const name = privileged ? "agent-privileged" : "agent-capabilities";
    const spec = agentDaemonSetSpec({ image: "bpfnet/agent:0.1.0-test", pullPolicy: "Never", privileged, paths: DEFAULT_NODE_PATHS, configHash: "0".repeat(64), serviceAccount: OBJECT_NAMES.serviceAccount });
    // One selector per DaemonSet so the two do not adopt each other's pods.
    const labels = { "app.kubernetes.io/name": name };
    const ds = { ...spec, selector: { matchLabels: labels }, template: { ...spec.template, metadata: { ...(spec.template as { metadata: object }).metadata, labels } } };
    await post(`/apis/apps/v1/namespaces/${NS}/daemonsets`, body("DaemonSet", "apps/v1", { name }, { spec: ds }));
    const pods = await waitFor(`${name}: one pod bound to each Node`, async () => {
      const list = await kubeGet(api, `/api/v1/namespaces/${NS}/pods?labelSelector=${encodeURIComponent(`app.kubernetes.io/name=${name}`)}`);
      const nodes = (list.items as { spec: { nodeName?: string } }[]).map((p) => p.spec.nodeName).filter(Boolean).sort();
      return nodes.length === lab!.inventory.hosts.length ? nodes : undefined;
    }, 120_000, 500);
    expect(pods).toEqual(lab!.inventory.hosts.map((h) => h.name).sort());
    const status = (await kubeGet(api, `/apis/apps/v1/namespaces/${NS}/daemonsets/${name}`)).status;
    expect(status.desiredNumberScheduled).toBe(lab!.inventory.hosts.length);
  }
});

test("the component's RBAC, asked of the API server: the agent reads its ConfigMap and the Nodes, nothing else", async () => {
  await post(`/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/roles`, body("Role", "rbac.authorization.k8s.io/v1", { name: OBJECT_NAMES.role }, { rules: AGENT_ROLE_RULES }));
  const subjects = [{ kind: "ServiceAccount", name: OBJECT_NAMES.serviceAccount, namespace: NS }];
  await post(`/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/rolebindings`, body("RoleBinding", "rbac.authorization.k8s.io/v1", { name: OBJECT_NAMES.role }, { roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: OBJECT_NAMES.role }, subjects }));
  await post("/apis/rbac.authorization.k8s.io/v1/clusterroles", body("ClusterRole", "rbac.authorization.k8s.io/v1", { name: `bpfnet-agent-${NS}` }, { rules: AGENT_CLUSTER_ROLE_RULES }));
  await post("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", body("ClusterRoleBinding", "rbac.authorization.k8s.io/v1", { name: `bpfnet-agent-${NS}` }, { roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: `bpfnet-agent-${NS}` }, subjects }));
  const can = serviceAccountCan(api, NS, OBJECT_NAMES.serviceAccount);
  // RBAC is cached by the API server's informers: wait for the grant to show before judging refusals.
  await waitFor("the agent's grants in effect", () => can("get", "configmaps", OBJECT_NAMES.configMap), 30_000, 250);
  expect(await can("watch", "configmaps", OBJECT_NAMES.configMap)).toBe(true);
  expect(await can("list", "nodes", undefined, undefined)).toBe(true);
  expect(await can("get", "configmaps", "kube-root-ca.crt")).toBe(false);
  expect(await can("get", "secrets", OBJECT_NAMES.secret)).toBe(false);
  expect(await can("update", "configmaps", OBJECT_NAMES.configMap)).toBe(false);
  expect(await can("create", "pods")).toBe(false);
  expect(await can("patch", "nodes", "h1", undefined)).toBe(false);
  expect(await can("get", "configmaps", OBJECT_NAMES.configMap, "default")).toBe(false);
});

test("up again is a no-op; lab down leaves no process, file or namespace", async () => {
  const before = readKubernetesState(lab!.stateDir)!;
  const again = bpfnet("lab", "k8s", "up", "--port", String(PORT), "--no-virtual-kubelet");
  expect(again.status).toBe(0);
  expect(readKubernetesState(lab!.stateDir)!.processes).toEqual(before.processes);
  const netns = lab!.inventory.hosts[0].netns!;
  lab!.down();
  for (const [name, pid] of Object.entries(before.processes)) expect([name, pidAlive(pid)]).toEqual([name, false]);
  expect(pidsInNetns(netns)).toEqual([]);
  expect(fs.existsSync(kubernetesStatePath(lab!.stateDir))).toBe(false);
  expect(fs.existsSync(lab!.stateDir)).toBe(false);
  lab = undefined;
});
