#!/usr/bin/env node
// Builds the agent's container image from build/agent-bundle.tgz without a registry or a daemon:
// an OCI image layout (oci-layout, index.json, blobs/sha256/…) packed as one tar that a runtime
// imports (`ctr -n k8s.io images import build/agent-image.tar`). One layer: the bundle under
// /opt/bpfnet, this machine's Node.js at /usr/local/bin/node, and the shared libraries Node.js and
// the native addon load (ldd), at their paths. Reproducible (sorted, fixed mtime and owner), so
// the same bundle gives the same digests. The tag is agentImageRef(bundle sha256), the
// KubernetesNetwork component's default image.
//
// Usage: build-agent-image.js [--out FILE] [--quiet]   (default build/agent-image.tar)
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const crypto = require("crypto");
const { execFileSync } = require("child_process");

const root = path.resolve(__dirname, "..");
const argv = process.argv.slice(2);
const outIndex = argv.indexOf("--out");
const out = outIndex >= 0 ? path.resolve(argv[outIndex + 1]) : path.join(root, "build", "agent-image.tar");
const bundle = path.join(root, "build", "agent-bundle.tgz");
const { agentImageRef, IMAGE_NODE, IMAGE_RELEASE_DIR } = require(path.join(root, "dist", "node-agent", "kubernetes", "image.js"));

const sha256 = (buf) => crypto.createHash("sha256").update(buf).digest("hex");
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
  for (const lib of sharedLibraries([nodeBin, addon])) {
    const dest = path.join(rootfs, lib);
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    fs.copyFileSync(fs.realpathSync(lib), dest);
  }
  fs.mkdirSync(path.join(rootfs, "tmp"), { mode: 0o1777 });

  // The layer, its config, the manifest and the index.
  const blobs = path.join(work, "layout", "blobs", "sha256");
  fs.mkdirSync(blobs, { recursive: true });
  const layerTar = path.join(work, "layer.tar");
  execFileSync("tar", ["--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner", "-cf", layerTar, "-C", rootfs, "."]);
  const diffId = sha256(fs.readFileSync(layerTar));
  const layerGz = execFileSync("gzip", ["-n", "-c", layerTar], { maxBuffer: 1 << 30 });
  const blob = (bytes) => {
    const digest = sha256(bytes);
    fs.writeFileSync(path.join(blobs, digest), bytes);
    return { digest: `sha256:${digest}`, size: bytes.length };
  };
  const layer = blob(layerGz);
  const config = blob(
    Buffer.from(
      JSON.stringify({
        architecture: "amd64",
        os: "linux",
        created: "1970-01-01T00:00:00Z",
        config: { Env: ["PATH=/usr/local/bin:/usr/bin:/bin"], Entrypoint: [IMAGE_NODE], WorkingDir: IMAGE_RELEASE_DIR, Labels: { "org.opencontainers.image.title": "bpfnet agent", "io.bpfnet.bundle.sha256": bundleSha } },
        rootfs: { type: "layers", diff_ids: [`sha256:${diffId}`] },
      }),
    ),
  );
  const manifest = blob(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
        layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", ...layer }],
      }),
    ),
  );
  const layout = path.join(work, "layout");
  fs.writeFileSync(path.join(layout, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  fs.writeFileSync(
    path.join(layout, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [
        {
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          ...manifest,
          // containerd names the imported image from these; the short one is the OCI convention.
          annotations: { "io.containerd.image.name": `docker.io/${ref}`, "org.opencontainers.image.ref.name": ref.split(":")[1] },
        },
      ],
    }),
  );
  fs.mkdirSync(path.dirname(out), { recursive: true });
  execFileSync("tar", ["--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner", "-cf", `${out}.tmp`, "-C", layout, "."]);
  fs.renameSync(`${out}.tmp`, out);
  if (!argv.includes("--quiet")) console.log(`agent image: ${path.relative(process.cwd(), out)} ${ref} (${(fs.statSync(out).size / 1e6).toFixed(1)} MB, manifest ${manifest.digest.slice(0, 19)})`);
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
