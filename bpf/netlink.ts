/**
 * rtnetlink through the addon (src/netlink.cc): requests encoded by rtnetlink.ts, sent in order
 * on libuv's threadpool from a socket opened inside the given network namespace, so the event
 * loop never waits for the kernel and no process is spawned. Failures are NetlinkError: the
 * errno, the step that failed, and the kernel's own reason when it gave one.
 */
import * as fs from "fs";
import * as path from "path";
import { BpfError } from "./errors";
import { native } from "./native";
import { decodeLink, linkDel, linkGet, netkitAdd, RtLink, RtRequest } from "./rtnetlink";

/** A failed rtnetlink request (or the namespace/socket before it). */
export class NetlinkError extends BpfError {
  constructor(
    message: string,
    details: { op: string; errno: number; code?: string },
    /** What was being done: "enter namespace …" or a request's step, e.g. "create veth pair a/b". */
    readonly step: string,
    /** The kernel's extended-ack text, "" when it gave none. */
    readonly kernelMessage: string,
  ) {
    super(message, details);
    this.name = "NetlinkError";
  }
}

/**
 * A namespace path fit to open: absolute, normalized, no NUL and no ".." (a hostile path is
 * refused here, before any syscall). null means the caller's own namespace.
 */
export function checkNetnsPath(netns: string | null): string | null {
  if (netns === null) return null;
  if (typeof netns !== "string" || !path.isAbsolute(netns) || netns.includes("\0") || netns.split("/").includes("..") || path.normalize(netns) !== netns) {
    throw new RangeError(`network namespace must be a normalized absolute path like /run/netns/NAME, got ${JSON.stringify(netns)}`);
  }
  return netns;
}

/**
 * Sends `requests` in order from a NETLINK_ROUTE socket in `netns` (null: the agent's own) and
 * returns each one's replies (empty for plain acks). The first failure stops the rest. A request
 * made with REPLIED_IFINDEX acts on the device an earlier linkGet of the same call read back.
 */
export async function rtnetlink(netns: string | null, requests: readonly RtRequest[]): Promise<Buffer[][]> {
  const where = checkNetnsPath(netns);
  try {
    return await native().netlinkTransact(
      where,
      requests.map((r) => r.message),
      requests.map((r) => r.ifindexAt ?? null),
    );
  } catch (e) {
    if (!(e instanceof BpfError)) throw e;
    const index = (e as BpfError & { requestIndex?: number }).requestIndex ?? -1;
    const kernelMessage = (e as BpfError & { kernelMessage?: string }).kernelMessage ?? "";
    const step = index >= 0 ? requests[index].step : `open a netlink socket in ${where ?? "the agent's namespace"}`;
    const reason = `${e.code} (${kernelMessage || e.message.replace(/^.*: /s, "")})`;
    throw new NetlinkError(`${step}${where ? ` in ${where}` : ""}: ${reason}`, { op: e.op, errno: e.errno, code: e.code }, step, kernelMessage);
  }
}

/** The device `name` in `netns`, or undefined when there is none. */
export async function readLink(netns: string | null, name: string): Promise<RtLink | undefined> {
  try {
    const [replies] = await rtnetlink(netns, [linkGet(name)]);
    return replies.length ? decodeLink(replies[0]) : undefined;
  } catch (e) {
    if (e instanceof NetlinkError && e.code === "ENODEV") return undefined;
    throw e;
  }
}

/** Deletes the device `name` in `netns`; false when there was none. */
export async function deleteLink(netns: string | null, name: string): Promise<boolean> {
  try {
    await rtnetlink(netns, [linkDel(name)]);
    return true;
  } catch (e) {
    if (e instanceof NetlinkError && e.code === "ENODEV") return false;
    throw e;
  }
}

let ownNetns: number | undefined;

/**
 * An fd of this process's network namespace, opened once and kept (IFLA_NET_NS_FD names the
 * namespace a new device is moved into; the addon's worker threads share the process's fds).
 */
export function ownNetnsFd(): number {
  ownNetns ??= fs.openSync("/proc/self/ns/net", "r");
  return ownNetns;
}

/** Whether the kernel makes netkit devices, and if not, its answer. */
export type NetkitSupport = { supported: true } | { supported: false; reason: string };

/** The throwaway pair's names (a probe's leftover is deleted before the next probe). */
export const NETKIT_PROBE_NAMES = ["bnkprobe0", "bnkprobe1"] as const;

/**
 * Asks the kernel itself whether it has netkit (CONFIG_NETKIT; 6.7+): creates a throwaway pair in
 * `netns` (null: the caller's) and deletes it again. EOPNOTSUPP is the kernel's "no such device
 * kind" (netkit not built, or a module that cannot be loaded); any other failure is thrown.
 */
export async function probeNetkit(netns: string | null): Promise<NetkitSupport> {
  const [primary, peer] = NETKIT_PROBE_NAMES;
  await deleteLink(netns, primary);
  const mac = (last: string) => `02:00:00:00:00:${last}`;
  try {
    await rtnetlink(netns, [netkitAdd({ name: primary, mac: mac("01"), mtu: 1500 }, { name: peer, mac: mac("02"), mtu: 1500 })]);
  } catch (e) {
    if (e instanceof NetlinkError && e.code === "EOPNOTSUPP") return { supported: false, reason: e.message };
    throw e;
  }
  await deleteLink(netns, primary); // takes its peer with it
  return { supported: true };
}
