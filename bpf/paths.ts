import { existsSync, mkdirSync } from "fs";
import { dirname, join, resolve } from "path";

/** Where the agent pins the shared maps on a real host. Labs pass their own directory. */
export const DEFAULT_PIN_ROOT = "/sys/fs/bpf/bpfnet";

const OBJECT_DIR = join("build", "bpf");
const ADDON_FILE = join("bpf", "addon", "build", "Release", "bpfnet_native.node");

/**
 * mkdir -p for pin directories, one level at a time. Node's recursive mkdirSync spins forever
 * when mkdir answers ENOENT under an existing parent, which is what sysfs answers for
 * /sys/fs/bpf/<dir> on a host where no bpffs is mounted there: here that is an error naming the
 * directory instead of a hung agent.
 */
export function makePinDir(dir: string, mode = 0o700): void {
  const absolute = resolve(dir);
  const parent = dirname(absolute);
  if (existsSync(absolute)) return;
  if (parent !== absolute) makePinDir(parent, mode);
  try {
    mkdirSync(absolute, { mode });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "EEXIST") return;
    throw new Error(`cannot create the BPF pin directory ${absolute}: ${code ?? (e as Error).message}${code === "ENOENT" ? ` (is a bpffs mounted at or above ${parent}?)` : ""}`);
  }
}

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
