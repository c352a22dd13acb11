// The pure parts of a lab's real Kubernetes node (lab/kubelet.ts): containerd's and the kubelet's
// configuration, the cgroup hierarchies it joins, and the supervisor script, whose every path stays
// one inert word through sh even when hostile.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { cgroupHierarchies, containerdConfig, KubeletNodeSpec, kubeletConfig, KUBELET_SYSCTLS, NODE_PRIVATE_DIRS, nodeCgroup, nodePrivateDirs, nodeScript } from "../../lab/kubelet";

const work = fs.mkdtempSync(path.join(os.tmpdir(), "tk-kubelet-"));
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));
/** Spaces, ;, $(…), backticks, a newline, quotes and ".." in one directory name. */
const HOSTILE_DIR = path.join(work, "lab dir;$(touch pwned)`touch pwned2`\n'\"..x");
const spec: KubeletNodeSpec = {
  lab: "tk3", host: "h1", netns: "tk3-h1", nodeIp: "10.143.1.1", dir: HOSTILE_DIR, labRoot: "/run/bpfnet/lab",
  kubeconfigYaml: "", caFile: `${HOSTILE_DIR}/ca.crt`, certPem: "", keyPem: "", images: [`${HOSTILE_DIR}/agent.tar`],
};

test("containerd: its own root, state, sockets and sandbox image under the node's directory; TOML strings escaped", () => {
  const toml = containerdConfig(HOSTILE_DIR);
  const value = (key: string) => {
    const m = new RegExp(`^\\s*${key} = (".*")$`, "m").exec(toml);
    return m ? JSON.parse(m[1]) : undefined;
  };
  expect(value("root")).toBe(path.join(HOSTILE_DIR, "containerd", "root"));
  expect(value("state")).toBe(path.join(HOSTILE_DIR, "containerd", "state"));
  expect(value("address")).toBe(path.join(HOSTILE_DIR, "containerd.sock"));
  expect(value("sandbox_image")).toBe("docker.io/bpfnet-lab/pause:1");
  expect(value("bin_dir")).toBe("/opt/cni/bin");
  expect(toml).toMatch(/^\s*SystemdCgroup = false$/m);
  expect(toml).toMatch(/^\s*restrict_oom_score_adj = true$/m);
  // No line of the file is broken by the newline in the path.
  for (const line of toml.split("\n")) expect(line).not.toMatch(/^[^[#=]*[^\s[#=][^=]*$/);
});

test("kubelet: serves on the node's address to lab-CA clients only, cgroupfs under the node's own cgroup", () => {
  const c = kubeletConfig(spec);
  expect(c).toMatchObject({
    address: "10.143.1.1",
    readOnlyPort: 0,
    authentication: { anonymous: { enabled: false }, x509: { clientCAFile: `${HOSTILE_DIR}/ca.crt` } },
    authorization: { mode: "Webhook" },
    cgroupDriver: "cgroupfs",
    cgroupRoot: "/bpfnet-lab-tk3-h1",
    containerRuntimeEndpoint: `unix://${HOSTILE_DIR}/containerd.sock`,
    podLogsDir: `${HOSTILE_DIR}/pod-logs`,
    failSwapOn: false,
  });
  expect(nodeCgroup("tk3", "h2")).toBe("bpfnet-lab-tk3-h2");
});

test("cgroup v1 hierarchies are read from the mount table (v2 and other mounts ignored)", () => {
  const mounts = [
    "tmpfs /sys/fs/cgroup tmpfs rw 0 0",
    "cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0",
    "cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0",
    "cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0",
    "cgroup /elsewhere/pids cgroup rw,pids 0 0",
  ].join("\n");
  expect(cgroupHierarchies(mounts)).toEqual(["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/memory"]);
});

test("the node's private directories: a missing or empty /lib/modules gets its own empty one", () => {
  expect(nodePrivateDirs(["6.1.0"])).toEqual(NODE_PRIVATE_DIRS);
  expect(nodePrivateDirs([])).toEqual({ ...NODE_PRIVATE_DIRS, "/lib/modules": "lib-modules" });
});

test("the supervisor script: every hostile path reaches mount, ctr, containerd and the kubelet as one word", () => {
  const hierarchy = path.join(work, "cgroup", "cpu");
  fs.mkdirSync(path.join(hierarchy, nodeCgroup("tk3", "h1"), "runtime"), { recursive: true });
  fs.mkdirSync(HOSTILE_DIR, { recursive: true });
  const script = nodeScript(spec, [hierarchy]);
  // Every command it runs replaced by one that prints its words between brackets, and a record separator (words hold newlines).
  const stubs = `w() { for a in "$@"; do printf '[%s]' "$a"; done; printf '\\036\\n'; }\nmount() { w mount "$@"; }\nctr() { w ctr "$@"; }\nkubelet() { w kubelet "$@"; }\ncontainerd() { w containerd "$@"; }\n`;
  const r = spawnSync("/bin/sh", ["-c", stubs + script], { encoding: "utf8", cwd: work, timeout: 20_000 });
  expect([r.status, r.stderr]).toEqual([0, ""]);
  expect(fs.existsSync(path.join(work, "pwned")) || fs.existsSync(path.join(work, "pwned2"))).toBe(false);
  const binds = r.stdout.split("\x1e\n").filter((l) => l.startsWith("[mount][--bind]"));
  expect(binds).toHaveLength(Object.keys(nodePrivateDirs()).length + Object.keys(KUBELET_SYSCTLS).length);
  expect(binds).toContain(`[mount][--bind][${HOSTILE_DIR}/private/cni-bin][/opt/cni/bin]`);
  expect(binds).toContain(`[mount][--bind][${HOSTILE_DIR}/sysctl/kernel.panic_on_oops][/proc/sys/kernel/panic_on_oops]`);
  expect(r.stdout).toContain("[mount][-t][bpf][bpf][/sys/fs/bpf]");
  const log = (f: string) => fs.readFileSync(path.join(HOSTILE_DIR, f), "utf8");
  expect(log("containerd.log")).toBe(`[containerd][--config][${HOSTILE_DIR}/containerd.toml]\x1e\n`);
  expect(log("images.log")).toBe(`[ctr][--address][${HOSTILE_DIR}/containerd.sock][-n][k8s.io][images][import][${HOSTILE_DIR}/agent.tar]\x1e\n`);
  expect(log("kubelet.log")).toContain(`[--root-dir][${HOSTILE_DIR}/kubelet][--node-labels][bpfnet.io/lab=tk3]`);
  // The supervisor joined the node's cgroup.
  expect(fs.readFileSync(path.join(hierarchy, nodeCgroup("tk3", "h1"), "runtime", "cgroup.procs"), "utf8").trim()).toMatch(/^\d+$/);
});
