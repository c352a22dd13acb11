// The tarball's file list, as `npm pack` makes it: everything the installed package loads at run
// time is in it (found by following the compiled code's requires from every entry point, plus the
// files found by path: agent bundle, BPF objects, addon and its sources), every third-party module
// it requires is a declared dependency, and nothing of the repository's own (tests, benchmarks,
// state, toolchain, stack program) ships.
import { builtinModules } from "module";
import * as fs from "fs";
import * as path from "path";
import { REPO } from "../support/pulumi";
import { packedFiles } from "./support/userProject";

const pkg = JSON.parse(fs.readFileSync(path.join(REPO, "package.json"), "utf8"));
const { files, size } = packedFiles();
const packed = new Set(files);

/** Relative requires of compiled files, followed from the entry points; bare module names collected. */
function requireGraph(entries: string[]): { local: Set<string>; bare: Set<string> } {
  const local = new Set<string>();
  const bare = new Set<string>();
  const queue = [...entries];
  while (queue.length) {
    const file = queue.pop()!;
    if (local.has(file)) continue;
    local.add(file);
    const text = fs.readFileSync(path.join(REPO, file), "utf8");
    for (const m of text.matchAll(/require\((["'])([^"']+)\1\)/g)) {
      const spec = m[2];
      if (spec.startsWith(".")) {
        const base = path.join(path.dirname(file), spec);
        const target = [base, `${base}.js`, path.join(base, "index.js")].find((f) => fs.existsSync(path.join(REPO, f)) && fs.statSync(path.join(REPO, f)).isFile());
        if (!target) throw new Error(`${file} requires ${spec}, which does not exist`);
        if (target.endsWith(".js")) queue.push(target);
        else local.add(target);
      } else if (!path.isAbsolute(spec)) {
        bare.add(spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0]);
      }
    }
  }
  return { local, bare };
}

describe("the npm tarball", () => {
  test("carries nothing of the repository's own: tests, benchmarks, state, toolchain, stack program, sources, maps", () => {
    const forbidden = /^(test|bench|deploy|examples|tools|docs|lab|provider|components|node-agent|\.pulumi-state|\.tools|\.ci|node_modules|dist\/(test|bench|deploy|examples))\/|^Pulumi\..*yaml$|^tsconfig|^jest\.config|\.map$|(?<!\.d)\.ts$|\.tsbuildinfo$/;
    expect(files.filter((f) => forbidden.test(f))).toEqual([]);
  });

  test("carries every file the compiled code loads, from the entry point, the CLI and the CNI plugin", () => {
    const entries = [pkg.main, pkg.types, ...Object.values(pkg.bin as Record<string, string>)];
    for (const e of entries) expect(packed).toContain(e);
    // bin/ scripts load dist/ by path; follow from what they load.
    const roots = [pkg.main, pkg.exports["./kubernetes"].default.replace(/^\.\//, ""), "dist/node-agent/cli/main.js", "dist/node-agent/cni/plugin.js", "dist/node-agent/daemon/main.js"];
    expect(fs.readFileSync(path.join(REPO, "bin", "bpfnet"), "utf8")).toContain('"dist", "node-agent", "cli", "main.js"');
    expect(fs.readFileSync(path.join(REPO, "bin", "bpfnet-cni"), "utf8")).toContain('"dist", "node-agent", "cni", "plugin.js"');
    const { local } = requireGraph(roots);
    expect(local.size).toBeGreaterThan(30);
    expect([...local].filter((f) => !packed.has(f))).toEqual([]);
    // Declarations for every module the entry point's types reach.
    expect([...local].filter((f) => f.endsWith(".js") && !packed.has(f.replace(/\.js$/, ".d.ts")))).toEqual([]);
  });

  test("carries what the runtime finds by path: agent bundle and digest, BPF objects, the addon and what builds it", () => {
    const gyp = fs.readFileSync(path.join(REPO, "bpf", "addon", "binding.gyp"), "utf8");
    const sources = [...gyp.matchAll(/"(src\/[^"]+)"/g)].map((m) => `bpf/addon/${m[1]}`);
    expect(sources.length).toBeGreaterThan(3);
    for (const f of [
      "build/agent-bundle.tgz",
      "build/agent-bundle.tgz.sha256",
      "build/bpf/bpf_lxc.o",
      "build/bpf/bpf_overlay.o",
      "build/bpf/bpf_host.o",
      "bpf/addon/build/Release/bpfnet_native.node",
      "bpf/addon/binding.gyp",
      "bpf/addon/src/bpfnet.h",
      ...sources,
      pkg.scripts.install.split(" ").pop(),
    ]) {
      expect(packed).toContain(f);
    }
  });

  test("every third-party module the code requires is a dependency (or the @pulumi/pulumi peer); nothing declared is unused", () => {
    // The Kubernetes entry point's @pulumi/kubernetes is an optional peer (docs/kubernetes.md).
    const { bare } = requireGraph([pkg.main, pkg.exports["./kubernetes"].default.replace(/^\.\//, ""), "dist/node-agent/cli/main.js", "dist/node-agent/cni/plugin.js", "dist/node-agent/daemon/main.js"]);
    const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
    const external = [...bare].filter((m) => !builtins.has(m)).sort();
    const declared = [...Object.keys(pkg.dependencies), ...Object.keys(pkg.peerDependencies)];
    expect(external.filter((m) => !declared.includes(m))).toEqual([]);
    // node-addon-api builds the addon from source (binding.gyp), not required by the JS.
    expect(declared.filter((m) => !external.includes(m) && m !== "node-addon-api")).toEqual([]);
    expect(pkg.peerDependencies["@pulumi/pulumi"]).toBe(">=3.248.0 <4");
    expect(pkg.dependencies["@pulumi/pulumi"]).toBeUndefined();
    expect(pkg.peerDependenciesMeta["@pulumi/kubernetes"]).toEqual({ optional: true });
    expect(pkg.dependencies["@pulumi/kubernetes"]).toBeUndefined();
  });

  test("is a few megabytes, not the repository", () => {
    expect(size).toBeLessThan(20e6);
    expect(files.length).toBeLessThan(600);
  });
});
