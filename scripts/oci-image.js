// One OCI image, packed as a tar of an image layout (oci-layout, index.json, blobs/sha256/…), from
// a root filesystem directory: one layer, reproducible (sorted, fixed mtime and owner), named for
// containerd's import (`ctr -n k8s.io images import FILE`). Used by build-agent-image.js and
// build-lab-images.js: no registry or container daemon is needed.
"use strict";
const fs = require("fs");
const path = require("path");
const crypto = require("crypto");
const { execFileSync } = require("child_process");

const sha256 = (buf) => crypto.createHash("sha256").update(buf).digest("hex");

/**
 * Packs `rootfs` as the one layer of image `ref` ("name:tag", imported as docker.io/<ref>) into
 * the tar `out`, with `config` as the image config's "config" (Entrypoint, Env, …) and `work` as
 * scratch space. Returns the manifest's digest.
 */
function writeOciImage({ rootfs, ref, config, out, work }) {
  const layout = path.join(work, "layout");
  const blobs = path.join(layout, "blobs", "sha256");
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
  const configBlob = blob(
    Buffer.from(
      JSON.stringify({ architecture: "amd64", os: "linux", created: "1970-01-01T00:00:00Z", config, rootfs: { type: "layers", diff_ids: [`sha256:${diffId}`] } }),
    ),
  );
  const manifest = blob(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: { mediaType: "application/vnd.oci.image.config.v1+json", ...configBlob },
        layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", ...layer }],
      }),
    ),
  );
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
  return manifest.digest;
}

module.exports = { writeOciImage, sha256 };
