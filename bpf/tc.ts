/**
 * tc attachment (clsact qdisc + direct-action BPF filter) on one device and
 * direction. Attach with replace to upgrade in place: the new program takes
 * over the same (handle, priority) atomically, so no packet passes unfiltered.
 */
import { isAbsolute, join } from "path";
import { native, NativeDirection } from "./native";
import { BpfProgram } from "./object";

export type TcDirection = NativeDirection;

/** bpfnet's filter slot on every hook. */
export const DEFAULT_TC_HANDLE = 1;
export const DEFAULT_TC_PRIORITY = 1;

export interface TcHookOptions {
  /**
   * Network namespace of the device: a name from `ip netns` (/var/run/netns/NAME)
   * or a path such as /proc/PID/ns/net. The addon enters it for each tc call
   * only; the default is the caller's namespace.
   */
  netns?: string;
}

export interface TcFilterOptions {
  handle?: number;
  priority?: number;
}

export interface TcAttachOptions extends TcFilterOptions {
  /** Replace a filter already at (handle, priority). Default true, for in-place upgrades. */
  replace?: boolean;
}

export interface TcAttachment {
  handle: number;
  priority: number;
  /** Kernel id of the attached program (compare with BpfProgram.info().id). */
  progId: number;
}

/** An `ip netns` name (or a path) as the path the addon enters; null for the caller's own namespace. */
export function netnsPath(netns: string | undefined): string | null {
  if (!netns) return null;
  return isAbsolute(netns) ? netns : join("/var/run/netns", netns);
}

export class TcHook {
  private constructor(
    readonly ifindex: number,
    readonly direction: TcDirection,
    readonly netns: string | null,
    /** Whether opening this hook created the clsact qdisc (only then may destroy() remove it). */
    readonly created: boolean,
  ) {}

  /** Ensures the clsact qdisc exists on ifindex; an existing one is used as is. */
  static open(ifindex: number, direction: TcDirection, options: TcHookOptions = {}): TcHook {
    if (!Number.isInteger(ifindex) || ifindex <= 0) throw new RangeError(`bad ifindex ${ifindex}`);
    if (direction !== "ingress" && direction !== "egress") throw new TypeError(`bad tc direction ${direction}`);
    const ns = netnsPath(options.netns);
    const created = native().tcHookCreate(ifindex, direction, ns);
    return new TcHook(ifindex, direction, ns, created);
  }

  attach(prog: BpfProgram, options: TcAttachOptions = {}): TcAttachment {
    const { handle, priority } = filterSlot(options);
    return native().tcAttach(this.ifindex, this.direction, prog.fd, handle, priority, options.replace ?? true, this.netns);
  }

  /** Removes our filter; throws BpfError ENOENT when there is none. */
  detach(options: TcFilterOptions = {}): void {
    const { handle, priority } = filterSlot(options);
    native().tcDetach(this.ifindex, this.direction, handle, priority, this.netns);
  }

  /** The filter at (handle, priority), or undefined. */
  query(options: TcFilterOptions = {}): TcAttachment | undefined {
    const { handle, priority } = filterSlot(options);
    return native().tcQuery(this.ifindex, this.direction, handle, priority, this.netns) ?? undefined;
  }

  /**
   * Removes the clsact qdisc (both directions, all filters) if this hook
   * created it; a qdisc someone else made is left alone. Returns whether it
   * removed anything.
   */
  destroy(): boolean {
    if (!this.created) return false;
    native().tcHookDestroy(this.ifindex, this.netns);
    return true;
  }
}

function filterSlot(options: TcFilterOptions): { handle: number; priority: number } {
  const handle = options.handle ?? DEFAULT_TC_HANDLE;
  const priority = options.priority ?? DEFAULT_TC_PRIORITY;
  if (!Number.isInteger(handle) || handle <= 0 || handle > 0xffffffff) throw new RangeError(`bad tc handle ${handle}`);
  if (!Number.isInteger(priority) || priority <= 0 || priority > 0xffff) throw new RangeError(`bad tc priority ${priority}`);
  return { handle, priority };
}
