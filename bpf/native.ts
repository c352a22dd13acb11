/**
 * The addon's raw surface, typed. Nothing here validates or encodes: that is
 * the job of the modules that wrap it (object.ts, maps.ts, tc.ts, testrun.ts).
 */
import { BpfError } from "./errors";
import { nativeAddonPath } from "./paths";

export type NativeDirection = "ingress" | "egress";

export interface NativeProgramEntry {
  name: string;
  section: string;
  fd: number;
}

export interface NativeMapEntry {
  name: string;
  fd: number;
  pinPath: string | null;
}

export interface NativeObjectHandle {
  programs(): NativeProgramEntry[];
  maps(): NativeMapEntry[];
  pinProgram(name: string, path: string): void;
  unpinProgram(name: string, path: string): void;
  pinMaps(dir?: string | null): void;
  unpinMaps(dir?: string | null): void;
  close(): void;
  readonly closed: boolean;
}

export interface NativeMapInfo {
  id: number;
  name: string;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  /** Possible CPUs for per-CPU maps, else 1. */
  cpus: number;
  /** Bytes a lookup returns / an update takes: valueSize, or one 8-byte aligned slot per CPU. */
  valueBufferSize: number;
}

export interface NativeMapHandle {
  lookup(key: Buffer): Buffer | null;
  update(key: Buffer, value: Buffer, flags: number): void;
  delete(key: Buffer): boolean;
  nextKey(key: Buffer | null): Buffer | null;
  pin(path: string): void;
  close(): void;
  readonly fd: number;
  readonly info: NativeMapInfo;
}

export interface NativeTcAttachment {
  handle: number;
  priority: number;
  progId: number;
}

export interface NativeProgInfo {
  id: number;
  name: string;
  type: number;
  tag: string;
}

export interface NativeTestRun {
  retval: number;
  data: Buffer;
  duration: number;
  mark: number;
}

/** A BPF ring buffer read on libuv's loop (src/ringbuf.cc). */
export interface NativeRingReader {
  /** Consumes what the ring holds now, delivering it through the callback before returning. */
  drain(): void;
  close(): void;
  readonly closed: boolean;
}

export interface NativeBinding {
  setErrorClass(ctor: typeof BpfError): void;
  possibleCpus(): number;
  /** maxEntries: map name → max_entries set before load (names the object lacks are skipped). */
  ObjectHandle: new (path: string, pinRoot?: string | null, maxEntries?: Record<string, number> | null) => NativeObjectHandle;
  /**
   * What the constructor does (open, sizes, load) on libuv's threadpool (src/objectLoad.cc):
   * objects verify in parallel and the caller's thread goes on.
   */
  objectLoad(path: string, pinRoot: string | null, maxEntries: Record<string, number> | null): Promise<NativeObjectHandle>;
  /** From a pinned path (bpf_obj_get) or a map fd to duplicate. */
  MapHandle: new (pathOrFd: string | number) => NativeMapHandle;
  /** Polls the ring map's records; onBatch gets every record available at each wakeup. */
  RingReader: new (mapFd: number, onBatch: (error: Error | null, records?: Buffer[]) => void) => NativeRingReader;
  tcHookCreate(ifindex: number, direction: NativeDirection, netns?: string | null): boolean;
  tcHookDestroy(ifindex: number, netns?: string | null): void;
  tcAttach(
    ifindex: number,
    direction: NativeDirection,
    progFd: number,
    handle: number,
    priority: number,
    replace: boolean,
    netns?: string | null,
  ): NativeTcAttachment;
  tcDetach(ifindex: number, direction: NativeDirection, handle: number, priority: number, netns?: string | null): void;
  tcQuery(
    ifindex: number,
    direction: NativeDirection,
    handle: number,
    priority: number,
    netns?: string | null,
  ): NativeTcAttachment | null;
  progInfo(fd: number): NativeProgInfo;
  progTestRun(fd: number, data: Buffer, repeat: number, ifindex: number, cb?: number[], netns?: string | null): NativeTestRun;
  /** A listening TCP socket with IP_TRANSPARENT (the L7 proxy's); Node takes the fd. */
  transparentListener(ip: string, port: number, backlog: number): number;
  /** An unconnected TCP socket with SO_MARK set (the L7 proxy's upstream side). */
  markedSocket(mark: number): number;
  /** Attaches a program to a cgroup as a bpf_link and pins the link (cgroup.cc). */
  cgroupLinkCreate(progFd: number, cgroupPath: string, attachType: string, pinPath: string): { linkId: number; progId: number };
  /** A pinned link's ids and attachment, or null when nothing is pinned there. */
  linkInfo(pinPath: string): NativeLinkInfo | null;
  /** Detaches a pinned link and removes the pin; false when there was no pin. */
  linkDetach(pinPath: string): boolean;
  /** SO_NETNS_COOKIE of the calling thread's network namespace. */
  netnsCookie(): bigint;
  /**
   * Sends whole rtnetlink messages in order from a socket opened in `netns` (null: the caller's),
   * on libuv's threadpool; resolves with each message's replies (src/netlink.cc). A failure
   * rejects with BpfError plus `requestIndex` (-1: before any request) and `kernelMessage`.
   * patches[i]: byte offsets in message i that get the ifindex the last RTM_NEWLINK reply named.
   */
  netlinkTransact(netns: string | null, messages: Buffer[], patches?: (number[] | null)[]): Promise<Buffer[][]>;
}

export interface NativeLinkInfo {
  linkId: number;
  progId: number;
  /** The attached program's tag (hex); "" if it could not be read. */
  progTag: string;
  /** 0 once the link is detached (its cgroup gone or bpf_link_detach). */
  cgroupId: bigint;
  /** "connect4", "sendmsg4", "recvmsg4", "getpeername4"; "" for others. */
  attachType: string;
}

let binding: NativeBinding | undefined;

/** Loads the addon on first use, so importing bpf/ never fails on a machine without it. */
export function native(): NativeBinding {
  if (!binding) {
    const path = nativeAddonPath();
    let loaded: NativeBinding;
    try {
      loaded = require(path) as NativeBinding;
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new Error(`cannot load the bpfnet native addon at ${path} (run scripts/build-bpf.sh): ${reason}`);
    }
    loaded.setErrorClass(BpfError);
    binding = loaded;
  }
  return binding;
}
