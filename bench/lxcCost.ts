// Per-packet cost of the l3 paths' programs on COLD caches, measured in the kernel with
// BPF_PROG_TEST_RUN, against an empty tc program in the same run (ratios and ns differences):
//
//   npx ts-node bench/lxcCost.ts [--rounds 200] [--before <commit>]
//
// Why cold: the l3 idle-ping gap (docs/benchmarks.md "Issue 13") is a program running once every
// 10 ms on a woken vCPU, where every map, helper and code line it touches is out of cache; warm,
// the same program costs a few hundred ns and no latency. Before each sample the bench writes a
// buffer twice the size of the last-level cache, so the program's maps, the JIT image and the
// TLB entries are evicted as they would be between two idle pings; the kernel times the single
// run (the program alone, not the syscall). Warm figures (1,000 repeats) are printed beside.
//
// Paths, for a plain endpoint (no policy, no service), the bench's l3 idle ping's packets:
//   out  bpf_lxc: a container's ICMP echo to another host's pod (route row, FIB next hop
//        resolved: bpf_redirect to the underlay)
//   in   bpf_netdev: the echo reply from the wire to a local endpoint (bpf_redirect_peer)
// each as of --before (default: the commit before the per-packet cuts, built from git into a
// temporary directory) and as built now (build/bpf), all loaded on the same pinned maps, plus
// the empty program (bench/lib/pass_tc.c): the floor of "a program runs at all".
// Samples interleaved (order rotated each round); medians.
//
// Needs root (a private bpffs and a network namespace "bftlxccost", both removed at exit).
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { BpfObject, BpfProgram, defaultObjectDir, loadDatapathObjects, openDatapathMaps, testRun } from "../bpf";
import { run, tryRun } from "../lab/sh";
import { mountTempBpffs } from "../test/bpf/support/bpffs";
import { addL3Underlay, REMOTE_POD, REMOTE_PREFIX, ROUTER_MAC } from "../test/bpf/support/l3Underlay";
import { icmpEcho, icmpEchoReply } from "../test/bpf/support/packets";
import { deleteNetns } from "../test/bpf/support/topology";
import { fmt, markdownTable, median } from "./lib/stats";

const REPO = path.resolve(__dirname, "..");
const NS = "bftlxccost";
const LOOPBACK = 1;
const POD_A = { ip: "10.252.1.1", mac: "02:00:00:00:02:01" };
/** The commit before the per-packet cuts (docs/benchmarks.md "bpf_lxc per-packet cost"). */
const BEFORE_CUTS = "95c9277";

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
}

/** Objects of `commit`'s bpf/ tree, built into a temporary directory. */
function buildAt(commit: string, dir: string): string {
  run("sh", ["-c", `git -C "$0" archive "$1" bpf | tar -x -C "$2"`, REPO, commit, dir]);
  const out = path.join(dir, "out");
  run("make", ["-s", "-C", path.join(dir, "bpf"), `OUT=${out}`, path.join(out, "bpf_lxc.o"), path.join(out, "bpf_netdev.o")]);
  return out;
}

function buildPass(dir: string): string {
  const out = path.join(dir, "pass_tc.o");
  const multiarch = tryRun("gcc", ["-print-multiarch"]).stdout.trim() || "x86_64-linux-gnu";
  run("clang", ["-O2", "-g", "-target", "bpf", `-I/usr/include/${multiarch}`, "-c", path.join(__dirname, "lib", "pass_tc.c"), "-o", out]);
  return out;
}

/** Twice the last-level cache, written before each cold sample. */
const evictBuf = Buffer.alloc(64 << 20);
let evictByte = 0;
function evictCaches(): void {
  evictBuf.fill(++evictByte & 0xff);
}

/** The verified (xlated) and JIT-compiled sizes of a loaded program, from bpftool. */
function programSizes(prog: BpfProgram): string {
  const shown = JSON.parse(run("bpftool", ["-j", "prog", "show", "id", String(prog.info().id)])) as { bytes_xlated?: number; bytes_jited?: number };
  return `${shown.bytes_xlated ?? "?"} / ${shown.bytes_jited ?? "?"}`;
}

interface Variant {
  what: string;
  prog: BpfProgram;
  frame: Buffer;
  expect: number;
}

function main(): void {
  const rounds = Number(arg("rounds", "200"));
  const before = arg("before", BEFORE_CUTS);
  if (!/^[0-9a-f]{7,40}$/.test(before)) throw new Error(`--before must be a commit id, got ${before}`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "blxccost-"));
  const bpffs = mountTempBpffs();
  const opened: { close(): void }[] = [];
  try {
    const beforeDir = buildAt(before, tmp);
    const now = loadDatapathObjects(bpffs.dir);
    opened.push(now);
    const old = { lxc: BpfObject.load(path.join(beforeDir, "bpf_lxc.o"), { pinRoot: bpffs.dir }), netdev: BpfObject.load(path.join(beforeDir, "bpf_netdev.o"), { pinRoot: bpffs.dir }) };
    opened.push(old.lxc, old.netdev);
    const pass = BpfObject.load(buildPass(tmp));
    opened.push(pass);
    const maps = openDatapathMaps(bpffs.dir);
    opened.push(maps);

    const underlay = addL3Underlay(NS);
    // The sender sits on lo (a test run's packets appear there); the replies' receiver is "on" ul1 for redirect_peer.
    maps.config.set({ mode: "l3", vni: 0, vxlanIfindex: 0, hostIfindex: 4444, gateway: "10.252.1.254" });
    maps.endpoints.set(POD_A.ip, { ifindex: LOOPBACK, endpointId: 16, mac: POD_A.mac, nodeMac: "0a:00:00:00:02:01" });
    maps.routes.set(REMOTE_PREFIX, { ifindex: underlay.ifindex });

    const out = icmpEcho({ srcMac: POD_A.mac, dstMac: "02:00:00:00:00:fe", src: POD_A.ip, dst: REMOTE_POD, ttl: 64 });
    const back = icmpEchoReply({ srcMac: ROUTER_MAC, dstMac: underlay.mac, src: REMOTE_POD, dst: POD_A.ip, ttl: 62 });
    const TC_ACT_OK = 0;
    const TC_ACT_REDIRECT = 7;
    const variants: Variant[] = [
      { what: "empty program (TC_ACT_OK)", prog: pass.program("pass"), frame: out, expect: TC_ACT_OK },
      { what: `bpf_lxc out, ${before}`, prog: old.lxc.program("from_container"), frame: out, expect: TC_ACT_REDIRECT },
      { what: "bpf_lxc out, now", prog: now.programs.lxc, frame: out, expect: TC_ACT_REDIRECT },
      { what: `bpf_netdev in, ${before}`, prog: old.netdev.program("from_netdev"), frame: back, expect: TC_ACT_REDIRECT },
      { what: "bpf_netdev in, now", prog: now.programs.netdev, frame: back, expect: TC_ACT_REDIRECT },
    ];
    for (const v of variants) {
      const r = testRun(v.prog, v.frame, { netns: NS });
      if (r.retval !== v.expect) throw new Error(`${v.what}: returned ${r.retval}, expected ${v.expect}`);
    }
    const cold: number[][] = variants.map(() => []);
    const warm: number[][] = variants.map(() => []);
    for (let r = 0; r < rounds; r++) {
      for (let k = 0; k < variants.length; k++) {
        const i = (k + r) % variants.length;
        evictCaches();
        cold[i].push(testRun(variants[i].prog, variants[i].frame, { netns: NS }).durationNs);
        if (r % 20 === 0) warm[i].push(testRun(variants[i].prog, variants[i].frame, { netns: NS, repeat: 1000 }).durationNs);
      }
    }
    const floor = median(cold[0]);
    console.log(`cold = one run after evicting ${evictBuf.length >> 20} MB; ${rounds} samples each, interleaved; load ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`);
    console.log(
      markdownTable(
        ["program, path", "cold p50 ns", "cold − empty ns", "warm ns (1000 repeats, p50)", "bytes xlated / jited"],
        variants.map((v, i) => [v.what, fmt(median(cold[i]), 0), fmt(median(cold[i]) - floor, 0), fmt(median(warm[i]), 0), programSizes(v.prog)]),
      ),
    );
  } finally {
    for (const o of opened.reverse()) o.close();
    deleteNetns(NS);
    bpffs.cleanup();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main();
