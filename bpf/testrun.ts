import { native } from "./native";
import { BpfProgram } from "./object";
import { netnsPath } from "./tc";

export interface TestRunOptions {
  /** Runs of the program over the same input; duration is the average. Default 1. */
  repeat?: number;
  /** Device the packet appears on (skb->ifindex); default loopback (1). */
  ifindex?: number;
  /** skb->cb words (up to 5 u32) the program starts with; test builds read metadata from them. */
  cb?: number[];
  /**
   * Network namespace to run in (an `ip netns` name or a path): its devices (`ifindex`), routes
   * and neighbours are what the program sees, e.g. for bpf_fib_lookup. Default: the caller's.
   */
  netns?: string;
}

export interface TestRunResult {
  /** The program's return value (a tc action for tc programs). */
  retval: number;
  /** The packet as the program left it. */
  data: Buffer;
  /** Average run time in nanoseconds. */
  durationNs: number;
  /** skb->mark as the program left it (e.g. a redirect to the L7 proxy). */
  mark: number;
}

/**
 * BPF_PROG_TEST_RUN: runs prog on a crafted Ethernet frame in the kernel,
 * with real maps, without sending anything (redirects only set the return
 * value).
 */
export function testRun(prog: BpfProgram, packet: Buffer, options: TestRunOptions = {}): TestRunResult {
  const repeat = options.repeat ?? 1;
  const ifindex = options.ifindex ?? 0;
  if (!Number.isInteger(repeat) || repeat < 1) throw new RangeError(`bad repeat ${repeat}`);
  if (!Number.isInteger(ifindex) || ifindex < 0) throw new RangeError(`bad ifindex ${ifindex}`);
  if (packet.length < 14) throw new RangeError("packet must hold at least an Ethernet header");
  // The addon checks too; this gives callers a RangeError of their own realm.
  if (options.cb && (options.cb.length > 5 || options.cb.some((w) => !Number.isInteger(w) || w < 0 || w > 0xffffffff))) {
    throw new RangeError(`cb must be at most 5 u32 words, got ${JSON.stringify(options.cb)}`);
  }
  const out = native().progTestRun(prog.fd, packet, repeat, ifindex, options.cb, netnsPath(options.netns));
  return { retval: out.retval, data: out.data, durationNs: out.duration, mark: out.mark };
}
