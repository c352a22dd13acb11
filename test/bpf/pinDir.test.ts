// makePinDir (bpf/paths.ts): the agent's pin and bpffs directories are made one level at a time,
// so a filesystem that answers ENOENT under an existing parent (sysfs at /sys/fs/bpf with no
// bpffs mounted there; /proc here, which every machine has) is an error naming the directory,
// where Node's recursive mkdirSync spins forever (seen: an agent-like loader at 100 % CPU for
// minutes on this machine, whose /sys/fs/bpf is a bare sysfs directory).
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { makePinDir } from "../../bpf";
import { checkBpffs } from "../../node-agent/daemon/datapath";

test("nested directories are made root-only, and making them again is a no-op", () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "bpfnet-pindir-"));
  try {
    const dir = path.join(root, "a", "b", "c");
    makePinDir(dir);
    makePinDir(dir);
    for (const d of [path.join(root, "a"), path.join(root, "a", "b"), dir]) expect(fs.statSync(d).mode & 0o777).toBe(0o700);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test("ENOENT under an existing parent is an error naming the directory, not a hang", () => {
  expect(() => makePinDir("/proc/bpfnet-no-such-dir/pins")).toThrow(
    "cannot create the BPF pin directory /proc/bpfnet-no-such-dir: ENOENT (is a bpffs mounted at or above /proc?)",
  );
  expect(() => checkBpffs("/proc/bpfnet-no-such-dir")).toThrow(/cannot create bpffsDir \/proc\/bpfnet-no-such-dir: .*ENOENT/);
}, 10_000);

test("a hostile directory name stays one path: nothing is run, and nothing is made outside it", () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "bpfnet-pindir-"));
  try {
    const hostile = path.join(root, "x; touch pwned $(id) `id`\nnl");
    makePinDir(hostile);
    expect(fs.readdirSync(root)).toEqual([path.basename(hostile)]);
    expect(fs.existsSync(path.join(process.cwd(), "pwned"))).toBe(false);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
