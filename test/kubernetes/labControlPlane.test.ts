// The lab's Kubernetes control plane (lab tk2): `bpfnet lab k8s up` starts etcd, kube-apiserver
// (TLS from the lab CA, RBAC), controller-manager and scheduler inside the first host's namespace,
// listening only on that namespace's loopback and the host's management address; the admin
// kubeconfig works and nothing else gets in; every lab host is a Node and the scheduler places
// pods on them; `lab k8s up` again is a no-op; `lab down` leaves no process, file or namespace.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { KubeAccess, kubeGet, kubeRequest } from "../../lab/kubeApi";
import { kubeconfigPath, kubernetesStatePath, labKubeAccess, readKubernetesState } from "../../lab/kubernetes";
import { pidAlive, pidsInNetns } from "../../lab/sh";
import { startTestLab, TestLab } from "../support/lab";
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
