// Per-packet cost of ingress policy enforcement, measured in the kernel with
// BPF_PROG_TEST_RUN (no devices, no scheduler noise from traffic), against the open-endpoint
// baseline in the same run, and reported as ratios (never as absolute claims):
//
//   npx ts-node bench/policyLookup.ts [--rounds 9] [--repeat 200000]
//
// The program is bpf_host delivering to local pod B (it does not decrement the TTL, so a test
// run can repeat the same packet). Scenarios, all a TCP ACK from A (a pod address with its
// ipcache identity) to B, an established flow's forward packet, the case that pays for policy
// on every packet:
//   open            A and B without enforcement bits (the lean path: no flow parse, no CT)
//   1 rule          B enforces ingress, one (A, 80, TCP) row: hit at the first lookup
//   1000 rules      the same hit with 999 other rows of B (other identities and ports) in the map
//   1000, last step 1000 rows, the packet only matches (any, 0, 0): all six lookups
//   10000 rules     the first-lookup hit among 10,000 rows
//   reply (CT)      an answer to a flow B opened (CT reply: no policy lookup), B enforcing ingress
// Scenarios run interleaved (round-robin, order rotated each round); the median per scenario
// is reported. The cost must not grow with the number of rules (the lookup is O(1)).
//
// Needs root (mounts a private bpffs under the system temp dir, removed at exit).
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { EndpointFlags, loadDatapathObjects, openDatapathMaps, PolicyAction, PolicyDirection, testRun } from "../bpf";
import type { DatapathMaps, PolicyRow } from "../bpf";
import { tcp, TCP_FLAGS } from "../test/bpf/support/packets";
import { fmt, markdownTable, median, ratio } from "./lib/stats";

const A = { ip: "10.250.1.1", id: 1000, endpointId: 10 };
const B = { ip: "10.250.1.2", id: 1001, endpointId: 11 };
const LO = 1;

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

const row = (identity: number, dport: number, proto: number, direction: number = PolicyDirection.INGRESS): PolicyRow => ({
  endpointId: B.endpointId,
  direction,
  identity,
  dport,
  proto,
  action: PolicyAction.ALLOW,
  proxyPort: 0,
  ruleId: 1,
});

function setFlags(maps: DatapathMaps, aFlags: number, bFlags: number): void {
  // Both endpoints "sit" on lo: a test run sees every packet there, and anti-spoofing compares that.
  maps.endpoints.set(A.ip, { ifindex: LO, endpointId: A.endpointId, mac: "02:00:00:00:00:0a", nodeMac: "0a:00:00:00:00:01", flags: aFlags });
  maps.endpoints.set(B.ip, { ifindex: LO, endpointId: B.endpointId, mac: "02:00:00:00:00:0b", nodeMac: "0a:00:00:00:00:01", flags: bFlags });
}

/** Rows for B that never match A's packet: other identities, other ports. */
function fillerRows(maps: DatapathMaps, n: number): void {
  for (let i = 0; i < n; i++) maps.policy.set(row(2000 + i, 1000 + (i % 50000), 6));
}

function clearPolicy(maps: DatapathMaps): void {
  for (const r of maps.policy.entries()) maps.policy.delete(r);
}

function main(): void {
  const rounds = arg("rounds", 9);
  const repeat = arg("repeat", 200_000);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bplbpffs-"));
  execFileSync("mount", ["-t", "bpf", "bpf", dir]);
  const dp = loadDatapathObjects(dir);
  const maps = openDatapathMaps(dir);
  try {
    maps.config.set({ mode: "l3", vni: 0, vxlanIfindex: 0, hostIfindex: 0 });
    maps.ipcache.set(`${A.ip}/32`, A.id);
    maps.ipcache.set(`${B.ip}/32`, B.id);
    const frame = (src: string, dst: string) => ({ srcMac: "02:00:00:00:00:0a", dstMac: "02:00:00:00:00:fe", src, dst });
    const forward = tcp(frame(A.ip, B.ip), 40000, 80, TCP_FLAGS.ACK);
    const opened = tcp(frame(B.ip, A.ip), 40001, 443, TCP_FLAGS.SYN); // B → A, through bpf_lxc
    const reply = tcp(frame(A.ip, B.ip), 443, 40001, TCP_FLAGS.ACK);

    // Each scenario: set the maps up, then the packet to time.
    const scenarios: [string, () => void, Buffer][] = [
      ["open", () => (clearPolicy(maps), setFlags(maps, 0, 0)), forward],
      ["1 rule", () => (clearPolicy(maps), maps.policy.set(row(A.id, 80, 6)), setFlags(maps, 0, EndpointFlags.ENFORCE_INGRESS)), forward],
      ["1000 rules", () => (clearPolicy(maps), fillerRows(maps, 999), maps.policy.set(row(A.id, 80, 6)), setFlags(maps, 0, EndpointFlags.ENFORCE_INGRESS)), forward],
      ["1000 rules, last step", () => (clearPolicy(maps), fillerRows(maps, 999), maps.policy.set(row(0, 0, 0)), setFlags(maps, 0, EndpointFlags.ENFORCE_INGRESS)), forward],
      ["10000 rules", () => (clearPolicy(maps), fillerRows(maps, 9999), maps.policy.set(row(A.id, 80, 6)), setFlags(maps, 0, EndpointFlags.ENFORCE_INGRESS)), forward],
      [
        "reply (CT)",
        () => {
          clearPolicy(maps);
          setFlags(maps, 0, EndpointFlags.ENFORCE_INGRESS);
          testRun(dp.programs.lxc, opened); // B's end of the flow B opened
        },
        reply,
      ],
    ];
    const samples = new Map<string, number[]>(scenarios.map(([name]) => [name, []]));
    for (let r = 0; r < rounds; r++) {
      for (let k = 0; k < scenarios.length; k++) {
        const [name, setUp, packet] = scenarios[(k + r) % scenarios.length];
        setUp();
        const result = testRun(dp.programs.host, packet, { repeat });
        if (result.retval !== 7) throw new Error(`${name}: expected a redirect (7), got ${result.retval}`);
        samples.get(name)!.push(result.durationNs);
      }
    }
    const base = median(samples.get("open")!);
    const rows = scenarios.map(([name]) => {
      const m = median(samples.get(name)!);
      return [name, fmt(m, 1), fmt(ratio(m, base), 2)];
    });
    console.log(`bpf_host → local pod, per-packet cost, BPF_PROG_TEST_RUN, median of ${rounds} rounds × ${repeat} runs (${os.cpus().length} CPUs, ${os.release()})\n`);
    console.log(markdownTable(["scenario", "ns/packet", "× open"], rows));
  } finally {
    maps.close();
    dp.close();
    execFileSync("umount", [dir]);
    fs.rmdirSync(dir);
  }
}

main();
