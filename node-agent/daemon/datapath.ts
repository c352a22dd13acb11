// The BPF side of the agent: loads the objects against the pinned maps (those the network's
// mode attaches, on libuv's threadpool, at once), attaches the programs, programs the config
// map. Attaching always replaces in place (same tc handle and priority), so a restarted agent
// swaps its fresh programs in without a moment where a hook has nothing attached; closing the
// agent leaves the attachments and the pinned maps in the kernel, and forwarding goes on
// without it.
import * as fs from "fs";
import {
  BpfProgram,
  DatapathMaps,
  DatapathProgram,
  DATAPATH_PROGRAMS,
  loadDatapathObjectsAsync,
  openDatapathMaps,
  TcHook,
  defaultObjectDir,
  DatapathConfig,
  makePinDir,
} from "../../bpf";
import { Logger } from "./log";
import { copyResized, unpinResized } from "./mapResize";

/** statfs f_type of bpffs. */
const BPF_FS_MAGIC = 0xcafe4a11;

export interface HookStatus {
  device: string;
  ifindex: number;
  direction: "ingress" | "egress";
  program: DatapathProgram;
  /** Kernel id of what is attached at bpfnet's slot, if anything. */
  attachedProgId?: number;
  /** Whether the attached program is the one this agent loaded. */
  current: boolean;
}

export function checkBpffs(dir: string): void {
  try {
    makePinDir(dir, 0o700);
  } catch (e) {
    throw new Error(`cannot create bpffsDir ${dir}: ${(e as Error).message} (is bpffs mounted? mount -t bpf bpf /sys/fs/bpf)`);
  }
  const type = fs.statfsSync(dir).type;
  if (type !== BPF_FS_MAGIC) {
    throw new Error(`bpffsDir ${dir} is not on a bpf filesystem (statfs type 0x${type.toString(16)}); mount one: mount -t bpf bpf ${dir}`);
  }
}

/** The objects every mode attaches: bpf_lxc on containers, bpf_host on bpfnet_host. */
export const COMMON_PROGRAMS: readonly DatapathProgram[] = ["lxc", "host"];

/** The mode's device program: bpf_overlay on the VXLAN device, or bpf_netdev on the underlay (l3). */
export function deviceProgram(mode: "vxlan" | "l3"): DatapathProgram {
  return mode === "vxlan" ? "overlay" : "netdev";
}

/** What a mode attaches: the other mode's object is never loaded. */
export function modePrograms(mode: "vxlan" | "l3"): DatapathProgram[] {
  return [...COMMON_PROGRAMS, deviceProgram(mode)];
}

export class Datapath {
  private readonly programs: Partial<Record<DatapathProgram, BpfProgram>> = {};
  private readonly closers: (() => void)[] = [];
  private closed = false;

  private constructor(
    readonly maps: DatapathMaps,
    readonly pinRoot: string,
    private readonly log: Logger,
  ) {}

  /**
   * Loads the objects of `programs` at once; maps already pinned under pinRoot (a previous
   * agent's) are reused. maxEntries (map name → size, from the network's spec) sizes the maps at
   * creation; a pinned map of another size is migrated into a new map of that size (mapResize.ts).
   * More objects: adopt.
   */
  static async load(pinRoot: string, objectDir: string | undefined, log: Logger, maxEntries: Record<string, number>, programs: readonly DatapathProgram[]): Promise<Datapath> {
    checkBpffs(pinRoot);
    const resized = unpinResized(pinRoot, maxEntries);
    const objects = await loadDatapathObjectsAsync(programs, pinRoot, objectDir ?? defaultObjectDir(), maxEntries);
    try {
      copyResized(pinRoot, resized);
      for (const r of resized) log.info("map resized", { map: r.mapName, from: r.fromEntries, to: r.toEntries, entries: r.entries.length });
      const dp = new Datapath(openDatapathMaps(pinRoot), pinRoot, log);
      dp.adopt(objects);
      return dp;
    } catch (e) {
      objects.close();
      throw e;
    }
  }

  /** Takes objects loaded beside load() (loadDatapathObjectsAsync on the same pin root); closes them with its own. */
  adopt(objects: { programs: Partial<Record<DatapathProgram, BpfProgram>>; close(): void }): void {
    if (this.closed) return objects.close(); // stopped while they loaded
    Object.assign(this.programs, objects.programs);
    this.closers.push(() => objects.close());
  }

  private program(program: DatapathProgram): BpfProgram {
    const p = this.programs[program];
    if (!p) throw new Error(`the ${program} program (${DATAPATH_PROGRAMS[program].object}) is not loaded`);
    return p;
  }

  setConfig(config: DatapathConfig): void {
    const cur = this.maps.config.get();
    const same =
      cur.mode === config.mode &&
      cur.vni === config.vni &&
      cur.vxlanIfindex === config.vxlanIfindex &&
      cur.hostIfindex === config.hostIfindex &&
      cur.gateway === (config.gateway ?? "0.0.0.0"); // "0.0.0.0" in a slot written before the field existed
    if (!same) {
      // CT lifetimes the caller does not set keep their current values (the policy side owns them).
      // Nor do the flags (the node monitor's switches: bpf/abi.ts withMonitorFlags).
      this.maps.config.set({ ctLifetimeTcp: cur.ctLifetimeTcp, ctLifetimeShort: cur.ctLifetimeShort, flags: cur.flags, ...config });
      this.log.info("datapath config set", { ...config });
    }
  }

  /** Attaches (replacing in place) `program` on the device's hook. */
  attach(program: DatapathProgram, ifindex: number): number {
    const prog = this.program(program); // before the hook is made: a program not loaded changes nothing
    return TcHook.open(ifindex, DATAPATH_PROGRAMS[program].direction).attach(prog).progId;
  }

  /** Removes bpfnet's filter from a hook (used by teardown); absent is fine. */
  detach(program: DatapathProgram, ifindex: number): void {
    const hook = TcHook.open(ifindex, DATAPATH_PROGRAMS[program].direction);
    if (hook.query()) hook.detach();
  }

  hookStatus(device: string, ifindex: number, program: DatapathProgram): HookStatus {
    const direction = DATAPATH_PROGRAMS[program].direction;
    let attachedProgId: number | undefined;
    try {
      attachedProgId = TcHook.open(ifindex, direction).query()?.progId;
    } catch {
      attachedProgId = undefined; // device gone
    }
    const ours = this.programs[program]?.info().id;
    return { device, ifindex, direction, program, ...(attachedProgId !== undefined ? { attachedProgId } : {}), current: ours !== undefined && attachedProgId === ours };
  }

  /** Closes our fds. Attachments and pinned maps stay in the kernel. */
  close(): void {
    this.closed = true;
    this.maps.close();
    this.closers.splice(0).forEach((close) => close());
  }
}
