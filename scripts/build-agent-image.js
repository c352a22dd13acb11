#!/usr/bin/env node
// Builds the agent's container image from build/agent-bundle.tgz without a registry or a daemon:
// an OCI image layout (oci-layout, index.json, blobs/sha256/…) packed as one tar that a runtime
// imports (`ctr -n k8s.io images import build/agent-image.tar`). One layer: the bundle under
// IMAGE_RELEASE_DIR, this machine's Node.js at /usr/local/bin/node, the programs the agent runs
// (ip, unshare, ping, mount) and the shared libraries all of them load (ldd), at their paths. Reproducible (sorted, fixed mtime and owner), so
// the same bundle gives the same digests. The tag is agentImageRef(bundle sha256), the
// KubernetesNetwork component's default image.
//
// Usage: build-agent-image.js [--out FILE] [--quiet]   (default build/agent-image.tar)
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const { execFileSync } = require("child_process");
const { writeOciImage, sha256 } = require("./oci-image");

const root = path.resolve(__dirname, "..");
const AGENT_TOOLS = ["ip", "unshare", "ping", "mount"];
const argv = process.argv.slice(2);
const outIndex = argv.indexOf("--out");
const out = outIndex >= 0 ? path.resolve(argv[outIndex + 1]) : path.join(root, "build", "agent-image.tar");
const bundle = path.join(root, "build", "agent-bundle.tgz");
const { agentImageRef, IMAGE_NODE, IMAGE_RELEASE_DIR } = require(path.join(root, "dist", "node-agent", "kubernetes", "image.js"));

const bundleSha = sha256(fs.readFileSync(bundle));
const ref = agentImageRef(bundleSha);
const work = fs.mkdtempSync(path.join(os.tmpdir(), "bpfnet-image-"));
try {
  // The root filesystem.
  const rootfs = path.join(work, "rootfs");
  const release = path.join(rootfs, IMAGE_RELEASE_DIR);
  fs.mkdirSync(release, { recursive: true });
  execFileSync("tar", ["-xzf", bundle, "-C", release]);
  const nodeBin = fs.realpathSync(process.execPath);
  fs.mkdirSync(path.join(rootfs, path.dirname(IMAGE_NODE)), { recursive: true });
  fs.copyFileSync(nodeBin, path.join(rootfs, IMAGE_NODE));
  fs.chmodSync(path.join(rootfs, IMAGE_NODE), 0o755);
  const addon = path.join(release, "bpf", "addon", "build", "Release", "bpfnet_native.node");
  // The programs the agent runs (links and routes through ip, the health endpoint's namespace
  // through unshare, its probes through ping, bpffs through mount), at this machine's paths.
  const tools = AGENT_TOOLS.map((t) => execFileSync("sh", ["-c", 'command -v "$1"', "sh", t], { encoding: "utf8" }).trim());
  for (const tool of tools) {
    const dest = path.join(rootfs, tool);
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    fs.copyFileSync(fs.realpathSync(tool), dest);
    fs.chmodSync(dest, 0o755);
  }
  for (const lib of sharedLibraries([nodeBin, addon, ...tools])) {
    const dest = path.join(rootfs, lib);
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    fs.copyFileSync(fs.realpathSync(lib), dest);
  }
  fs.mkdirSync(path.join(rootfs, "tmp"), { mode: 0o1777 });
  // containerd hands the CNI plugin /var/run/netns/… paths, which the agent opens in its container.
  fs.mkdirSync(path.join(rootfs, "run"));
  fs.mkdirSync(path.join(rootfs, "var"));
  fs.symlinkSync("../run", path.join(rootfs, "var", "run"));

  const digest = writeOciImage({
    rootfs,
    ref,
    out,
    work,
    config: { Env: ["PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], Entrypoint: [IMAGE_NODE], WorkingDir: IMAGE_RELEASE_DIR, Labels: { "org.opencontainers.image.title": "bpfnet agent", "io.bpfnet.bundle.sha256": bundleSha } },
  });
  if (!argv.includes("--quiet")) console.log(`agent image: ${path.relative(process.cwd(), out)} ${ref} (${(fs.statSync(out).size / 1e6).toFixed(1)} MB, manifest ${digest.slice(0, 19)})`);
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}

/** Every shared library (absolute path as the loader names it) the given ELF files load, ld.so included. */
function sharedLibraries(files) {
  const libs = new Set();
  for (const f of files) {
    for (const line of execFileSync("ldd", [f], { encoding: "utf8" }).split("\n")) {
      const m = /=>\s+(\/\S+)/.exec(line) || /^\s*(\/\S+)\s+\(/.exec(line);
      if (m) libs.add(m[1]);
    }
  }
  return [...libs].sort();
}
