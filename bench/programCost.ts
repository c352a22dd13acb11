// Per-packet cost of the datapath programs on the open path (no enforcement) against the same
// programs built from an earlier revision, in the same run, with BPF_PROG_TEST_RUN: what a
// change to bpf/ costs every packet, without devices or traffic noise. Reported as ratios.
//
//   npx ts-node bench/programCost.ts [--baseline <git rev> | --baseline-dir <objects>] [--rounds 15]
//   (--baseline-dir: objects built already, e.g. this tree with `make -C bpf OUT=DIR
//   EXTRA_CFLAGS=-DBPFNET_NO_EVENTS`: what the node monitor's events cost; docs/benchmarks.md)
//
// The baseline revision's bpf/ is exported with `git archive` and built with its own Makefile
// into a temporary directory. Both sets of objects get their own bpffs pin root and the same
// map contents (config, two local endpoints, one tunnel route). Measured, interleaved per round:
//   bpf_lxc   container → local container (TTL 255, 200 runs per sample: each run decrements it)
//   bpf_lxc   container → another host's pod (into the tunnel; the packet is not changed)
//   bpf_host  host → local container (100,000 runs per sample)
// Needs root (bpffs).
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { BpfObject, ConfigMap, EndpointMap, PeerMap, testRun, TunnelMap } from "../bpf";
import { icmpEcho, tcp, TCP_FLAGS } from "../test/bpf/support/packets";
import { fmt, markdownTable, median, ratio } from "./lib/stats";

const REPO = path.resolve(__dirname, "..");
const POD_A = { ip: "10.250.1.1", mac: "02:00:00:00:00:0a" };
const POD_B = { ip: "10.250.1.2", mac: "02:00:00:00:00:0b" };
const REMOTE_POD = "10.250.2.5";

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
}

interface Build {
  label: string;
  lxc: BpfObject;
  host: BpfObject;
  close(): void;
}

/** Loads bpf_lxc.o and bpf_host.o from objDir with their maps under pinRoot, and fills the maps. */
function load(label: string, objDir: string, pinRoot: string): Build {
  const lxc = BpfObject.load(path.join(objDir, "bpf_lxc.o"), { pinRoot });
  const host = BpfObject.load(path.join(objDir, "bpf_host.o"), { pinRoot });
  const endpoints = EndpointMap.open(pinRoot);
  const tunnel = TunnelMap.open(pinRoot);
  const config = ConfigMap.open(pinRoot);
  config.set({ mode: "vxlan", vni: 5, vxlanIfindex: 1, hostIfindex: 1 });
  // Both endpoints on lo (ifindex 1), where test runs see packets: A passes anti-spoofing.
  endpoints.set(POD_A.ip, { ifindex: 1, endpointId: 10, mac: POD_A.mac, nodeMac: "0a:00:00:00:00:01" });
  endpoints.set(POD_B.ip, { ifindex: 1, endpointId: 11, mac: POD_B.mac, nodeMac: "0a:00:00:00:00:01" });
  tunnel.set("10.250.2.0/24", { remote: "192.0.2.10" });
  if (fs.existsSync(path.join(pinRoot, PeerMap.mapName))) {
    const peers = PeerMap.open(pinRoot);
    peers.set("192.0.2.10");
    peers.close();
  }
  for (const m of [endpoints, tunnel, config]) m.close();
  return { label, lxc, host, close: () => (lxc.close(), host.close()) };
}

function main(): void {
  const baselineRev = arg("baseline", "46a0acc");
  const rounds = Number(arg("rounds", "15"));
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "bpcost-"));
  const bpffs = path.join(work, "bpffs");
  fs.mkdirSync(bpffs);
  execFileSync("mount", ["-t", "bpf", "bpf", bpffs]);
  const builds: Build[] = [];
  try {
    // The baseline's objects, from its own sources and Makefile (or prebuilt).
    const baselineDir = arg("baseline-dir", "");
    const baseOut = baselineDir ? path.resolve(baselineDir) : path.join(work, "obj");
    if (!baselineDir) {
      const src = path.join(work, "src");
      fs.mkdirSync(src);
      execFileSync("sh", ["-c", `git -C "$1" archive "$2" bpf | tar -x -C "$3"`, "sh", REPO, baselineRev, src]);
      execFileSync("make", ["-s", "-C", path.join(src, "bpf"), `OUT=${baseOut}`, path.join(baseOut, "bpf_lxc.o"), path.join(baseOut, "bpf_host.o")]);
    }
    builds.push(load(`baseline (${baselineDir ? path.basename(baseOut) : baselineRev})`, baseOut, path.join(bpffs, "base")));
    builds.push(load("current", path.join(REPO, "build", "bpf"), path.join(bpffs, "cur")));

    const frame = (dst: string, ttl = 64) => ({ srcMac: POD_A.mac, dstMac: "02:00:00:00:00:fe", src: POD_A.ip, dst, ttl });
    const cases: [string, (b: Build) => number][] = [
      ["bpf_lxc → local pod (TCP)", (b) => timed(b.lxc, "from_container", tcp(frame(POD_B.ip, 255), 40000, 80, TCP_FLAGS.ACK), 200)],
      ["bpf_lxc → tunnel (ICMP)", (b) => timed(b.lxc, "from_container", icmpEcho(frame(REMOTE_POD)), 100_000)],
      ["bpf_host → local pod (TCP)", (b) => timed(b.host, "from_host", tcp(frame(POD_B.ip), 40000, 80, TCP_FLAGS.ACK), 100_000)],
    ];
    const samples = new Map<string, number[]>();
    for (let r = 0; r < rounds; r++) {
      for (const [name, run] of cases) {
        const order = r % 2 ? [...builds].reverse() : builds;
        for (const b of order) {
          const key = `${name}|${b.label}`;
          samples.set(key, [...(samples.get(key) ?? []), run(b)]);
        }
      }
    }
    const rows = cases.map(([name]) => {
      const base = median(samples.get(`${name}|${builds[0].label}`)!);
      const cur = median(samples.get(`${name}|${builds[1].label}`)!);
      return [name, fmt(base, 1), fmt(cur, 1), fmt(ratio(cur, base), 2)];
    });
    console.log(`open-path cost per packet, BPF_PROG_TEST_RUN, median of ${rounds} interleaved rounds (${os.cpus().length} CPUs, ${os.release()})\n`);
    console.log(markdownTable(["program, packet", `${builds[0].label} ns`, "current ns", "current / baseline"], rows));
  } finally {
    for (const b of builds) b.close();
    execFileSync("umount", [bpffs]);
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/** Average ns per run of `program` over `repeat` runs of the packet; throws unless it forwards. */
function timed(obj: BpfObject, program: string, packet: Buffer, repeat: number): number {
  const result = testRun(obj.program(program), packet, { repeat });
  if (result.retval !== 7) throw new Error(`${obj.path} ${program}: expected a redirect (7), got ${result.retval}`);
  return result.durationNs;
}

main();
