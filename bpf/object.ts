import { readdirSync } from "fs";
import { join } from "path";
import { BpfMap } from "./maps";
import { native, NativeObjectHandle, NativeProgInfo } from "./native";
import { defaultObjectDir, makePinDir } from "./paths";

/** The datapath objects: which program each holds and where it attaches. */
export const DATAPATH_PROGRAMS = {
  /** tc ingress on each container's host-side veth. */
  lxc: { object: "bpf_lxc.o", program: "from_container", direction: "ingress" },
  /** tc ingress on the VXLAN device. */
  overlay: { object: "bpf_overlay.o", program: "from_overlay", direction: "ingress" },
  /** tc egress on bpfnet_host. */
  host: { object: "bpf_host.o", program: "from_host", direction: "egress" },
  /** tc ingress on the host's underlay device (l3 mode): delivery into containers by bpf_redirect_peer. */
  netdev: { object: "bpf_netdev.o", program: "from_netdev", direction: "ingress" },
} as const;

export type DatapathProgram = keyof typeof DATAPATH_PROGRAMS;

/** Path of one datapath object in `dir` (default: defaultObjectDir()). */
export function objectPath(kind: DatapathProgram, dir = defaultObjectDir()): string {
  return join(dir, DATAPATH_PROGRAMS[kind].object);
}

export interface LoadOptions {
  /**
   * bpffs directory for the pinned-by-name maps (created if missing). Maps
   * already pinned there are reused, which is how all objects of a host share
   * one set of maps. Without it, maps are private to this object.
   */
  pinRoot?: string;
  /**
   * max_entries of maps by name, set before load (bpf_map__set_max_entries); maps the object
   * lacks are skipped. A map already pinned under pinRoot with another size is refused
   * (PinnedMapSizeError): the agent migrates it first (node-agent/daemon/mapResize.ts).
   * Maps not named here adopt the size of their pin, so every object of a host shares the maps
   * the agent sized.
   */
  maxEntries?: Record<string, number>;
}

/** A pinned map's size differs from the size a load asks for. */
export class PinnedMapSizeError extends Error {
  constructor(
    readonly mapName: string,
    readonly pinPath: string,
    readonly pinnedEntries: number,
    readonly wantedEntries: number,
  ) {
    super(
      `map ${mapName} pinned at ${pinPath} has max_entries ${pinnedEntries}, the load asks for ${wantedEntries}: ` +
        `libbpf cannot reuse it; migrate it (the agent does at start: node-agent/daemon/mapResize.ts) or remove the pin`,
    );
  }
}

/** max_entries of every map pinned directly under pinRoot (by file name). */
export function pinnedMapSizes(pinRoot: string): Record<string, number> {
  const out: Record<string, number> = {};
  let names: string[];
  try {
    names = readdirSync(pinRoot);
  } catch {
    return out;
  }
  for (const name of names) {
    let map: BpfMap | undefined;
    try {
      map = BpfMap.open(join(pinRoot, name));
      out[name] = map.info.maxEntries;
    } catch {
      // not a map (a pinned program, a directory)
    } finally {
      map?.close();
    }
  }
  return out;
}

/** The sizes a load under pinRoot uses: the pins' sizes, then the asked ones; throws when an asked size differs from its pin. */
export function loadSizes(pinRoot: string | undefined, asked: Record<string, number> = {}): Record<string, number> {
  const pinned = pinRoot ? pinnedMapSizes(pinRoot) : {};
  for (const [name, n] of Object.entries(asked)) {
    if (pinned[name] !== undefined && pinned[name] !== n) throw new PinnedMapSizeError(name, join(pinRoot!, name), pinned[name], n);
  }
  return { ...pinned, ...asked };
}

/** A loaded program. Its fd belongs to the BpfObject and is valid until that is closed. */
export class BpfProgram {
  constructor(
    private readonly owner: BpfObject,
    readonly name: string,
    readonly section: string,
    private readonly rawFd: number,
  ) {}

  get fd(): number {
    this.owner.assertOpen();
    return this.rawFd;
  }

  /** Kernel id, name and tag: compare id with TcAttachment.progId. */
  info(): NativeProgInfo {
    return native().progInfo(this.fd);
  }
}

/** One opened and verified object file (bpf_object__open_file + load). */
export class BpfObject {
  private readonly programsByName = new Map<string, BpfProgram>();

  private constructor(
    private readonly handle: NativeObjectHandle,
    readonly path: string,
    readonly pinRoot: string | undefined,
  ) {
    for (const p of handle.programs()) this.programsByName.set(p.name, new BpfProgram(this, p.name, p.section, p.fd));
  }

  static load(path: string, options: LoadOptions = {}): BpfObject {
    const sizes = BpfObject.prepare(options);
    return new BpfObject(new (native().ObjectHandle)(path, options.pinRoot ?? null, sizes), path, options.pinRoot);
  }

  /**
   * load() on libuv's threadpool: the kernel's verification (most of a load) runs on a worker
   * thread, so several objects verify at once while this thread goes on. Objects sharing pinned
   * maps may load at once, even on a pin root where the maps do not exist yet.
   */
  static async loadAsync(path: string, options: LoadOptions = {}): Promise<BpfObject> {
    const sizes = BpfObject.prepare(options);
    return new BpfObject(await native().objectLoad(path, options.pinRoot ?? null, sizes), path, options.pinRoot);
  }

  /** The pin directory made, and the map sizes a load uses. */
  private static prepare(options: LoadOptions): Record<string, number> {
    if (options.pinRoot) makePinDir(options.pinRoot);
    return loadSizes(options.pinRoot, options.maxEntries);
  }

  get programs(): BpfProgram[] {
    this.assertOpen();
    return [...this.programsByName.values()];
  }

  program(name: string): BpfProgram {
    this.assertOpen();
    const prog = this.programsByName.get(name);
    if (!prog) throw new RangeError(`${this.path} has no program ${name} (has ${[...this.programsByName.keys()].join(", ")})`);
    return prog;
  }

  /** Map names and where they are pinned (null when not pinned). */
  maps(): { name: string; pinPath: string | null }[] {
    this.assertOpen();
    return this.handle.maps().map(({ name, pinPath }) => ({ name, pinPath }));
  }

  /** A map of this object on its own fd; close it separately. */
  map(name: string): BpfMap {
    this.assertOpen();
    const entry = this.handle.maps().find((m) => m.name === name);
    if (!entry) throw new RangeError(`${this.path} has no map ${name}`);
    return BpfMap.fromFd(entry.fd);
  }

  pinProgram(name: string, path: string): void {
    this.program(name);
    this.handle.pinProgram(name, path);
  }

  unpinProgram(name: string, path: string): void {
    this.program(name);
    this.handle.unpinProgram(name, path);
  }

  /** Pins every map under dir, or (no dir) each pinned-by-name map at its pin path. */
  pinMaps(dir?: string): void {
    this.assertOpen();
    this.handle.pinMaps(dir ?? null);
  }

  /** Removes the pins made by pinMaps(dir), or (no dir) the shared pin-by-name maps. */
  unpinMaps(dir?: string): void {
    this.assertOpen();
    this.handle.unpinMaps(dir ?? null);
  }

  /** Releases the object's fds. Attached programs and pinned maps stay in the kernel. */
  close(): void {
    this.handle.close();
  }

  get closed(): boolean {
    return this.handle.closed;
  }

  /** @internal */
  assertOpen(): void {
    if (this.handle.closed) throw new Error(`BPF object ${this.path} is closed`);
  }
}

/** Some of a host's datapath objects (by program), sharing the maps pinned under one pin root. */
export type DatapathObjectSet<K extends DatapathProgram> = Record<K, BpfObject> & {
  /** The entry program of each object, e.g. programs.lxc = from_container. */
  programs: Record<K, BpfProgram>;
  close(): void;
};

/** All datapath objects of a host, sharing the maps pinned under one pin root. */
export type DatapathObjects = DatapathObjectSet<DatapathProgram>;

export const ALL_DATAPATH_PROGRAMS = Object.keys(DATAPATH_PROGRAMS) as DatapathProgram[];

/** The set over loaded objects; closes them all when one lacks its entry program. */
function objectSet<K extends DatapathProgram>(loaded: [K, BpfObject][]): DatapathObjectSet<K> {
  const close = () => loaded.forEach(([, o]) => o.close());
  try {
    const programs = {} as Record<K, BpfProgram>;
    const objects = {} as Record<K, BpfObject>;
    for (const [kind, obj] of loaded) {
      objects[kind] = obj;
      programs[kind] = obj.program(DATAPATH_PROGRAMS[kind].program);
    }
    return Object.assign(objects, { programs, close });
  } catch (err) {
    close();
    throw err;
  }
}

export function loadDatapathObjects(pinRoot: string, dir = defaultObjectDir(), maxEntries: Record<string, number> = {}): DatapathObjects {
  const loaded: [DatapathProgram, BpfObject][] = [];
  try {
    for (const kind of ALL_DATAPATH_PROGRAMS) loaded.push([kind, BpfObject.load(objectPath(kind, dir), { pinRoot, maxEntries })]);
  } catch (err) {
    loaded.forEach(([, o]) => o.close());
    throw err;
  }
  return objectSet(loaded);
}

/**
 * The objects of `kinds` loaded at once on libuv's threadpool (BpfObject.loadAsync): the slowest
 * object's verification is what the load takes. A failure closes the ones that loaded.
 */
export async function loadDatapathObjectsAsync<K extends DatapathProgram>(
  kinds: readonly K[],
  pinRoot: string,
  dir = defaultObjectDir(),
  maxEntries: Record<string, number> = {},
): Promise<DatapathObjectSet<K>> {
  const results = await Promise.allSettled(kinds.map((kind) => BpfObject.loadAsync(objectPath(kind, dir), { pinRoot, maxEntries })));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  const loaded = results.flatMap((r, i): [K, BpfObject][] => (r.status === "fulfilled" ? [[kinds[i], r.value]] : []));
  if (failed) {
    loaded.forEach(([, o]) => o.close());
    throw failed.reason;
  }
  return objectSet(loaded);
}
