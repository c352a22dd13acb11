import { constants } from "os";

/** What the native layer reports with every failure. */
export interface BpfErrorDetails {
  /** The libbpf/kernel call that failed, e.g. "bpf_tc_attach". */
  op: string;
  /** Positive errno value. */
  errno: number;
  /** Symbolic errno, e.g. "ENOENT"; derived from errno when absent. */
  code?: string;
  /** Everything libbpf printed during the call (warnings, verifier log). */
  libbpfLog?: string;
}

/**
 * A failed libbpf or bpf(2)/netlink call. Thrown by the native addon itself
 * (it is registered as the addon's error class), so `instanceof BpfError`
 * holds for every kernel-side failure. Argument mistakes are TypeError or
 * RangeError instead.
 */
export class BpfError extends Error {
  readonly op: string;
  readonly errno: number;
  readonly code: string;
  readonly libbpfLog: string;

  constructor(message: string, details: BpfErrorDetails) {
    super(message);
    this.name = "BpfError";
    this.op = details.op;
    this.errno = details.errno;
    this.code = details.code ?? errnoName(details.errno);
    this.libbpfLog = details.libbpfLog ?? "";
  }
}

function errnoName(errno: number): string {
  const entry = Object.entries(constants.errno).find(([, value]) => value === errno);
  return entry ? entry[0] : `E${errno}`;
}
