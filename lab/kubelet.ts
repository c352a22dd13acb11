// Real Kubernetes nodes on lab hosts: on each host a kubelet with Debian's containerd and runc,
// pods networked by whatever CNI the cluster installs (bpfnet's, through its DaemonSet).
//
// Lab hosts are network namespaces sharing one filesystem, and several kubelets on one kernel
// would collide on fixed paths, so each host's runtime lives in a mount namespace of its own
// (nsenter into the host's netns, then unshare -m), made by one supervisor shell that starts
// containerd and then the kubelet as its children:
//   - private copies of the paths a node owns: /opt/cni/bin, /etc/cni/net.d (the runtime's CNI
//     directories, where the agent's init container installs the plugin), /var/lib/bpfnet and
//     /opt/bpfnet (the agent's state and release), /run/containerd (shim sockets),
//     /var/log/containers (kubelet's log links): per-host directories bind-mounted over them;
//   - a fresh bpffs on /sys/fs/bpf and a tmpfs on /run/netns (the pods' namespaces), gone with
//     the mount namespace;
//   - the kernel settings the kubelet insists on (vm.overcommit_memory=1, kernel.panic=10,
//     kernel.panic_on_oops=1) shadowed by files holding those values: the kubelet reads what it
//     expects and never rewrites this machine's sysctls;
//   - everything else (containerd's root and state, the kubelet's root dir and pod logs, volume
//     plugins) configured below the lab's state directory.
// cgroups (v1 here, cgroupfs driver): each node gets /bpfnet-lab-<lab>-<host> in every hierarchy
// (the kubelet's cgroupRoot; the runtime in its "runtime" child), so stopping a node kills every
// process in that subtree (pods included: they live in their own netns, out of `lab down`'s
// reach otherwise) and removes it.
import { spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { shellQuote, shellWords } from "../provider/common/shell";
import { signal, sleepMs } from "./sh";

/** Images the lab's containerd gets besides the agent's (scripts/build-lab-images.js). */
export const LAB_PAUSE_IMAGE = "bpfnet-lab/pause:1";
export const LAB_BUSYBOX_IMAGE = "bpfnet-lab/busybox:1.35";
const CGROUP_ROOT = "/sys/fs/cgroup";
const CNI_LOOPBACK = "/usr/lib/cni/loopback";

/** Node paths given a private per-host copy (mount target → directory name under the node's dir). */
export const NODE_PRIVATE_DIRS: Record<string, string> = {
  "/opt/cni/bin": "cni-bin",
  "/etc/cni/net.d": "cni-conf",
  "/var/lib/bpfnet": "bpfnet-state",
  "/opt/bpfnet": "bpfnet-install",
  "/run/containerd": "run-containerd",
  "/var/log/containers": "log-containers",
};

/** The node's private directories: NODE_PRIVATE_DIRS, and an empty /lib/modules where this machine has none or an empty one (a kernel without modules; pods mount it). */
export function nodePrivateDirs(machineModules = fs.existsSync("/lib/modules") ? fs.readdirSync("/lib/modules") : []): Record<string, string> {
  return machineModules.length ? NODE_PRIVATE_DIRS : { ...NODE_PRIVATE_DIRS, "/lib/modules": "lib-modules" };
}

/** What the kubelet's container manager requires (container_manager_linux.go, setupKernelTunables). */
export const KUBELET_SYSCTLS: Record<string, string> = {
  "vm/overcommit_memory": "1",
  "vm/panic_on_oom": "0",
  "kernel/panic": "10",
  "kernel/panic_on_oops": "1",
  "kernel/keys/root_maxkeys": "1000000",
  "kernel/keys/root_maxbytes": "25000000",
};

/** One lab host as a real node. */
export interface KubeletNodeSpec {
  lab: string;
  host: string;
  netns: string;
  /** The node's InternalIP and the kubelet's serving address (the host's underlay address). */
  nodeIp: string;
  /** <lab>/k8s/node-<host>: every file of this node. */
  dir: string;
  /** The directory the labs live in (the parent of the lab's state directory). */
  labRoot: string;
  kubeconfigYaml: string;
  caFile: string;
  certPem: string;
  keyPem: string;
  /** Image tars to import into containerd's k8s.io namespace before the kubelet starts. */
  images: string[];
}

/** The node's cgroup (in every v1 hierarchy): the kubelet's cgroupRoot. */
export const nodeCgroup = (lab: string, host: string) => `bpfnet-lab-${lab}-${host}`;
const socketOf = (dir: string) => path.join(dir, "containerd.sock");

/** containerd 1.6's config for one node: its own root, state, socket, sandbox image and CNI directories. */
export function containerdConfig(dir: string): string {
  const q = (s: string) => JSON.stringify(s); // TOML basic strings are JSON strings
  return [
    "version = 2",
    `root = ${q(path.join(dir, "containerd", "root"))}`,
    `state = ${q(path.join(dir, "containerd", "state"))}`,
    `disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]`,
    "[grpc]",
    `  address = ${q(socketOf(dir))}`,
    "[ttrpc]",
    `  address = ${q(path.join(dir, "containerd.ttrpc.sock"))}`,
    "[metrics]",
    `  address = ""`,
    `[plugins."io.containerd.internal.v1.opt"]`,
    `  path = ${q(path.join(dir, "containerd", "opt"))}`,
    `[plugins."io.containerd.grpc.v1.cri"]`,
    `  sandbox_image = ${q(`docker.io/${LAB_PAUSE_IMAGE}`)}`,
    "  enable_selinux = false",
    "  disable_apparmor = true",
    // Lowering an OOM score (the kubelet asks -997/-998 for critical pods) needs CAP_SYS_RESOURCE in
    // the initial user namespace, which a sandboxed machine may not grant: keep pods at or above ours.
    "  restrict_oom_score_adj = true",
    `  [plugins."io.containerd.grpc.v1.cri".containerd]`,
    `    snapshotter = "overlayfs"`,
    `    default_runtime_name = "runc"`,
    `    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]`,
    `      runtime_type = "io.containerd.runc.v2"`,
    `      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]`,
    "        SystemdCgroup = false",
    `  [plugins."io.containerd.grpc.v1.cri".cni]`,
    `    bin_dir = "/opt/cni/bin"`,
    `    conf_dir = "/etc/cni/net.d"`,
    "",
  ].join("\n");
}

/** The kubelet's configuration: serving on the node's address only (lab-CA clients, authorized by the API server), cgroupfs under the node's own cgroup, paths below the node's directory. */
export function kubeletConfig(spec: Pick<KubeletNodeSpec, "lab" | "host" | "nodeIp" | "dir" | "caFile">): Record<string, unknown> {
  return {
    kind: "KubeletConfiguration",
    apiVersion: "kubelet.config.k8s.io/v1beta1",
    address: spec.nodeIp,
    port: 10250,
    readOnlyPort: 0,
    healthzBindAddress: "127.0.0.1",
    healthzPort: 10248,
    tlsCertFile: path.join(spec.dir, "kubelet.crt"),
    tlsPrivateKeyFile: path.join(spec.dir, "kubelet.key"),
    authentication: { anonymous: { enabled: false }, webhook: { enabled: true }, x509: { clientCAFile: spec.caFile } },
    authorization: { mode: "Webhook" },
    containerRuntimeEndpoint: `unix://${socketOf(spec.dir)}`,
    cgroupDriver: "cgroupfs",
    cgroupRoot: `/${nodeCgroup(spec.lab, spec.host)}`,
    cgroupsPerQOS: true,
    enforceNodeAllocatable: ["pods"],
    failSwapOn: false,
    failCgroupV1: false,
    podLogsDir: path.join(spec.dir, "pod-logs"),
    volumePluginDir: path.join(spec.dir, "volume-plugins"),
    resolvConf: "",
    // Lab nodes share this machine's disk and memory: evict nothing, collect no images.
    evictionHard: { "memory.available": "1Mi", "nodefs.available": "1%", "imagefs.available": "1%", "nodefs.inodesFree": "1%" },
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    localStorageCapacityIsolation: false,
    serializeImagePulls: false,
    registerNode: true,
  };
}

/** The cgroup v1 hierarchies mounted under /sys/fs/cgroup (the kubelet runs on v1 here). */
export function cgroupHierarchies(mounts = fs.readFileSync("/proc/self/mounts", "utf8")): string[] {
  return mounts
    .split("\n")
    .map((l) => l.split(" "))
    .filter((f) => f[2] === "cgroup" && f[1]?.startsWith(`${CGROUP_ROOT}/`))
    .map((f) => f[1]);
}

/** The supervisor: the node's mount namespace, then containerd, its images, then the kubelet. Every word quoted by the one shell helper. */
export function nodeScript(spec: KubeletNodeSpec, hierarchies: string[]): string {
  const d = spec.dir;
  const cg = nodeCgroup(spec.lab, spec.host);
  const lines = [
    "set -eu",
    ...hierarchies.map((h) => `echo $$ > ${shellQuote(path.join(h, cg, "runtime", "cgroup.procs"))}`),
    "mount --make-rshared /",
    "mount -t bpf bpf /sys/fs/bpf",
    "mount -t tmpfs -o mode=0755 tmpfs /run/netns",
    ...Object.entries(nodePrivateDirs()).map(([target, name]) => shellWords(["mount", "--bind", path.join(d, "private", name), target])),
    ...Object.keys(KUBELET_SYSCTLS).map((k) => shellWords(["mount", "--bind", path.join(d, "sysctl", k.replace(/\//g, ".")), `/proc/sys/${k}`])),
    `${shellWords(["containerd", "--config", path.join(d, "containerd.toml")])} >> ${shellQuote(path.join(d, "containerd.log"))} 2>&1 &`,
    `i=0; until ${shellWords(["ctr", "--address", socketOf(d), "version"])} >/dev/null 2>&1; do i=$((i+1)); [ $i -lt 600 ] || { echo "containerd did not start" >&2; exit 1; }; sleep 0.1; done`,
    ...spec.images.map((img) => `${shellWords(["ctr", "--address", socketOf(d), "-n", "k8s.io", "images", "import", img])} >> ${shellQuote(path.join(d, "images.log"))} 2>&1`),
    `${shellWords([
      "kubelet", "--config", path.join(d, "kubelet.json"), "--kubeconfig", path.join(d, "kubeconfig"), "--hostname-override", spec.host,
      "--node-ip", spec.nodeIp, "--root-dir", path.join(d, "kubelet"), "--node-labels", `bpfnet.io/lab=${spec.lab}`,
    ])} >> ${shellQuote(path.join(d, "kubelet.log"))} 2>&1 &`,
    "wait",
  ];
  return lines.join("\n") + "\n";
}

/** Writes the node's files, makes its cgroups and mount targets, and starts its supervisor in the host's namespaces; returns the supervisor's pid. */
export function startKubeletNode(spec: KubeletNodeSpec, kubeletBin: string): number {
  const d = spec.dir;
  fs.mkdirSync(d, { recursive: true, mode: 0o700 });
  for (const sub of ["containerd", "kubelet", "pod-logs", "volume-plugins", "sysctl", ...Object.values(nodePrivateDirs()).map((n) => `private/${n}`)]) fs.mkdirSync(path.join(d, sub), { recursive: true });
  // The runtime's own loopback plugin beside whatever the cluster's CNI installs.
  fs.copyFileSync(CNI_LOOPBACK, path.join(d, "private", "cni-bin", "loopback"));
  fs.chmodSync(path.join(d, "private", "cni-bin", "loopback"), 0o755);
  for (const [k, v] of Object.entries(KUBELET_SYSCTLS)) fs.writeFileSync(path.join(d, "sysctl", k.replace(/\//g, ".")), `${v}\n`);
  const write = (f: string, text: string) => fs.writeFileSync(path.join(d, f), text, { mode: 0o600 });
  write("containerd.toml", containerdConfig(d));
  write("kubelet.json", JSON.stringify(kubeletConfig(spec), null, 2));
  write("kubeconfig", spec.kubeconfigYaml);
  write("kubelet.crt", spec.certPem);
  write("kubelet.key", spec.keyPem);
  const hierarchies = cgroupHierarchies();
  makeNodeCgroups(nodeCgroup(spec.lab, spec.host), hierarchies);
  for (const target of [...Object.keys(nodePrivateDirs()), "/run/netns"]) ensureMountTarget(spec.labRoot, spec.lab, target);
  write("node.sh", nodeScript(spec, hierarchies));
  const log = fs.openSync(path.join(d, "node.log"), "a", 0o600);
  const env = { ...process.env, PATH: `${path.dirname(kubeletBin)}:/usr/sbin:/usr/bin:/sbin:/bin` };
  const child = spawn("nsenter", [`--net=/run/netns/${spec.netns}`, "unshare", "--mount", "--propagation", "private", "/bin/sh", path.join(d, "node.sh")], {
    detached: true,
    stdio: ["ignore", log, log],
    env,
  });
  fs.closeSync(log);
  child.unref();
  if (!child.pid) throw new Error(`cannot start the kubelet node ${spec.host} in ${spec.netns}`);
  return child.pid;
}

/** Kills every process of a lab host's node (runtime, kubelet, shims, pods) and removes its cgroups. A node never started: nothing to do. */
export function stopKubeletNode(lab: string, host: string, hierarchies = cgroupHierarchies()): void {
  const cg = nodeCgroup(lab, host);
  const dirs = hierarchies.map((h) => path.join(h, cg)).filter((p) => fs.existsSync(p));
  if (!dirs.length) return;
  const deadline = Date.now() + 20_000;
  for (;;) {
    const pids = dirs.flatMap(procsBelow);
    if (!pids.length) break;
    if (Date.now() > deadline) throw new Error(`node ${host} of lab ${lab}: processes ${pids.join(", ")} outlive SIGKILL`);
    for (const pid of pids) signal(pid, "SIGKILL");
    sleepMs(50);
  }
  for (const dir of dirs) removeCgroupTree(dir, deadline);
}

/** Removes the mount targets this lab's nodes created on the shared filesystem, once no other lab runs kubelet nodes (they would lose their mount points). */
export function removeNodeMountTargets(lab: string, labRoot: string): void {
  const mine = createdTargetsFile(labRoot, lab);
  let created: string[] = [];
  try {
    created = JSON.parse(fs.readFileSync(mine, "utf8")) as string[];
  } catch {
    return;
  }
  fs.rmSync(mine, { force: true });
  const others = fs.existsSync(targetsDir(labRoot)) ? fs.readdirSync(targetsDir(labRoot)) : [];
  if (others.length) {
    // Hand the targets to a lab still running nodes: the last one removes them.
    const heir = path.join(targetsDir(labRoot), others[0]);
    const theirs = JSON.parse(fs.readFileSync(heir, "utf8")) as string[];
    fs.writeFileSync(heir, JSON.stringify([...new Set([...theirs, ...created])]));
    return;
  }
  fs.rmSync(targetsDir(labRoot), { recursive: true, force: true });
  for (const t of created.sort().reverse()) {
    try {
      fs.rmdirSync(t); // only if empty: never anything a user put there
    } catch {
      /* not empty, or already gone */
    }
  }
}

// Mount targets are recorded outside each lab's state directory (which `lab down` removes last).
const targetsDir = (labRoot: string) => path.join(labRoot, ".kubelet-mount-targets");
const createdTargetsFile = (labRoot: string, lab: string) => path.join(targetsDir(labRoot), lab);

function ensureMountTarget(labRoot: string, lab: string, target: string): void {
  const missing: string[] = [];
  for (let p = target; !fs.existsSync(p); p = path.dirname(p)) missing.push(p);
  if (!missing.length) return;
  fs.mkdirSync(target, { recursive: true, mode: 0o755 });
  const file = createdTargetsFile(labRoot, lab);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  let known: string[] = [];
  try {
    known = JSON.parse(fs.readFileSync(file, "utf8")) as string[];
  } catch {
    /* first one */
  }
  fs.writeFileSync(file, JSON.stringify([...new Set([...known, ...missing])]));
}

function makeNodeCgroups(cg: string, hierarchies: string[]): void {
  for (const h of hierarchies) {
    for (const rel of [cg, path.join(cg, "runtime")]) {
      const dir = path.join(h, rel);
      fs.mkdirSync(dir, { recursive: true });
      // A new cpuset cgroup has no CPUs or memory nodes: nothing could join it.
      if (path.basename(h) === "cpuset") {
        for (const f of ["cpuset.cpus", "cpuset.mems"]) {
          if (fs.readFileSync(path.join(dir, f), "utf8").trim() === "") fs.writeFileSync(path.join(dir, f), fs.readFileSync(path.join(path.dirname(dir), f), "utf8"));
        }
      }
    }
  }
}

function procsBelow(dir: string): number[] {
  const out: number[] = [];
  const walk = (d: string) => {
    try {
      out.push(...fs.readFileSync(path.join(d, "cgroup.procs"), "utf8").split("\n").filter(Boolean).map(Number));
      for (const e of fs.readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(path.join(d, e.name));
    } catch {
      /* removed meanwhile */
    }
  };
  walk(dir);
  return out;
}

/** rmdir bottom-up; a cgroup whose last process just died may be busy for a moment. */
function removeCgroupTree(dir: string, deadline: number): void {
  let entries: fs.Dirent[] = [];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) if (e.isDirectory()) removeCgroupTree(path.join(dir, e.name), deadline);
  for (;;) {
    try {
      fs.rmdirSync(dir);
      return;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENOENT") return;
      if (Date.now() > deadline) throw new Error(`cannot remove cgroup ${dir}: ${code}`);
      sleepMs(50);
    }
  }
}
