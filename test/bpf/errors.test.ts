/** Failures surface as BpfError with errno, code, the failing op and libbpf's own words. */
import { execFileSync } from "child_process";
import { existsSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import { join } from "path";
import { BpfError, BpfMap, BpfObject, nativeAddonPath, objectPath, TcHook } from "../../bpf";
import type { NativeBinding } from "../../bpf/native";
import { mountTempBpffs, TempBpffs } from "./support/bpffs";
import { compileRejectedProgram } from "./support/rejectedProgram";
import { ensureBuilt, REPO_ROOT } from "./support/build";
import { ip, linkInfo } from "./support/netns";
import { addNetns, deleteNetns } from "./support/topology";

const NETNS = "bfterr";
let scratch: string;
let bpffs: TempBpffs | undefined;

beforeAll(() => {
  ensureBuilt();
  scratch = mkdtempSync(join(tmpdir(), "bfterr-"));
  bpffs = mountTempBpffs();
});

afterAll(() => {
  try {
    deleteNetns(NETNS);
    rmSync(scratch, { recursive: true, force: true });
  } finally {
    bpffs?.cleanup();
  }
});

/** Runs fn, expecting a BpfError, and returns it for closer checks. */
function bpfError(fn: () => unknown): BpfError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(BpfError);
    return err as BpfError;
  }
  throw new Error("expected a BpfError");
}

describe("loading objects", () => {
  test("a missing object file: ENOENT naming the file", () => {
    const path = join(scratch, "missing.o");
    const err = bpfError(() => BpfObject.load(path));
    expect(err).toMatchObject({ errno: 2, code: "ENOENT", op: "bpf_object__open_file", name: "BpfError" });
    expect(err.message).toContain(path);
    expect(err.message).toMatch(/No such file or directory/);
    expect(err.libbpfLog).toMatch(/libbpf: .*failed to open/);
  });

  test("a file that is not ELF: rejected with libbpf's reason", () => {
    const path = join(scratch, "garbage.o");
    writeFileSync(path, "not an ELF file\n".repeat(8));
    const err = bpfError(() => BpfObject.load(path));
    expect(err.op).toBe("bpf_object__open_file");
    expect(err.errno).toBeGreaterThan(0);
    expect(err.message).toContain("libbpf:");
  });

  test("a program the verifier rejects: the verifier log is on the error", () => {
    const object = compileRejectedProgram(scratch);
    const err = bpfError(() => BpfObject.load(object));
    expect(err.op).toBe("bpf_object__load");
    expect(err.code).toBe("EACCES");
    expect(err.libbpfLog).toContain("BEGIN PROG LOAD LOG");
    expect(err.libbpfLog).toMatch(/invalid access to packet/);
    expect(err.message).toContain("reads_past_the_end");
  });

  test("asking for a program the object lacks", () => {
    const obj = BpfObject.load(objectPath("lxc"), { pinRoot: bpffs!.dir });
    try {
      expect(() => obj.program("nope")).toThrow(/has no program nope \(has from_container\)/);
    } finally {
      obj.close();
    }
    expect(obj.closed).toBe(true);
    expect(() => obj.programs).toThrow(/closed/);
  });
});

describe("maps and pins", () => {
  test("opening a map pin that does not exist", () => {
    const err = bpfError(() => BpfMap.open(join(bpffs!.dir, "no_such_map")));
    expect(err).toMatchObject({ errno: 2, code: "ENOENT", op: "bpf_obj_get" });
  });

  test("a pinned program is not a map; program pins can be removed again", () => {
    const obj = BpfObject.load(objectPath("host"), { pinRoot: bpffs!.dir });
    const pin = join(bpffs!.dir, "from_host_prog");
    try {
      obj.pinProgram("from_host", pin);
      expect(existsSync(pin)).toBe(true);
      const err = bpfError(() => BpfMap.open(pin));
      expect(err).toMatchObject({ code: "EINVAL" });
      expect(err.message).toMatch(/not a BPF map/);
      obj.unpinProgram("from_host", pin);
      expect(existsSync(pin)).toBe(false);
    } finally {
      obj.close();
    }
  });

  test("a closed map refuses further calls", () => {
    const obj = BpfObject.load(objectPath("lxc"), { pinRoot: bpffs!.dir });
    const map = obj.map("bpfnet_config");
    obj.close();
    expect(map.lookup(Buffer.alloc(4))?.length).toBe(32); // its own fd outlives the object
    map.close();
    expect(() => map.lookup(Buffer.alloc(4))).toThrow(/closed/);
  });
});

describe("tc", () => {
  test("opening a hook on a missing ifindex: ENODEV naming the ifindex", () => {
    const err = bpfError(() => TcHook.open(0x7ffffff0, "ingress"));
    expect(err).toMatchObject({ errno: 19, code: "ENODEV", op: "bpf_tc_hook_create" });
    expect(err.message).toContain(`ifindex ${0x7ffffff0}`);
  });

  test("a namespace that does not exist", () => {
    const err = bpfError(() => TcHook.open(1, "ingress", { netns: "bft-no-such-netns" }));
    expect(err).toMatchObject({ code: "ENOENT", op: "open" });
    expect(err.message).toContain("/var/run/netns/bft-no-such-netns");
  });

  describe("on a device in a test namespace", () => {
    let obj: BpfObject;
    beforeAll(() => {
      addNetns(NETNS);
      ip("-n", NETNS, "link", "add", "bfterr1", "type", "veth", "peer", "name", "bfterr2");
      obj = BpfObject.load(objectPath("lxc"), { pinRoot: bpffs!.dir });
    });
    afterAll(() => obj.close());

    test("detaching when nothing is attached: ENOENT", () => {
      const hook = TcHook.open(linkInfo(NETNS, "bfterr1").ifindex, "ingress", { netns: NETNS });
      expect(hook.created).toBe(true);
      expect(bpfError(() => hook.detach())).toMatchObject({ code: "ENOENT", op: "bpf_tc_detach" });
      // A second open finds the qdisc in place and will not destroy it.
      const again = TcHook.open(hook.ifindex, "egress", { netns: NETNS });
      expect(again.created).toBe(false);
      expect(again.destroy()).toBe(false);
      expect(hook.destroy()).toBe(true);
    });

    test("attaching to a device that has gone away: ENODEV", () => {
      const ifindex = linkInfo(NETNS, "bfterr1").ifindex;
      const hook = TcHook.open(ifindex, "ingress", { netns: NETNS });
      ip("-n", NETNS, "link", "del", "bfterr1");
      const err = bpfError(() => hook.attach(obj.program("from_container")));
      expect(err).toMatchObject({ code: "ENODEV", op: "bpf_tc_attach" });
      expect(err.message).toContain(`ifindex ${ifindex}`);
    });
  });
});

test("the addon the build produced is the one bpf/ loads, and it works", () => {
  const built = join(REPO_ROOT, "bpf", "addon", "build", "Release", "bpfnet_native.node");
  expect(realpathSync(nativeAddonPath())).toBe(realpathSync(built));
  // Loaded and called for real: the kernel's possible CPUs as libbpf reads them, and an object opened.
  const addon = require(built) as NativeBinding;
  expect(addon.possibleCpus()).toBe(Number(execFileSync("sh", ["-c", "n=0; for r in $(tr , ' ' </sys/devices/system/cpu/possible); do a=${r%-*}; b=${r#*-}; n=$((n + b - a + 1)); done; echo $n"], { encoding: "utf8" })));
  const obj = new addon.ObjectHandle(objectPath("lxc"), bpffs!.dir);
  try {
    expect(obj.programs().map((p) => p.name)).toContain("from_container");
  } finally {
    obj.close();
  }
});
