// Per-packet cost of service translation in bpf_lxc, measured in the kernel with
// BPF_PROG_TEST_RUN against the untranslated path in the same run, reported as ratios:
//
//   npx ts-node bench/lbCost.ts [--rounds 15] [--runs 400]
//
// A container A sends a TCP ACK to local pod B (bpf_lxc → redirect to B). Scenarios:
//   direct              A → B:8080, no service involved (the baseline: one service-map miss)
//   10 svc, pinned      A → VIP:80 among 10 services, the flow's backend already in CT
//   10000 svc, pinned   the same among 10,000 services (3 backends each: 40,000 map rows)
//   10 svc, new flow    a new source port each run: selection, two CT entries created
//   10000 svc, new flow the same among 10,000 services
// A test run rewrites its packet (DNAT, TTL), and repeating one run would time the rewritten
// packet, so every sample is one run on a fresh copy; the in-kernel duration of a single run
// includes the clock reads, the same in every scenario. Scenarios run interleaved (order rotated
// each round); medians of all samples. The cost must not grow with the number of services.
//
// Needs root (mounts a private bpffs under the system temp dir, removed at exit).
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { LbProto, loadDatapathObjects, openDatapathMaps, openLbMaps, testRun } from "../bpf";
import type { LbMaps } from "../bpf";
import { tcp, TCP_FLAGS } from "../test/bpf/support/packets";
import { fmt, markdownTable, median, ratio } from "./lib/stats";

const A = { ip: "10.250.1.1", endpointId: 10 };
const B = { ip: "10.250.1.2", endpointId: 11 };
const LO = 1;
const VIP = "10.96.0.10";

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

/** n services on ports of 10.97.x.y (+ the measured VIP:80), 3 backends each, all B. */
function defineServices(lb: LbMaps, n: number): void {
  for (const s of lb.services.entries()) lb.services.delete(s);
  for (let b = 1; b <= 3; b++) lb.backends.set(b, { addr: B.ip, port: 8080, proto: LbProto.TCP });
  lb.revNat.set(1, { vip: VIP, port: 80 });
  lb.services.set({ vip: VIP, port: 80, proto: LbProto.TCP }, { revNatIndex: 1, backendIds: [1, 2, 3] });
  for (let i = 1; i < n; i++) {
    const vip = `10.97.${(i >> 8) & 0xff}.${i & 0xff}`;
    lb.services.set({ vip, port: 80, proto: LbProto.TCP }, { revNatIndex: 1 + i, backendIds: [1, 2, 3] });
  }
}

function main(): void {
  const rounds = arg("rounds", 15);
  const runs = arg("runs", 400);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bplbpffs-"));
  execFileSync("mount", ["-t", "bpf", "bpf", dir]);
  const dp = loadDatapathObjects(dir);
  const maps = openDatapathMaps(dir);
  const lb = openLbMaps(dir);
  try {
    maps.config.set({ mode: "l3", vni: 0, vxlanIfindex: 0, hostIfindex: 0 });
    // Both endpoints "sit" on lo: a test run sees every packet there, and anti-spoofing compares that.
    maps.endpoints.set(A.ip, { ifindex: LO, endpointId: A.endpointId, mac: "02:00:00:00:00:0a", nodeMac: "0a:00:00:00:00:01" });
    maps.endpoints.set(B.ip, { ifindex: LO, endpointId: B.endpointId, mac: "02:00:00:00:00:0b", nodeMac: "0a:00:00:00:00:01" });
    const frame = { srcMac: "02:00:00:00:00:0a", dstMac: "02:00:00:00:00:fe", src: A.ip };
    const toB = tcp({ ...frame, dst: B.ip }, 40000, 8080, TCP_FLAGS.ACK);
    const toVip = tcp({ ...frame, dst: VIP }, 40000, 80, TCP_FLAGS.ACK);
    let sport = 1024;
    const freshFlow = () => tcp({ ...frame, dst: VIP }, (sport = sport >= 65000 ? 1024 : sport + 1), 80, TCP_FLAGS.SYN);
    const clearCt = () => maps.ct.entries().forEach((e) => maps.ct.delete(e));

    let defined = 0;
    const withServices = (n: number) => () => {
      if (defined !== n) (defineServices(lb, n), (defined = n));
    };
    const scenarios: [string, () => void, () => Buffer][] = [
      ["direct", () => undefined, () => toB],
      ["10 svc, pinned", withServices(10), () => toVip],
      ["10000 svc, pinned", withServices(10_000), () => toVip],
      ["10 svc, new flow", () => (withServices(10)(), clearCt()), freshFlow],
      ["10000 svc, new flow", () => (withServices(10_000)(), clearCt()), freshFlow],
    ];
    const samples = new Map<string, number[]>(scenarios.map(([name]) => [name, []]));
    for (let r = 0; r < rounds; r++) {
      for (let k = 0; k < scenarios.length; k++) {
        const [name, setUp, packet] = scenarios[(k + r) % scenarios.length];
        setUp();
        testRun(dp.programs.lxc, packet()); // pins the flow of the pinned scenarios
        for (let i = 0; i < runs; i++) {
          const result = testRun(dp.programs.lxc, packet());
          if (result.retval !== 7) throw new Error(`${name}: expected a redirect (7), got ${result.retval}`);
          samples.get(name)!.push(result.durationNs);
        }
      }
    }
    const base = median(samples.get("direct")!);
    const rows = scenarios.map(([name]) => {
      const m = median(samples.get(name)!);
      return [name, fmt(m, 1), fmt(ratio(m, base), 2)];
    });
    const at = (name: string) => median(samples.get(name)!);
    console.log(`bpf_lxc → local pod, per-packet cost, BPF_PROG_TEST_RUN, median of ${rounds} rounds × ${runs} single runs (${os.cpus().length} CPUs, ${os.release()})\n`);
    console.log(markdownTable(["scenario", "ns/packet", "× direct"], rows));
    console.log(`\n10,000 vs 10 services: pinned ${fmt(ratio(at("10000 svc, pinned"), at("10 svc, pinned")), 2)}×, new flow ${fmt(ratio(at("10000 svc, new flow"), at("10 svc, new flow")), 2)}×`);
  } finally {
    lb.close();
    maps.close();
    dp.close();
    execFileSync("umount", [dir]);
    fs.rmdirSync(dir);
  }
}

main();
