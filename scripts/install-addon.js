#!/usr/bin/env node
// npm's install step for the installed package. The tarball carries the native addon prebuilt
// for linux-x64; on another Linux architecture it is built from source here (node-gyp, which npm
// provides to install scripts; needs a C++ compiler, libbpf-dev, libelf-dev and zlib1g-dev).
// Elsewhere (a macOS laptop running `pulumi up`) nothing is needed: the addon only runs on the
// Linux hosts, inside the agent bundle. A failed build warns instead of failing the install.
"use strict";
const fs = require("fs");
const path = require("path");
const { spawnSync } = require("child_process");

const addonDir = path.join(__dirname, "..", "bpf", "addon");
const prebuilt = path.join(addonDir, "build", "Release", "bpfnet_native.node");
const PREBUILT_FOR = "linux-x64";
const here = `${process.platform}-${process.arch}`;

// BPFNET_BUILD_ADDON=1 builds from source anyway (test/library/addonBuild.test.ts exercises the fallback).
const force = process.env.BPFNET_BUILD_ADDON === "1";
if (!force && here === PREBUILT_FOR && fs.existsSync(prebuilt)) process.exit(0);
if (process.platform !== "linux") process.exit(0);
if (fs.existsSync(path.join(__dirname, "setup"))) process.exit(0); // the repository's own checkout: scripts/setup builds it
fs.rmSync(prebuilt, { force: true });
// The running node's own headers when installed (Debian, NodeSource): node-gyp then downloads nothing.
const nodePrefix = path.dirname(path.dirname(fs.realpathSync(process.execPath)));
const nodedir = fs.existsSync(path.join(nodePrefix, "include", "node", "node_api.h")) ? [`--nodedir=${nodePrefix}`] : [];
const gyp = process.env.npm_config_node_gyp ? [process.execPath, process.env.npm_config_node_gyp] : ["node-gyp"];
const r = spawnSync(gyp[0], [...gyp.slice(1), "rebuild", "--loglevel=error", ...nodedir], { cwd: addonDir, stdio: "inherit", shell: false });
if (r.status !== 0) {
  console.warn(`bpfnet: building the native addon for ${here} failed (${r.error ? r.error.message : `exit ${r.status}`}); ` +
    "the bpfnet CLI's datapath commands will not work on this machine. Install a C++ compiler, libbpf-dev, libelf-dev and zlib1g-dev, then `npm rebuild bpfnet`.");
}
