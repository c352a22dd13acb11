// The agent image (scripts/build-agent-image.js): a valid OCI image layout whose digests match
// their blobs, tagged for the bundle it carries, and runnable on its own: its one layer, unpacked
// as a root filesystem, runs the init container's setup and the agent's CLI with only what the
// image holds (chroot: no file of this machine is visible).
import { spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { agentImageRef, IMAGE_NODE, IMAGE_RELEASE_DIR } from "../../node-agent/kubernetes/image";
import { REPO } from "../support/pulumi";

jest.setTimeout(240_000);

const work = fs.mkdtempSync(path.join(os.tmpdir(), "tk-image-"));
const image = path.join(work, "agent-image.tar");
const layout = path.join(work, "layout");
const rootfs = path.join(work, "rootfs");
const sha256 = (b: Buffer) => crypto.createHash("sha256").update(b).digest("hex");
const blob = (digest: string) => fs.readFileSync(path.join(layout, "blobs", "sha256", digest.replace(/^sha256:/, "")));
const run = (cmd: string, args: string[]) => spawnSync(cmd, args, { encoding: "utf8", timeout: 120_000 });
/** A command inside the image's root filesystem, with only the image's environment (as a container gets). */
const inRootfs = (args: string[], env: Record<string, string> = {}) =>
  spawnSync("/usr/sbin/chroot", [rootfs, ...args], { encoding: "utf8", timeout: 120_000, env: { PATH: "/usr/local/bin:/usr/bin:/bin", ...env }, input: "{}" });

beforeAll(() => {
  const r = run("node", [path.join(REPO, "scripts", "build-agent-image.js"), "--out", image, "--quiet"]);
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
  fs.mkdirSync(layout);
  expect(run("tar", ["-xf", image, "-C", layout]).status).toBe(0);
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

test("an OCI image layout: index → manifest → config and layer, every digest its blob's; named for the bundle", () => {
  expect(JSON.parse(fs.readFileSync(path.join(layout, "oci-layout"), "utf8"))).toEqual({ imageLayoutVersion: "1.0.0" });
  const index = JSON.parse(fs.readFileSync(path.join(layout, "index.json"), "utf8"));
  expect(index.manifests).toHaveLength(1);
  const entry = index.manifests[0];
  const bundleSha = sha256(fs.readFileSync(path.join(REPO, "build", "agent-bundle.tgz")));
  expect(entry.annotations["io.containerd.image.name"]).toBe(`docker.io/${agentImageRef(bundleSha)}`);
  const manifestBytes = blob(entry.digest);
  expect(`sha256:${sha256(manifestBytes)}`).toBe(entry.digest);
  expect(manifestBytes.length).toBe(entry.size);
  const manifest = JSON.parse(manifestBytes.toString());
  for (const d of [manifest.config, ...manifest.layers]) {
    const b = blob(d.digest);
    expect([`sha256:${sha256(b)}`, b.length]).toEqual([d.digest, d.size]);
  }
  const config = JSON.parse(blob(manifest.config.digest).toString());
  expect(config).toMatchObject({ architecture: "amd64", os: "linux", config: { Entrypoint: [IMAGE_NODE], Env: ["PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"] } });
  expect(config.config.Labels["io.bpfnet.bundle.sha256"]).toBe(bundleSha);
  // diff_id: the digest of the uncompressed layer.
  const layerTar = spawnSync("gzip", ["-dc"], { input: blob(manifest.layers[0].digest), maxBuffer: 1 << 30 }).stdout;
  expect(config.rootfs.diff_ids).toEqual([`sha256:${sha256(layerTar)}`]);
  fs.mkdirSync(rootfs);
  expect(spawnSync("tar", ["-xf", "-", "-C", rootfs], { input: layerTar, maxBuffer: 1 << 30 }).status).toBe(0);
});

test("the image alone runs the init container's setup and the agent CLI (chroot into its layer)", () => {
  const inImage = (p: string) => path.join(rootfs, p);
  // What the kubelet would mount: the ConfigMap, the node's Secret key, host directories.
  for (const d of ["/etc/bpfnet/config", "/etc/bpfnet/etcd", "/host/opt/bpfnet", "/host/cni/bin", "/host/cni/net.d"]) fs.mkdirSync(inImage(d), { recursive: true });
  fs.writeFileSync(
    inImage("/etc/bpfnet/config/network.json"),
    JSON.stringify({ networkName: "tk", networkPrefix: "/bpfnet/tk", stateDir: "/host/state", bpffsDir: "/sys/fs/bpf/bpfnet", nodes: { h1: { underlayIp: "10.125.1.11", underlayInterface: "eth0" } } }),
  );
  fs.writeFileSync(inImage("/etc/bpfnet/etcd/h1.json"), JSON.stringify({ endpoints: ["http://10.125.0.1:2379"], username: "bpfnet-h1", password: "pw" }));
  const setup = inRootfs([
    IMAGE_NODE, `${IMAGE_RELEASE_DIR}/dist/node-agent/kubernetes/podSetup.js`,
    "--node", "h1", "--config", "/etc/bpfnet/config", "--etcd", "/etc/bpfnet/etcd", "--release", IMAGE_RELEASE_DIR,
    "--host-install", "/host/opt/bpfnet", "--host-cni-bin", "/host/cni/bin", "--host-cni-conf", "/host/cni/net.d",
  ]);
  expect(setup.stderr).toBe("");
  expect(setup.status).toBe(0);
  expect(JSON.parse(fs.readFileSync(inImage("/host/state/agent.json"), "utf8"))).toMatchObject({ hostName: "h1", networkPrefix: "/bpfnet/tk", underlayIp: "10.125.1.11" });
  expect(fs.existsSync(inImage("/host/opt/bpfnet/release/bin/bpfnet-cni"))).toBe(true);
  // What the CNI launcher it installed execs (a /bin/sh script on the host; the image has no shell): the copied Node.js and plugin.
  expect(fs.readFileSync(inImage("/host/cni/bin/bpfnet-cni"), "utf8")).toContain('exec /host/opt/bpfnet/node /host/opt/bpfnet/release/bin/bpfnet-cni "$@"');
  const cni = inRootfs(["/host/opt/bpfnet/node", "/host/opt/bpfnet/release/bin/bpfnet-cni"], { CNI_COMMAND: "VERSION" });
  expect(JSON.parse(cni.stdout)).toMatchObject({ cniVersion: "1.0.0", supportedVersions: ["1.0.0"] });
  // The programs the agent runs, with their libraries; /var/run leads to /run (containerd's /var/run/netns/… paths).
  const imagePath = { PATH: "/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" }; // the image config's
  expect(inRootfs(["ip", "-V"], imagePath).stdout).toMatch(/^ip utility/);
  expect(inRootfs(["unshare", "--version"], imagePath).stdout).toMatch(/^unshare from util-linux/);
  expect(inRootfs(["ping", "-V"], imagePath).stdout).toMatch(/^ping from iputils/);
  expect(inRootfs(["mount", "--version"], imagePath).stdout).toMatch(/^mount from util-linux/);
  expect(fs.readlinkSync(inImage("/var/run"))).toBe("../run");
  // The agent's CLI: its usage, from the image's release.
  const usage = inRootfs([IMAGE_NODE, `${IMAGE_RELEASE_DIR}/bin/bpfnet`]);
  expect(usage.status).toBe(2);
  expect(usage.stderr).toContain("usage: bpfnet <command>");
});
