import { existsSync } from "fs";
import { dirname, join, resolve } from "path";

/** Where the agent pins the shared maps on a real host. Labs pass their own directory. */
export const DEFAULT_PIN_ROOT = "/sys/fs/bpf/bpfnet";

const OBJECT_DIR = join("build", "bpf");
const ADDON_FILE = join("bpf", "addon", "build", "Release", "bpfnet_native.node");

/**
 * The first ancestor of this module's directory that holds `relative`. The
 * modules run from bpf/ (ts-node, jest) or dist/bpf/ (compiled), and the
 * agent bundle keeps the repository layout, so walking up finds the build
 * outputs in every case.
 */
export function findUp(relative: string): string | undefined {
  for (let dir = __dirname; ; dir = dirname(dir)) {
    const candidate = join(dir, relative);
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) return undefined;
  }
}

/**
 * Directory of bpf_lxc.o, bpf_overlay.o and bpf_host.o: $BPFNET_BPF_OBJECT_DIR,
 * else <repo or bundle root>/build/bpf.
 */
export function defaultObjectDir(): string {
  const fromEnv = process.env.BPFNET_BPF_OBJECT_DIR;
  if (fromEnv) return resolve(fromEnv);
  const found = findUp(join(OBJECT_DIR, "bpf_lxc.o"));
  return found ? dirname(found) : resolve(__dirname, "..", OBJECT_DIR);
}

/** The native addon: $BPFNET_NATIVE_ADDON, else <root>/bpf/addon/build/Release/bpfnet_native.node. */
export function nativeAddonPath(): string {
  const fromEnv = process.env.BPFNET_NATIVE_ADDON;
  if (fromEnv) return resolve(fromEnv);
  return findUp(ADDON_FILE) ?? resolve(__dirname, "..", ADDON_FILE);
}
