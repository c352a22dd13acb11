/**
 * Maps: BpfMap is the raw Buffer-level handle; the typed maps (EndpointMap,
 * TunnelMap, PeerMap, IpcacheMap, PolicyMap, CtMap, ConfigMap, MetricsMap, VerdictMap)
 * validate and encode (via abi.ts) so callers work with addresses and numbers.
 */
import { join } from "path";
import {
  CtEntry,
  CtKey,
  CtValue,
  Counters,
  decodeCtKey,
  decodeCtValue,
  decodeIpcacheEntry,
  decodeIpcacheKey,
  decodePolicyKey,
  decodePolicyValue,
  encodeCtKey,
  encodeIpcacheEntry,
  encodeIpcacheKey,
  encodePolicyKey,
  encodePolicyValue,
  Identity,
  PolicyKey,
  PolicyRow,
  PolicyValue,
  DatapathConfig,
  decodeConfig,
  decodeEndpoint,
  decodeEndpointKey,
  decodeMetricsKey,
  decodePeer,
  decodePeerKey,
  decodeTunnel,
  decodeTunnelKey,
  decodeVerdictKey,
  encodeConfig,
  encodeEndpoint,
  encodeEndpointKey,
  encodeMetricsKey,
  encodePeer,
  encodePeerKey,
  encodeTunnel,
  encodeTunnelKey,
  encodeVerdictKey,
  Endpoint,
  LAYOUTS,
  MetricsKey,
  PeerEntry,
  StructLayout,
  sumPerCpuCounters,
  TunnelEntry,
  VerdictKey,
} from "./abi";
import { native, NativeMapHandle, NativeMapInfo } from "./native";

/** bpf_map_update_elem flags. */
export type UpdateMode = "any" | "create" | "replace";
const UPDATE_FLAGS: Record<UpdateMode, number> = { any: 0, create: 1, replace: 2 };

export type MapInfo = NativeMapInfo;

/** One map fd with raw Buffer keys and values. Sizes are checked against the map. */
export class BpfMap {
  /** Fixed for the map's lifetime, so read once. */
  readonly info: MapInfo;

  private constructor(private readonly handle: NativeMapHandle) {
    this.info = handle.info;
  }

  /** Opens a pinned map (bpf_obj_get). */
  static open(path: string): BpfMap {
    return new BpfMap(new (native().MapHandle)(path));
  }

  /** Takes its own duplicate of a map fd. */
  static fromFd(fd: number): BpfMap {
    return new BpfMap(new (native().MapHandle)(fd));
  }

  get fd(): number {
    return this.handle.fd;
  }

  /** Per-CPU maps: one value slot per possible CPU, see info.valueBufferSize. */
  lookup(key: Buffer): Buffer | undefined {
    return this.handle.lookup(this.checkKey(key)) ?? undefined;
  }

  update(key: Buffer, value: Buffer, mode: UpdateMode = "any"): void {
    if (!(mode in UPDATE_FLAGS)) throw new TypeError(`bad update mode ${mode}`);
    this.checkSize(value, this.info.valueBufferSize, "value");
    this.handle.update(this.checkKey(key), value, UPDATE_FLAGS[mode]);
  }

  /** Whether the key was there. */
  delete(key: Buffer): boolean {
    return this.handle.delete(this.checkKey(key));
  }

  /** A snapshot of the keys (safe to delete while iterating the result). */
  keys(): Buffer[] {
    const keys: Buffer[] = [];
    for (let key = this.handle.nextKey(null); key; key = this.handle.nextKey(key)) keys.push(key);
    return keys;
  }

  private checkKey(key: Buffer): Buffer {
    return this.checkSize(key, this.info.keySize, "key");
  }

  // The addon checks too (it must never let the kernel overrun a Buffer); this
  // check gives callers a RangeError of their own realm and a clearer message.
  private checkSize(buf: Buffer, size: number, what: string): Buffer {
    if (!Buffer.isBuffer(buf)) throw new TypeError(`${this.info.name}: ${what} must be a Buffer`);
    if (buf.length !== size) throw new RangeError(`${this.info.name}: ${what} must be ${size} bytes, got ${buf.length}`);
    return buf;
  }

  pin(path: string): void {
    this.handle.pin(path);
  }

  close(): void {
    this.handle.close();
  }
}

/** Map types this module checks for (linux/bpf.h enum bpf_map_type). */
const MapType = { HASH: 1, ARRAY: 2, PERCPU_HASH: 5, LRU_HASH: 9, LPM_TRIE: 11 } as const;

/**
 * Refuses a map whose shape differs from what abi.ts encodes: a map pinned by
 * an older or newer datapath must fail loudly, not be misread.
 */
function checkShape(map: BpfMap, name: string, type: number, key: StructLayout | number, value: StructLayout): void {
  const info = map.info;
  const keySize = typeof key === "number" ? key : key.size;
  if (info.type !== type || info.keySize !== keySize || info.valueSize !== value.size) {
    throw new TypeError(
      `${name}: map has type ${info.type}, key ${info.keySize} B, value ${info.valueSize} B; ` +
        `expected type ${type}, key ${keySize} B, value ${value.size} B`,
    );
  }
}

/** Opens a pinned map and wraps it; the fd is closed again if the shape check fails. */
function openPinned<T>(pinRoot: string, name: string, wrap: (map: BpfMap) => T): T {
  const map = BpfMap.open(join(pinRoot, name));
  try {
    return wrap(map);
  } catch (err) {
    map.close();
    throw err;
  }
}

abstract class TypedMap {
  protected constructor(protected readonly map: BpfMap) {}

  get raw(): BpfMap {
    return this.map;
  }

  /** Every entry, decoded; a key deleted between listing and lookup is skipped. */
  protected decodedEntries<K, V>(decodeKey: (key: Buffer) => K, decodeValue: (value: Buffer) => V): [K, V][] {
    return this.map.keys().flatMap((key) => {
      const value = this.map.lookup(key);
      return value ? [[decodeKey(key), decodeValue(value)] as [K, V]] : [];
    });
  }

  close(): void {
    this.map.close();
  }
}

/** Encoders between typed keys/values and the map's bytes (abi.ts). */
interface Codec<K, V> {
  encodeKey(key: K): Buffer;
  decodeKey(key: Buffer): K;
  encodeValue(value: V): Buffer;
  decodeValue(value: Buffer): V;
}

interface Shape {
  name: string;
  type: number;
  key: StructLayout;
  value: StructLayout;
}

/** A map whose keys and values go through one codec: get/set/delete/entries. */
abstract class KeyedMap<K, V> extends TypedMap {
  protected constructor(
    map: BpfMap,
    shape: Shape,
    private readonly codec: Codec<K, V>,
  ) {
    super(map);
    checkShape(map, shape.name, shape.type, shape.key, shape.value);
  }

  get(key: K): V | undefined {
    const value = this.map.lookup(this.codec.encodeKey(key));
    return value && this.codec.decodeValue(value);
  }

  set(key: K, value: V): void {
    this.map.update(this.codec.encodeKey(key), this.codec.encodeValue(value));
  }

  delete(key: K): boolean {
    return this.map.delete(this.codec.encodeKey(key));
  }

  entries(): [K, V][] {
    return this.decodedEntries(this.codec.decodeKey, this.codec.decodeValue);
  }
}

/** bpfnet_endpoints: local endpoints by IPv4. */
export class EndpointMap extends KeyedMap<string, Endpoint> {
  static readonly mapName = "bpfnet_endpoints";

  constructor(map: BpfMap) {
    super(map, { name: EndpointMap.mapName, type: MapType.HASH, key: LAYOUTS.endpointKey, value: LAYOUTS.endpoint }, {
      encodeKey: encodeEndpointKey,
      decodeKey: decodeEndpointKey,
      encodeValue: encodeEndpoint,
      decodeValue: decodeEndpoint,
    });
  }

  static open(pinRoot: string): EndpointMap {
    return openPinned(pinRoot, EndpointMap.mapName, (map) => new EndpointMap(map));
  }
}

/**
 * bpfnet_tunnel: other hosts' pod CIDRs → their underlay IPv4. get() is the exact entry for a
 * CIDR (for longest-prefix lookup of an address, pass "a.b.c.d/32").
 */
export class TunnelMap extends KeyedMap<string, TunnelEntry> {
  static readonly mapName = "bpfnet_tunnel";

  constructor(map: BpfMap) {
    super(map, { name: TunnelMap.mapName, type: MapType.LPM_TRIE, key: LAYOUTS.tunnelKey, value: LAYOUTS.tunnel }, {
      encodeKey: encodeTunnelKey,
      decodeKey: decodeTunnelKey,
      encodeValue: encodeTunnel,
      decodeValue: decodeTunnel,
    });
  }

  static open(pinRoot: string): TunnelMap {
    return openPinned(pinRoot, TunnelMap.mapName, (map) => new TunnelMap(map));
  }
}

/**
 * bpfnet_peers: underlay IPv4 addresses of the network's other hosts. bpf_overlay drops
 * tunnelled packets from any other outer source (DropReason.UNKNOWN_PEER).
 */
export class PeerMap extends KeyedMap<string, PeerEntry> {
  static readonly mapName = "bpfnet_peers";

  constructor(map: BpfMap) {
    super(map, { name: PeerMap.mapName, type: MapType.HASH, key: LAYOUTS.peerKey, value: LAYOUTS.peer }, {
      encodeKey: encodePeerKey,
      decodeKey: decodePeerKey,
      encodeValue: encodePeer,
      decodeValue: decodePeer,
    });
  }

  static open(pinRoot: string): PeerMap {
    return openPinned(pinRoot, PeerMap.mapName, (map) => new PeerMap(map));
  }

  override set(ip: string, entry: PeerEntry = {}): void {
    super.set(ip, entry);
  }
}

/**
 * bpfnet_ipcache: address prefix → security identity. get() is the identity of exactly this
 * prefix; the datapath looks addresses up as /32 (resolve()), so an endpoint's /32 beats a CIDR
 * rule's prefix, and an address with no row is Identity.WORLD.
 */
export class IpcacheMap extends KeyedMap<string, number> {
  static readonly mapName = "bpfnet_ipcache";

  constructor(map: BpfMap) {
    super(map, { name: IpcacheMap.mapName, type: MapType.LPM_TRIE, key: LAYOUTS.ipcacheKey, value: LAYOUTS.ipcacheEntry }, {
      encodeKey: encodeIpcacheKey,
      decodeKey: decodeIpcacheKey,
      encodeValue: encodeIpcacheEntry,
      decodeValue: decodeIpcacheEntry,
    });
  }

  static open(pinRoot: string): IpcacheMap {
    return openPinned(pinRoot, IpcacheMap.mapName, (map) => new IpcacheMap(map));
  }

  /** What the datapath resolves an address to: the longest matching prefix, else WORLD. */
  resolve(ip: string): number {
    return this.get(`${ip}/32`) ?? Identity.WORLD;
  }
}

/**
 * bpfnet_policy: every local endpoint's policy rows. The datapath looks a packet up in a fixed
 * order of at most six keys (see bpf/README.md); no row is a drop for an enforcing endpoint.
 */
export class PolicyMap extends TypedMap {
  static readonly mapName = "bpfnet_policy";

  constructor(map: BpfMap) {
    super(map);
    checkShape(map, PolicyMap.mapName, MapType.HASH, LAYOUTS.policyKey, LAYOUTS.policyValue);
  }

  static open(pinRoot: string): PolicyMap {
    return openPinned(pinRoot, PolicyMap.mapName, (map) => new PolicyMap(map));
  }

  get(key: PolicyKey): PolicyValue | undefined {
    const value = this.map.lookup(encodePolicyKey(key));
    return value && decodePolicyValue(value);
  }

  /** Adds or replaces the row for the key fields of `row`. */
  set(row: PolicyRow): void {
    this.map.update(encodePolicyKey(row), encodePolicyValue(row));
  }

  delete(key: PolicyKey): boolean {
    return this.map.delete(encodePolicyKey(key));
  }

  /** Every row (of one endpoint when endpointId is given). */
  entries(endpointId?: number): PolicyRow[] {
    return this.decodedEntries(decodePolicyKey, decodePolicyValue)
      .map(([key, value]) => ({ ...key, ...value }))
      .filter((row) => endpointId === undefined || row.endpointId === endpointId);
  }
}

/**
 * bpfnet_ct: connection tracking (LRU). The datapath makes and refreshes entries; the agent
 * removes expired ones with gc() and never empties the map (live flows would lose their
 * replies' pass).
 */
export class CtMap extends TypedMap {
  static readonly mapName = "bpfnet_ct";

  constructor(map: BpfMap) {
    super(map);
    checkShape(map, CtMap.mapName, MapType.LRU_HASH, LAYOUTS.ctKey, LAYOUTS.ctEntry);
  }

  static open(pinRoot: string): CtMap {
    return openPinned(pinRoot, CtMap.mapName, (map) => new CtMap(map));
  }

  get(key: CtKey): CtValue | undefined {
    const value = this.map.lookup(encodeCtKey(key));
    return value && decodeCtValue(value);
  }

  entries(): CtEntry[] {
    return this.decodedEntries(decodeCtKey, decodeCtValue).map(([key, value]) => ({ ...key, ...value }));
  }

  delete(key: CtKey): boolean {
    return this.map.delete(encodeCtKey(key));
  }

  /**
   * Deletes the entries whose deadline is at or before nowNs (CLOCK_MONOTONIC: pass
   * monotonicNowNs()); returns how many went. The datapath never takes an expired entry for a
   * live one, so a late GC only costs map space.
   */
  gc(nowNs: bigint): number {
    let removed = 0;
    for (const key of this.map.keys()) {
      const value = this.map.lookup(key);
      if (value && decodeCtValue(value).expiresNs <= nowNs && this.map.delete(key)) removed++;
    }
    return removed;
  }
}

/** bpfnet_config: the single settings slot. */
export class ConfigMap extends TypedMap {
  static readonly mapName = "bpfnet_config";
  private static readonly slot = Buffer.alloc(4);

  constructor(map: BpfMap) {
    super(map);
    checkShape(map, ConfigMap.mapName, MapType.ARRAY, 4, LAYOUTS.config);
  }

  static open(pinRoot: string): ConfigMap {
    return openPinned(pinRoot, ConfigMap.mapName, (map) => new ConfigMap(map));
  }

  get(): DatapathConfig {
    const value = this.map.lookup(ConfigMap.slot);
    if (!value) throw new Error("bpfnet_config has no slot 0");
    return decodeConfig(value);
  }

  set(config: DatapathConfig): void {
    this.map.update(ConfigMap.slot, encodeConfig(config));
  }
}

/** Per-CPU packet/byte counters (bpfnet_metrics_value) under typed keys, summed over CPUs on read. */
abstract class CounterMap<K> extends TypedMap {
  protected constructor(
    map: BpfMap,
    name: string,
    keyLayout: StructLayout,
    private readonly encodeKey: (key: K) => Buffer,
    private readonly decodeKey: (key: Buffer) => K,
  ) {
    super(map);
    checkShape(map, name, MapType.PERCPU_HASH, keyLayout, LAYOUTS.metricsValue);
  }

  /** Counters for one key; zero when the datapath has not counted it yet. */
  get(key: K): Counters {
    const value = this.map.lookup(this.encodeKey(key));
    return value ? sumPerCpuCounters(value) : { packets: 0n, bytes: 0n };
  }

  entries(): (K & Counters)[] {
    return this.decodedEntries(this.decodeKey, sumPerCpuCounters).map(([key, counters]) => ({ ...key, ...counters }));
  }

  /** Removes every counter (e.g. between tests). */
  clear(): void {
    for (const key of this.map.keys()) this.map.delete(key);
  }
}

export interface MetricsEntry extends MetricsKey, Counters {}

/** bpfnet_metrics: every verdict of every program by (device, hook direction, reason). */
export class MetricsMap extends CounterMap<MetricsKey> {
  static readonly mapName = "bpfnet_metrics";

  constructor(map: BpfMap) {
    super(map, MetricsMap.mapName, LAYOUTS.metricsKey, encodeMetricsKey, decodeMetricsKey);
  }

  static open(pinRoot: string): MetricsMap {
    return openPinned(pinRoot, MetricsMap.mapName, (map) => new MetricsMap(map));
  }
}

export interface VerdictEntry extends VerdictKey, Counters {}

/**
 * bpfnet_verdicts: policy verdicts by endpoint and rule: every denied (and audited) packet,
 * and the first packet of each allowed or redirected flow.
 */
export class VerdictMap extends CounterMap<VerdictKey> {
  static readonly mapName = "bpfnet_verdicts";

  constructor(map: BpfMap) {
    super(map, VerdictMap.mapName, LAYOUTS.verdictKey, encodeVerdictKey, decodeVerdictKey);
  }

  static open(pinRoot: string): VerdictMap {
    return openPinned(pinRoot, VerdictMap.mapName, (map) => new VerdictMap(map));
  }
}

/** The shared maps of one host, opened from its pin root. */
export interface DatapathMaps {
  endpoints: EndpointMap;
  tunnel: TunnelMap;
  peers: PeerMap;
  ipcache: IpcacheMap;
  policy: PolicyMap;
  ct: CtMap;
  config: ConfigMap;
  metrics: MetricsMap;
  verdicts: VerdictMap;
  close(): void;
}

export function openDatapathMaps(pinRoot: string): DatapathMaps {
  const opened: TypedMap[] = [];
  const track = <T extends TypedMap>(map: T): T => (opened.push(map), map);
  try {
    return {
      endpoints: track(EndpointMap.open(pinRoot)),
      tunnel: track(TunnelMap.open(pinRoot)),
      peers: track(PeerMap.open(pinRoot)),
      ipcache: track(IpcacheMap.open(pinRoot)),
      policy: track(PolicyMap.open(pinRoot)),
      ct: track(CtMap.open(pinRoot)),
      config: track(ConfigMap.open(pinRoot)),
      metrics: track(MetricsMap.open(pinRoot)),
      verdicts: track(VerdictMap.open(pinRoot)),
      close: () => opened.forEach((m) => m.close()),
    };
  } catch (err) {
    opened.forEach((m) => m.close());
    throw err;
  }
}
