#!/usr/bin/env node
// The two images a lab's real kubelets need besides the agent's, built without a registry from
// Debian's busybox-static (one static binary and its applets as symlinks):
//   - the pod sandbox ("pause") image: busybox's sleep as the sandbox's PID 1;
//   - the test pods' image: a shell, ping, ip, sleep.
// Each an OCI image layout tar (scripts/oci-image.js) for `ctr -n k8s.io images import`.
//
// Usage: build-lab-images.js --out-dir DIR --pause REF --busybox REF   (writes DIR/pause.tar, DIR/busybox.tar)
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const { execFileSync } = require("child_process");
const { writeOciImage } = require("./oci-image");

const BUSYBOX = "/bin/busybox";
const argv = process.argv.slice(2);
const arg = (name) => {
  const i = argv.indexOf(`--${name}`);
  if (i < 0 || !argv[i + 1]) throw new Error(`build-lab-images: --${name} is required`);
  return argv[i + 1];
};
const outDir = path.resolve(arg("out-dir"));
const work = fs.mkdtempSync(path.join(os.tmpdir(), "bpfnet-lab-images-"));
try {
  const rootfs = path.join(work, "rootfs");
  fs.mkdirSync(path.join(rootfs, "bin"), { recursive: true });
  fs.copyFileSync(BUSYBOX, path.join(rootfs, "bin", "busybox"));
  fs.chmodSync(path.join(rootfs, "bin", "busybox"), 0o755);
  for (const applet of execFileSync(BUSYBOX, ["--list"], { encoding: "utf8" }).split("\n").filter((a) => /^[a-z0-9_.[-]+$/.test(a) && a !== "busybox")) {
    fs.symlinkSync("busybox", path.join(rootfs, "bin", applet));
  }
  for (const d of ["tmp", "proc", "sys", "dev", "etc", "run"]) fs.mkdirSync(path.join(rootfs, d), { mode: d === "tmp" ? 0o1777 : 0o755 });
  const env = ["PATH=/bin"];
  // The sandbox's PID 1 only holds the pod's namespaces; containerd stops it with SIGKILL.
  writeOciImage({ rootfs, ref: arg("pause"), out: path.join(outDir, "pause.tar"), work: path.join(work, "pause"), config: { Env: env, Entrypoint: ["/bin/sleep", "2147483647"] } });
  writeOciImage({ rootfs, ref: arg("busybox"), out: path.join(outDir, "busybox.tar"), work: path.join(work, "busybox"), config: { Env: env, Cmd: ["/bin/sh"] } });
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
