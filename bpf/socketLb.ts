/**
 * Socket-level service load balancing for clients in a host's own network namespace: the cgroup
 * sock_addr programs of bpf_sock.o attached to the cgroup-v2 root as bpf_links pinned in the
 * host's pin root (so they outlive the agent), acting only in the namespace whose cookie is in
 * bpfnet_sock_cfg. Contract: bpf/README.md, "Service load balancing".
 */
import { execFileSync } from "child_process";
import { mkdirSync, readFileSync, renameSync } from "fs";
import { join } from "path";
import { SockConfigMap } from "./maps";
import { native } from "./native";
import { BpfObject } from "./object";
import { defaultObjectDir } from "./paths";

/** The socket hooks, each a program of bpf_sock.o. */
export const SOCKET_LB_HOOKS = {
  connect4: "sock_connect4",
  sendmsg4: "sock_sendmsg4",
  recvmsg4: "sock_recvmsg4",
  getpeername4: "sock_getpeername4",
} as const;

export type SocketLbHook = keyof typeof SOCKET_LB_HOOKS;

/** The object file of the socket hooks, in the datapath's object directory. */
export const SOCKET_LB_OBJECT = "bpf_sock.o";

/** Where attachSocketLb mounts cgroup2 when this process sees none (as Cilium mounts /run/cilium/cgroupv2). */
export const CGROUP_V2_MOUNT = "/run/bpfnet/cgroup2";

/**
 * Where the hooks attach: the cgroup-v2 root, which every process of the machine is below. The
 * cgroup2 mount of this process's mount namespace (/sys/fs/cgroup, or /sys/fs/cgroup/unified on a
 * hybrid system); when there is none (`ip netns exec`, how lab hosts run, mounts a fresh /sys
 * without it) cgroup2 is mounted at CGROUP_V2_MOUNT: the same hierarchy, seen from here.
 */
export function cgroupV2Root(): string {
  const mounted = readFileSync("/proc/self/mounts", "utf8")
    .split("\n")
    .map((l) => l.split(" "))
    .find((f) => f[2] === "cgroup2");
  // Mount points are octal-escaped in /proc/*/mounts (a space is \040).
  if (mounted) return mounted[1].replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  mkdirSync(CGROUP_V2_MOUNT, { recursive: true });
  execFileSync("mount", ["-t", "cgroup2", "none", CGROUP_V2_MOUNT], { stdio: ["ignore", "ignore", "pipe"] });
  return CGROUP_V2_MOUNT;
}

/** A hook's link as pinned in a pin root. */
export interface SocketLbLink {
  hook: SocketLbHook;
  /** bpffs path of the link's pin. */
  pin: string;
  linkId: number;
  progId: number;
  progTag: string;
  /** The cgroup it is attached to; 0n once detached. */
  cgroupId: bigint;
}

export interface AttachSocketLbOptions {
  /** Directory holding bpf_sock.o; default defaultObjectDir(). */
  objectDir?: string;
  /** Default cgroupV2Root(). */
  cgroupPath?: string;
  /** The namespace the hooks act in; default: the caller's own (netnsCookie()). */
  netnsCookie?: bigint;
}

/** The pin of one hook's link in a pin root. */
export function socketLbPin(pinRoot: string, hook: SocketLbHook): string {
  return join(pinRoot, `bpfnet_sock_${hook}`);
}

/** SO_NETNS_COOKIE of the caller's network namespace: what bpf_get_netns_cookie reports for its sockets. */
export function netnsCookie(): bigint {
  return native().netnsCookie();
}

/** The hooks' links pinned in pinRoot (attached or not). */
export function socketLbLinks(pinRoot: string): SocketLbLink[] {
  return (Object.keys(SOCKET_LB_HOOKS) as SocketLbHook[]).flatMap((hook) => {
    const pin = socketLbPin(pinRoot, hook);
    const info = native().linkInfo(pin);
    return info ? [{ hook, pin, linkId: info.linkId, progId: info.progId, progTag: info.progTag, cgroupId: info.cgroupId }] : [];
  });
}

/**
 * Loads bpf_sock.o against the maps of pinRoot, writes the namespace cookie, and makes sure each
 * hook is attached to the cgroup root through a link pinned in pinRoot. Idempotent: a link that is
 * attached with the same program (same tag) is kept, as an agent restart finds it; one with
 * another program (an upgrade) is replaced without a gap (the new link is attached before the
 * old one goes; both acting at once is harmless: the second sees a backend, no frontend).
 */
export async function attachSocketLb(pinRoot: string, options: AttachSocketLbOptions = {}): Promise<SocketLbLink[]> {
  // Verified on libuv's threadpool: the agent's start goes on meanwhile.
  const obj = await BpfObject.loadAsync(join(options.objectDir ?? defaultObjectDir(), SOCKET_LB_OBJECT), { pinRoot });
  try {
    const config = SockConfigMap.open(pinRoot);
    try {
      config.set({ ...config.get(), netnsCookie: options.netnsCookie ?? netnsCookie() });
    } finally {
      config.close();
    }
    const root = options.cgroupPath ?? cgroupV2Root();
    const present = new Map(socketLbLinks(pinRoot).map((l) => [l.hook, l]));
    for (const hook of Object.keys(SOCKET_LB_HOOKS) as SocketLbHook[]) {
      const prog = obj.program(SOCKET_LB_HOOKS[hook]);
      const old = present.get(hook);
      if (old && old.cgroupId !== 0n && old.progTag === prog.info().tag) continue;
      const pin = socketLbPin(pinRoot, hook);
      const next = `${pin}_next`; // bpffs refuses names with a dot
      native().linkDetach(next); // one left by an interrupted attach
      native().cgroupLinkCreate(prog.fd, root, hook, next);
      if (old) native().linkDetach(pin);
      renameSync(next, pin);
    }
  } finally {
    obj.close();
  }
  return socketLbLinks(pinRoot);
}

/** Detaches every hook's link of pinRoot and removes the pins; returns the hooks that had one. */
export function detachSocketLb(pinRoot: string): SocketLbHook[] {
  const hooks = Object.keys(SOCKET_LB_HOOKS) as SocketLbHook[];
  for (const hook of hooks) native().linkDetach(`${socketLbPin(pinRoot, hook)}_next`);
  return hooks.filter((hook) => native().linkDetach(socketLbPin(pinRoot, hook)));
}
