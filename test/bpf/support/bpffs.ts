import { execFileSync } from "child_process";
import { mkdtempSync, rmdirSync } from "fs";
import { tmpdir } from "os";
import { join } from "path";

export interface TempBpffs {
  /** Mount point: use it (or a subdirectory) as the pin root. */
  dir: string;
  /** Unmounts (dropping every pin in it) and removes the directory. */
  cleanup(): void;
}

/** A private bpffs instance, so a test's pins never mix with anyone else's and vanish on unmount. */
export function mountTempBpffs(): TempBpffs {
  const dir = mkdtempSync(join(tmpdir(), "bftbpffs-"));
  try {
    execFileSync("mount", ["-t", "bpf", "bpf", dir]);
  } catch (err) {
    rmdirSync(dir);
    throw err;
  }
  return {
    dir,
    cleanup: () => {
      execFileSync("umount", [dir]);
      rmdirSync(dir);
    },
  };
}
