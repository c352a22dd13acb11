#!/usr/bin/env node
// Packs what a host needs to run the node agent into build/agent-bundle.tgz, keeping the
// repository's layout (so bpf/paths.ts finds the objects and the addon by walking up):
//   dist/ (compiled TS, tests left out), build/bpf/*.o, bpf/addon/build/Release/*.node,
//   bin/bpfnet, bin/bpfnet-cni, package.json, and the node_modules closure of the agent's
//   runtime dependencies. The tarball is reproducible (sorted, fixed mtime and owner), so its
//   sha256 changes only when the content does: NodeAgent rolls hosts on that hash.
"use strict";
const fs = require("fs");
const path = require("path");
const crypto = require("crypto");
const { execFileSync } = require("child_process");

const root = path.resolve(__dirname, "..");
const RUNTIME_DEPS = ["etcd3", "prom-client"]; // what dist/node-agent requires from node_modules
const out = path.join(root, "build", "agent-bundle.tgz");

function closure(names) {
  const seen = new Set();
  const visit = (name, fromDir) => {
    const dir = resolvePackageDir(name, fromDir);
    if (seen.has(dir)) return;
    seen.add(dir);
    const pkg = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"));
    for (const dep of Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies })) {
      try {
        visit(dep, dir);
      } catch (e) {
        if (!(pkg.optionalDependencies && dep in pkg.optionalDependencies)) throw e;
      }
    }
  };
  for (const n of names) visit(n, root);
  return [...seen].map((d) => path.relative(root, d)).sort();
}

function resolvePackageDir(name, fromDir) {
  for (let dir = fromDir; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, "node_modules", name);
    if (fs.existsSync(path.join(candidate, "package.json"))) return candidate;
    if (path.dirname(dir) === dir) throw new Error(`cannot find package ${name} from ${fromDir}`);
  }
}

function listFiles(rel, filter = () => true) {
  const abs = path.join(root, rel);
  if (!fs.existsSync(abs)) throw new Error(`missing ${rel}: run scripts/setup first`);
  if (fs.statSync(abs).isFile()) return [rel];
  return fs.readdirSync(abs).flatMap((e) => listFiles(path.join(rel, e), filter)).filter(filter);
}

const inputs = [
  "package.json",
  "bin/bpfnet",
  "bin/bpfnet-cni",
  ...listFiles("dist", (f) => !/^dist\/(test|bench|deploy|examples)\//.test(f) && !f.endsWith(".map") && !f.endsWith(".d.ts") && !f.endsWith(".tsbuildinfo")),
  ...listFiles("build/bpf", (f) => f.endsWith(".o")),
  "bpf/addon/build/Release/bpfnet_native.node",
  ...closure(RUNTIME_DEPS).flatMap((d) => listFiles(d)),
].sort();

// Rebuild only when an input is newer than the tarball.
const newest = Math.max(...inputs.map((f) => fs.statSync(path.join(root, f)).mtimeMs));
if (!fs.existsSync(out) || fs.statSync(out).mtimeMs < newest || process.argv.includes("--force")) {
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const list = path.join(root, "build", "agent-bundle.files");
  fs.writeFileSync(list, inputs.join("\n") + "\n");
  execFileSync("tar", ["--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner", "--use-compress-program=gzip -n", "-cf", out + ".tmp", "-C", root, "-T", list]);
  fs.renameSync(out + ".tmp", out);
  fs.rmSync(list);
}
const sha256 = crypto.createHash("sha256").update(fs.readFileSync(out)).digest("hex");
fs.writeFileSync(out + ".sha256", sha256 + "\n");
if (!process.argv.includes("--quiet")) console.log(`agent bundle: ${path.relative(root, out)} ${(fs.statSync(out).size / 1e6).toFixed(1)} MB sha256 ${sha256.slice(0, 12)}`);
