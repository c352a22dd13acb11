// A real Kubernetes control plane for a lab: its own etcd, kube-apiserver (TLS from a lab CA,
// RBAC, client-certificate identities), kube-controller-manager and kube-scheduler, all inside
// the first host's namespace (the "control-plane host"): etcd on that namespace's own loopback,
// the API server on the host's management address only (the root namespace reaches it over the
// management bridge). Each lab host registers as a Node: with `kubelet`, through a real kubelet
// with containerd and runc in the host's namespaces (lab/kubelet.ts: pods run, networked by the
// cluster's CNI); else through a virtual-kubelet in its own namespace when that binary is built
// (pods are reported Running, nothing executes), else as a plain Node object. Every process lives in a lab namespace and every file below the lab's state
// directory, so `lab down` removes it all. Binaries: scripts/build-kubernetes.sh.
import { execFileSync, spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { issueCertificate, CertAndKey } from "../provider/etcd/pki";
import { Inventory } from "./inventory";
import { inventoryPath } from "./lab";
import { KubeAccess, kubeconfigYaml, kubeGet, kubeRequest } from "./kubeApi";
import { pidAlive, signal, sleepMs } from "./sh";
import { findUp } from "../bpf/paths";
import { LAB_BUSYBOX_IMAGE, LAB_PAUSE_IMAGE, removeNodeMountTargets, startKubeletNode, stopKubeletNode } from "./kubelet";

export const K8S_VERSION = "v1.34.4";
export const VIRTUAL_KUBELET_VERSION = "v1.14.1";
const CACHE = process.env.BPFNET_CACHE ?? "/var/cache/bpfnet";
/** Where scripts/build-kubernetes.sh puts kube-apiserver, kube-controller-manager, kube-scheduler. */
export const KUBERNETES_BIN_DIR = process.env.BPFNET_K8S_BIN ?? path.join(CACHE, `k8s-${K8S_VERSION}`, "bin");
export const VIRTUAL_KUBELET_BIN = path.join(CACHE, `virtual-kubelet-${VIRTUAL_KUBELET_VERSION}`, "bin", "virtual-kubelet");
export const DEFAULT_API_PORT = 16443;
/** The control plane's etcd, on the control-plane host's own loopback (never the network's etcd). */
const ETCD_CLIENT_PORT = 12379;
const ETCD_PEER_PORT = 12380;
const SERVICE_CIDR = "10.96.0.0/16";

/** What `lab k8s up` writes to <lab>/kubernetes.json beside the inventory. */
export interface LabKubernetes {
  server: string;
  /** The admin kubeconfig (system:masters), written beside the inventory. */
  kubeconfigPath: string;
  /** Host whose namespace runs the control plane. */
  controlPlaneHost: string;
  /** Lab hosts registered as Nodes, and how ("kubelet" runs pods with containerd + runc; "virtual-kubelet" reports pods Running; "node-object" is a Node without a kubelet). */
  nodes: string[];
  nodeKind: "kubelet" | "virtual-kubelet" | "node-object";
  /** The lab's name (its nodes' cgroups are named for it). */
  lab?: string;
  /** Control-plane and kubelet processes (pids), for status. */
  processes: Record<string, number>;
}

export const kubernetesStatePath = (stateDir: string) => path.join(stateDir, "kubernetes.json");
export const kubeconfigPath = (stateDir: string) => path.join(stateDir, "kubeconfig");
const pkiDir = (stateDir: string) => path.join(stateDir, "k8s", "pki");

/** The admin identity of a lab's API server (from the files `lab k8s up` wrote). */
export function labKubeAccess(stateDir: string): KubeAccess {
  const state = readKubernetesState(stateDir);
  if (!state) throw new Error(`no Kubernetes control plane in ${stateDir} (run: bpfnet lab k8s up)`);
  const pki = pkiDir(stateDir);
  const read = (f: string) => fs.readFileSync(path.join(pki, f), "utf8");
  return { server: state.server, caPem: read("ca.crt"), certPem: read("admin.crt"), keyPem: read("admin.key") };
}

export function readKubernetesState(stateDir: string): LabKubernetes | undefined {
  try {
    return JSON.parse(fs.readFileSync(kubernetesStatePath(stateDir), "utf8")) as LabKubernetes;
  } catch {
    return undefined;
  }
}

/** The binaries a control plane (and real nodes: kubelet, containerd, runc, ctr) needs that are missing (scripts/setup builds or installs them). */
export function missingKubernetesBinaries(kubelet = false): string[] {
  const bins = ["kube-apiserver", "kube-controller-manager", "kube-scheduler", ...(kubelet ? ["kubelet"] : [])].map((b) => path.join(KUBERNETES_BIN_DIR, b));
  if (kubelet) bins.push("/usr/bin/containerd", "/usr/bin/containerd-shim-runc-v2", "/usr/bin/ctr", "/usr/sbin/runc", "/usr/lib/cni/loopback", "/bin/busybox");
  return bins.filter((b) => !fs.existsSync(b));
}

export interface LabKubernetesOptions {
  /** API server port on the control-plane host's management address (default 16443). */
  port?: number;
  /** Register hosts through virtual-kubelet when built (default true); false: plain Node objects. */
  virtualKubelet?: boolean;
  /** A real kubelet with containerd + runc on every host (default false): pods run, networked by the cluster's CNI. */
  kubelet?: boolean;
}

/** Starts the lab's control plane and registers its hosts as Nodes; an existing healthy one is returned as is. */
export async function labKubernetesUp(stateDir: string, options: LabKubernetesOptions = {}): Promise<LabKubernetes> {
  const inventory = JSON.parse(fs.readFileSync(inventoryPath(stateDir), "utf8")) as Inventory;
  const existing = readKubernetesState(stateDir);
  if (existing && Object.values(existing.processes).every(pidAlive)) return existing;
  if (existing) labKubernetesDown(stateDir);
  const missing = missingKubernetesBinaries(options.kubelet);
  if (missing.length) throw new Error(`lab ${inventory.lab}: Kubernetes binaries missing: ${missing.join(", ")} (run: bash scripts/setup, which builds them)`);
  const port = options.port ?? DEFAULT_API_PORT;
  if (!Number.isInteger(port) || port < 1024 || port > 65535) throw new Error(`lab k8s: --port must be an integer from 1024 to 65535, got ${JSON.stringify(options.port)}`);
  const cp = inventory.hosts[0];
  if (!cp?.netns) throw new Error(`lab ${inventory.lab}: the inventory has no host namespace to run the control plane in`);
  const address = cp.ssh.host; // the management address: reachable from the root namespace only through the lab's bridge
  const server = `https://${address}:${port}`;

  const dir = path.join(stateDir, "k8s");
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const pki = writePki(pkiDir(stateDir), inventory, address);
  const access: KubeAccess = { server, caPem: pki.ca.certPem, certPem: pki.admin.certPem, keyPem: pki.admin.keyPem };
  const kubeconfigs = {
    admin: writeFile(kubeconfigPath(stateDir), kubeconfigYaml(inventory.lab, access, "admin")),
    controllerManager: writeFile(path.join(dir, "controller-manager.kubeconfig"), kubeconfigYaml(inventory.lab, { ...access, ...pki.controllerManager }, "system:kube-controller-manager")),
    scheduler: writeFile(path.join(dir, "scheduler.kubeconfig"), kubeconfigYaml(inventory.lab, { ...access, ...pki.scheduler }, "system:kube-scheduler")),
  };
  const p = (f: string) => path.join(pkiDir(stateDir), f);
  const processes: Record<string, number> = {};
  const state: LabKubernetes = { server, kubeconfigPath: kubeconfigs.admin, controlPlaneHost: cp.name, nodes: [], nodeKind: "node-object", processes, lab: inventory.lab };
  const save = () => writeFile(kubernetesStatePath(stateDir), JSON.stringify(state, null, 2));
  save(); // first, so a failed start is still cleaned up by down
  try {
    const bin = (b: string) => path.join(KUBERNETES_BIN_DIR, b);
    processes.etcd = startDaemon(cp.netns, dir, "etcd", "/usr/bin/etcd", [
      "--name", "k8s", "--data-dir", path.join(dir, "etcd"),
      "--listen-client-urls", `http://127.0.0.1:${ETCD_CLIENT_PORT}`, "--advertise-client-urls", `http://127.0.0.1:${ETCD_CLIENT_PORT}`,
      "--listen-peer-urls", `http://127.0.0.1:${ETCD_PEER_PORT}`, "--initial-advertise-peer-urls", `http://127.0.0.1:${ETCD_PEER_PORT}`,
      "--initial-cluster", `k8s=http://127.0.0.1:${ETCD_PEER_PORT}`
    ]);
    processes["kube-apiserver"] = startDaemon(cp.netns, dir, "kube-apiserver", bin("kube-apiserver"), [
      `--bind-address=${address}`, `--advertise-address=${address}`, `--secure-port=${port}`,
      `--etcd-servers=http://127.0.0.1:${ETCD_CLIENT_PORT}`,
      `--tls-cert-file=${p("apiserver.crt")}`, `--tls-private-key-file=${p("apiserver.key")}`, `--client-ca-file=${p("ca.crt")}`,
      "--service-account-issuer=https://kubernetes.default.svc", `--service-account-key-file=${p("sa.key")}`, `--service-account-signing-key-file=${p("sa.key")}`,
      "--authorization-mode=Node,RBAC", "--allow-privileged=true", `--service-cluster-ip-range=${SERVICE_CIDR}`,
      "--enable-priority-and-fairness=false", "--endpoint-reconciler-type=none", "--profiling=false",
      // exec, logs: the API server reaches kubelets on their InternalIP, verifies them by the lab CA.
      `--kubelet-client-certificate=${p("apiserver-kubelet-client.crt")}`, `--kubelet-client-key=${p("apiserver-kubelet-client.key")}`,
      `--kubelet-certificate-authority=${p("ca.crt")}`, "--kubelet-preferred-address-types=InternalIP",
    ]);
    await waitReady(access, "/readyz", 120_000, () => processes["kube-apiserver"]);
    processes["kube-controller-manager"] = startDaemon(cp.netns, dir, "kube-controller-manager", bin("kube-controller-manager"), [
      `--kubeconfig=${kubeconfigs.controllerManager}`,
      "--controllers=*,-nodeipam,-cloud-node-lifecycle", "--secure-port=0", "--leader-elect=false", "--use-service-account-credentials=true",
      `--service-account-private-key-file=${p("sa.key")}`, `--root-ca-file=${p("ca.crt")}`, "--profiling=false",
    ]);
    processes["kube-scheduler"] = startDaemon(cp.netns, dir, "kube-scheduler", bin("kube-scheduler"), [
      `--kubeconfig=${kubeconfigs.scheduler}`,
      "--secure-port=0", "--leader-elect=false", "--profiling=false",
    ]);
    save();
    const useVk = !options.kubelet && (options.virtualKubelet ?? true) && fs.existsSync(VIRTUAL_KUBELET_BIN);
    state.nodeKind = options.kubelet ? "kubelet" : useVk ? "virtual-kubelet" : "node-object";
    const images = options.kubelet ? buildNodeImages(path.join(dir, "images")) : [];
    for (const h of inventory.hosts) {
      if (options.kubelet) {
        const nodeDir = path.join(dir, `node-${h.name}`);
        processes[`kubelet-${h.name}`] = startKubeletNode(
          {
            lab: inventory.lab, host: h.name, netns: h.netns!, nodeIp: h.underlayIp, dir: nodeDir, labRoot: path.dirname(stateDir), images,
            kubeconfigYaml: kubeconfigYaml(inventory.lab, { ...access, ...pki.kubelets[h.name] }, `system:node:${h.name}`),
            caFile: p("ca.crt"), certPem: pki.kubelets[h.name].certPem, keyPem: pki.kubelets[h.name].keyPem,
          },
          bin("kubelet"),
        );
      } else if (useVk) processes[`virtual-kubelet-${h.name}`] = startVirtualKubelet(stateDir, h.netns!, h.name, h.underlayIp, access, pki);
      else await createNodeObject(access, h.name, h.underlayIp);
      state.nodes.push(h.name);
      save();
    }
    for (const h of inventory.hosts) {
      await waitReady(access, `/api/v1/nodes/${encodeURIComponent(h.name)}`, 120_000, () => processes[`kubelet-${h.name}`] ?? processes[`virtual-kubelet-${h.name}`] ?? processes["kube-apiserver"]);
    }
    // The service account controller makes "default" in each namespace: pods cannot be created before it.
    await waitReady(access, "/api/v1/namespaces/default/serviceaccounts/default", 120_000, () => processes["kube-controller-manager"]);
    save();
    return state;
  } catch (e) {
    labKubernetesDown(stateDir);
    throw e;
  }
}

/** Stops the control plane and its kubelets, and removes its files (the lab stays up). `lab down` does the same as part of removing the lab. */
export function labKubernetesDown(stateDir: string): void {
  const state = readKubernetesState(stateDir);
  if (!state) return;
  // Real nodes first: their pods live outside the lab's namespaces.
  if (state.nodeKind === "kubelet" && state.lab) {
    for (const host of state.nodes.length ? state.nodes : Object.keys(state.processes).filter((k) => k.startsWith("kubelet-")).map((k) => k.slice(8))) stopKubeletNode(state.lab, host);
    removeNodeMountTargets(state.lab, path.dirname(stateDir));
  }
  const pids = Object.values(state.processes);
  for (const pid of pids) signal(pid, "SIGTERM");
  const deadline = Date.now() + 5000;
  while (pids.some(pidAlive) && Date.now() < deadline) sleepMs(50);
  for (const pid of pids.filter(pidAlive)) signal(pid, "SIGKILL");
  fs.rmSync(path.join(stateDir, "k8s"), { recursive: true, force: true });
  fs.rmSync(kubeconfigPath(stateDir), { force: true });
  fs.rmSync(kubernetesStatePath(stateDir), { force: true });
}

interface LabPki {
  ca: CertAndKey;
  admin: CertAndKey;
  controllerManager: CertAndKey;
  scheduler: CertAndKey;
  kubelets: Record<string, CertAndKey>;
}

/** The lab CA and every identity: admin (system:masters), the controllers, each kubelet (system:nodes), the API server's serving certificate. */
function writePki(dir: string, inventory: Inventory, address: string): LabPki {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ca = issueCertificate({ cn: `${inventory.lab} kubernetes CA`, isCa: true });
  const client = (cn: string, org: string) => issueCertificate({ cn, org, issuer: ca, clientAuth: true });
  const apiserver = issueCertificate({
    cn: "kube-apiserver", issuer: ca, serverAuth: true,
    ips: [address, "127.0.0.1", "10.96.0.1"], dns: ["kubernetes", "kubernetes.default", "kubernetes.default.svc", "localhost"],
  });
  const pki: LabPki = {
    ca,
    admin: client("admin", "system:masters"),
    controllerManager: client("system:kube-controller-manager", "bpfnet-lab"),
    scheduler: client("system:kube-scheduler", "bpfnet-lab"),
    // Node authorization: a kubelet is system:node:<name> in system:nodes; its certificate also serves its API.
    kubelets: Object.fromEntries(
      inventory.hosts.map((h) => [h.name, issueCertificate({ cn: `system:node:${h.name}`, org: "system:nodes", issuer: ca, clientAuth: true, serverAuth: true, ips: [h.ssh.host, h.underlayIp] })]),
    ),
  };
  const sa = issueCertificate({ cn: "service-accounts", issuer: ca });
  // The API server's identity towards kubelets (exec, logs, port-forward): the kubelet API's admin.
  const kubeletClient = issueCertificate({ cn: "kube-apiserver-kubelet-client", org: "system:masters", issuer: ca, clientAuth: true });
  const files: Record<string, string> = {
    "ca.crt": ca.certPem, "ca.key": ca.keyPem, "apiserver.crt": apiserver.certPem, "apiserver.key": apiserver.keyPem,
    "admin.crt": pki.admin.certPem, "admin.key": pki.admin.keyPem, "sa.key": sa.keyPem,
    "apiserver-kubelet-client.crt": kubeletClient.certPem, "apiserver-kubelet-client.key": kubeletClient.keyPem,
  };
  for (const [h, c] of Object.entries(pki.kubelets)) Object.assign(files, { [`kubelet-${h}.crt`]: c.certPem, [`kubelet-${h}.key`]: c.keyPem });
  for (const [f, text] of Object.entries(files)) writeFile(path.join(dir, f), text);
  return pki;
}

/** A daemon inside a namespace, detached from this process, logging to <dir>/<name>.log. */
function startDaemon(netns: string, dir: string, name: string, binary: string, args: string[], env: Record<string, string> = {}): number {
  const log = fs.openSync(path.join(dir, `${name}.log`), "a", 0o600);
  const child = spawn("ip", ["netns", "exec", netns, binary, ...args], { detached: true, stdio: ["ignore", log, log], env: { ...process.env, ...env } });
  fs.closeSync(log);
  child.unref();
  if (!child.pid) throw new Error(`cannot start ${name} in ${netns}`);
  return child.pid;
}

/** What a lab Node offers the scheduler (virtual-kubelet's mock reports the same). */
const NODE_CAPACITY = { cpu: "2", memory: "4Gi", pods: "110" };

/** virtual-kubelet with its mock provider registers `node` and reports its pods Running; its API listens in the host's own namespace. */
function startVirtualKubelet(stateDir: string, netns: string, node: string, nodeIp: string, access: KubeAccess, pki: LabPki): number {
  const dir = path.join(stateDir, "k8s", `vk-${node}`);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const kubeconfig = writeFile(path.join(dir, "kubeconfig"), kubeconfigYaml("lab", { ...access, ...pki.kubelets[node] }, `system:node:${node}`));
  const providerConfig = writeFile(path.join(dir, "mock.json"), JSON.stringify({ [node]: NODE_CAPACITY }));
  const cert = writeFile(path.join(dir, "kubelet.crt"), pki.kubelets[node].certPem);
  const key = writeFile(path.join(dir, "kubelet.key"), pki.kubelets[node].keyPem);
  return startDaemon(netns, dir, "virtual-kubelet", VIRTUAL_KUBELET_BIN,
    ["--provider", "mock", "--provider-config", providerConfig, "--nodename", node, "--kubeconfig", kubeconfig, "--disable-taint", "--metrics-addr", `${nodeIp}:10255`],
    // With a CA, its API accepts only clients with a lab certificate (without one it would serve anyone).
    { APISERVER_CERT_LOCATION: cert, APISERVER_KEY_LOCATION: key, APISERVER_CA_CERT_LOCATION: path.join(pkiDir(stateDir), "ca.crt"), VKUBELET_POD_IP: nodeIp, KUBELET_PORT: "10250", KUBECONFIG: kubeconfig });
}

/** The images a real node imports (no registry is reachable): the agent's, built from the agent bundle (the component's default tag), the sandbox's and the test pods'. */
function buildNodeImages(dir: string): string[] {
  fs.mkdirSync(dir, { recursive: true });
  const script = (name: string) => {
    const f = findUp(path.join("scripts", name));
    if (!f) throw new Error(`lab k8s: scripts/${name} not found above ${__dirname}`);
    return f;
  };
  const agent = path.join(dir, "agent.tar");
  execFileSync(process.execPath, [script("build-agent-image.js"), "--out", agent, "--quiet"], { stdio: ["ignore", "ignore", "pipe"] });
  execFileSync(process.execPath, [script("build-lab-images.js"), "--out-dir", dir, "--pause", LAB_PAUSE_IMAGE, "--busybox", LAB_BUSYBOX_IMAGE], { stdio: ["ignore", "ignore", "pipe"] });
  return [agent, path.join(dir, "pause.tar"), path.join(dir, "busybox.tar")];
}

/** A Node object for a host without a kubelet: scheduling sees it; nothing runs its pods. */
async function createNodeObject(access: KubeAccess, name: string, address: string): Promise<void> {
  const r = await kubeRequest(access, "POST", "/api/v1/nodes", {
    apiVersion: "v1",
    kind: "Node",
    metadata: { name, labels: { "kubernetes.io/hostname": name, "kubernetes.io/os": "linux" } },
    // Capacity as a kubelet would report it: without "pods" the scheduler fits nothing here.
    status: { addresses: [{ type: "InternalIP", address }, { type: "Hostname", address: name }], capacity: NODE_CAPACITY, allocatable: NODE_CAPACITY },
  });
  if (r.status !== 201 && r.status !== 409) throw new Error(`creating Node ${name}: HTTP ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
}

async function waitReady(access: KubeAccess, apiPath: string, timeoutMs: number, pid: () => number | undefined): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  for (;;) {
    const p = pid();
    if (p !== undefined && !pidAlive(p)) throw new Error(`waiting for ${access.server}${apiPath}: the process it needs (pid ${p}) exited; see its log under the lab's k8s/ directory`);
    try {
      if (apiPath === "/readyz") {
        const r = await kubeRequest(access, "GET", apiPath, undefined, 5000);
        if (r.status === 200) return;
        last = `HTTP ${r.status}`;
      } else if (await kubeGet(access, apiPath)) return;
    } catch (e) {
      last = (e as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`waiting for ${access.server}${apiPath}: not ready in ${timeoutMs} ms (${last})`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

function writeFile(file: string, text: string): string {
  fs.writeFileSync(file, text, { mode: 0o600 });
  return file;
}
