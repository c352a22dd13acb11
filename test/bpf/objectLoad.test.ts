/**
 * Objects loaded on libuv's threadpool (BpfObject.loadAsync, src/objectLoad.cc), as the agent's
 * start does: several at once on a fresh pin root all end up on the same pinned maps, a failure
 * rejects with the same BpfError as the synchronous load (libbpf's words from the worker thread),
 * hostile paths are one path that does not exist, and the main thread runs while the kernel verifies.
 */
import { mkdtempSync, readdirSync, rmSync } from "fs";
import { tmpdir } from "os";
import { join } from "path";
import { ALL_DATAPATH_PROGRAMS, BpfError, BpfMap, BpfObject, DATAPATH_PROGRAMS, loadDatapathObjectsAsync, objectPath } from "../../bpf";
import { native } from "../../bpf/native";
import { COMMON_PROGRAMS, Datapath, deviceProgram, modePrograms } from "../../node-agent/daemon/datapath";
import { createLogger } from "../../node-agent/daemon/log";
import { mountTempBpffs, TempBpffs } from "./support/bpffs";
import { compileRejectedProgram } from "./support/rejectedProgram";
import { ensureBuilt } from "./support/build";

let scratch: string;
let bpffs: TempBpffs | undefined;

beforeAll(() => {
  ensureBuilt();
  scratch = mkdtempSync(join(tmpdir(), "bftload-"));
  bpffs = mountTempBpffs();
});

afterAll(() => {
  try {
    rmSync(scratch, { recursive: true, force: true });
  } finally {
    bpffs?.cleanup();
  }
});

async function rejection(p: Promise<unknown>): Promise<BpfError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(BpfError);
    return err as BpfError;
  }
  throw new Error("expected a BpfError");
}

test("every datapath object at once on a fresh pin root: all loaded, every pinned-by-name map shared through its pin", async () => {
  for (const round of [1, 2, 3]) {
    const root = join(bpffs!.dir, `fresh${round}`);
    const set = await loadDatapathObjectsAsync(ALL_DATAPATH_PROGRAMS, root);
    try {
      for (const kind of ALL_DATAPATH_PROGRAMS) expect(set.programs[kind].name).toBe(DATAPATH_PROGRAMS[kind].program);
      const pinned = set.lxc.maps().filter((m) => m.pinPath !== null);
      expect(pinned.length).toBeGreaterThan(5);
      for (const kind of ALL_DATAPATH_PROGRAMS) {
        for (const m of set[kind].maps().filter((x) => x.pinPath !== null)) {
          const own = set[kind].map(m.name);
          const pin = BpfMap.open(m.pinPath!);
          try {
            expect([kind, m.name, own.info.id]).toEqual([kind, m.name, pin.info.id]);
          } finally {
            own.close();
            pin.close();
          }
        }
      }
      expect(readdirSync(root).sort()).toEqual(pinned.map((m) => m.name).sort());
    } finally {
      set.close();
    }
  }
});

test("a load on the threadpool leaves the main thread free: timers run while the kernel verifies bpf_lxc", async () => {
  const root = join(bpffs!.dir, "ticks");
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  try {
    const obj = await BpfObject.loadAsync(objectPath("lxc"), { pinRoot: root });
    obj.close();
  } finally {
    clearInterval(timer);
  }
  // A synchronous load would give the interval no turn at all before it resolves.
  expect(ticks).toBeGreaterThan(0);
});

test("a missing file rejects with ENOENT naming it, libbpf's words from the worker thread on the error", async () => {
  const path = join(scratch, "missing.o");
  const err = await rejection(BpfObject.loadAsync(path));
  expect(err).toMatchObject({ errno: 2, code: "ENOENT", op: "bpf_object__open_file", name: "BpfError" });
  expect(err.message).toContain(path);
  expect(err.libbpfLog).toMatch(/libbpf: .*failed to open/);
});

test("a program the verifier rejects: the verifier log is on the error; the other objects of the set are closed", async () => {
  const object = compileRejectedProgram(scratch);
  const [bad, good] = await Promise.allSettled([BpfObject.loadAsync(object), BpfObject.loadAsync(objectPath("host"), { pinRoot: join(bpffs!.dir, "beside") })]);
  expect(bad.status).toBe("rejected");
  const err = (bad as PromiseRejectedResult).reason as BpfError;
  expect(err).toBeInstanceOf(BpfError);
  expect(err.op).toBe("bpf_object__load");
  expect(err.code).toBe("EACCES");
  expect(err.libbpfLog).toContain("BEGIN PROG LOAD LOG");
  expect(err.libbpfLog).toMatch(/invalid access to packet/);
  expect(err.message).toContain("reads_past_the_end");
  expect(good.status).toBe("fulfilled");
  (good as PromiseFulfilledResult<BpfObject>).value.close();
});

test("hostile object paths are one path that does not exist; nothing is created; NUL is refused before any work", async () => {
  for (const name of ["a b.o", "x;touch pwned.o", "$(touch pwned).o", "`touch pwned`.o", "line\nbreak.o", "../../etc/passwd.o", "q'uo\"te.o"]) {
    const path = join(scratch, name);
    const err = await rejection(BpfObject.loadAsync(path));
    expect([name, err.code, err.message.includes(path)]).toEqual([name, "ENOENT", true]);
  }
  expect(readdirSync(scratch).filter((f) => f.includes("pwned"))).toEqual([]);
  expect(() => native().objectLoad("bad\0path.o", null, null)).toThrow(/must not contain NUL/);
  expect(() => native().objectLoad(objectPath("host"), null, { bpfnet_peers: 0 })).toThrow(/maxEntries.bpfnet_peers must be a number/);
});

test("the agent's Datapath: only the objects asked for; another object adopted later; one adopted after close is closed at once", async () => {
  const root = join(bpffs!.dir, "agent");
  const log = createLogger("error");
  const dp = await Datapath.load(root, undefined, log, {}, COMMON_PROGRAMS);
  const later = await loadDatapathObjectsAsync([deviceProgram("vxlan")], root);
  try {
    // Refused before any hook is made (ifindex 1 is this namespace's lo: nothing is created on it).
    expect(() => dp.attach("overlay", 1)).toThrow(/the overlay program \(bpf_overlay.o\) is not loaded/);
    dp.adopt(later);
    expect(later.overlay.closed).toBe(false);
  } finally {
    dp.close();
  }
  expect(later.overlay.closed).toBe(true);
  const tooLate = await loadDatapathObjectsAsync(["netdev"], root);
  dp.adopt(tooLate); // a stop while it loaded
  expect(tooLate.netdev.closed).toBe(true);
  expect(modePrograms("l3")).toEqual(["lxc", "host", "netdev"]);
});
