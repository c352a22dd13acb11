/**
 * Maps: BpfMap is the raw Buffer-level handle; the typed maps (EndpointMap,
 * TunnelMap, RouteMap, PeerMap, IpcacheMap, PolicyMap, CtMap, ConfigMap, MetricsMap, VerdictMap)
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
  decodeRoute,
  decodeTunnelKey,
  decodeVerdictKey,
  encodeConfig,
  encodeEndpoint,
  encodeEndpointKey,
  encodeMetricsKey,
  encodePeer,
  encodePeerKey,
  encodeTunnel,
  encodeRoute,
  encodeTunnelKey,
  encodeVerdictKey,
  Endpoint,
  LAYOUTS,
  MetricsKey,
  PeerEntry,
  StructLayout,
  sumPerCpuCounters,
  TunnelEntry,
  RouteEntry,
  VerdictKey,
  checkBackendId,
  checkRevNatIndex,
  decodeLbAffinity,
  decodeLbAffinityKey,
  decodeLbBackend,
  decodeLbMaglev,
  decodeLbNoBackendKey,
  decodeLbRevNat,
  decodeLbSockNat,
  decodeLbSvc,
  decodeLbSvcKey,
  decodeSockConfig,
  decodeU32Key,
  encodeLbAffinity,
  encodeLbAffinityKey,
  encodeLbBackend,
  encodeLbMaglev,
  encodeLbNoBackendKey,
  encodeLbRevNat,
  encodeLbSvc,
  encodeLbSvcKey,
  encodeSockConfig,
  encodeU32Key,
  LbAffinity,
  LbAffinityKey,
  LbBackend,
  LbRevNat,
  LbServiceKey,
  LbServiceValue,
  LbSockNatEntry,
  SockConfig,
  SockConfigFlags,
} from "./abi";
import { native, NativeMapHandle, NativeMapInfo } from "./native";
import { countedAs, withPathTotals } from "./pathCounters";

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
 * bpfnet_routes (l3 mode): other hosts' pod CIDRs → the underlay device bpf_lxc sends their
 * packets out of (bpf_redirect_neigh). A destination without a row goes to the host stack.
 */
export class RouteMap extends KeyedMap<string, RouteEntry> {
  static readonly mapName = "bpfnet_routes";

  constructor(map: BpfMap) {
    super(map, { name: RouteMap.mapName, type: MapType.LPM_TRIE, key: LAYOUTS.tunnelKey, value: LAYOUTS.route }, {
      encodeKey: encodeTunnelKey,
      decodeKey: decodeTunnelKey,
      encodeValue: encodeRoute,
      decodeValue: decodeRoute,
    });
  }

  static open(pinRoot: string): RouteMap {
    return openPinned(pinRoot, RouteMap.mapName, (map) => new RouteMap(map));
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

  /** A verdict's counters include the paths the datapath counted in its place (pathCounters.ts). */
  override get(key: MetricsKey): Counters {
    return countedAs(key.reason)
      .map((reason) => super.get({ ...key, reason }))
      .reduce((a, b) => ({ packets: a.packets + b.packets, bytes: a.bytes + b.bytes }));
  }

  override entries(): MetricsEntry[] {
    return withPathTotals(super.entries());
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
  routes: RouteMap;
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
      routes: track(RouteMap.open(pinRoot)),
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

// --- Service load balancing (contract: bpf/README.md, "Service load balancing") ---

/** Maps keyed by a bare u32 (backend id, rev_nat_index): a layout for the shape check only. */
const U32_KEY: StructLayout = { name: "u32", size: 4, fields: { value: { offset: 0, size: 4 } } };

/** A service as the agent writes it: the row's settings and its backends in slot order. */
export interface LbService {
  /** The service's cluster-wide number (1..65535): key of its reverse-NAT entry and Maglev table. */
  revNatIndex: number;
  /** Slots 1..n in order (a backend may appear more than once to weigh it); empty: dropped as NO_SERVICE_BACKEND. */
  backendIds: number[];
  /** LbServiceFlags. */
  flags?: number;
  /** clientIP affinity lifetime in seconds (with LbServiceFlags.AFFINITY). */
  affinityTimeoutS?: number;
}

/**
 * bpfnet_lb_svc: services by (VIP, port, protocol). set() never lets the datapath see a
 * half-written service: slots are written before the row that counts them, and a shrinking
 * service's row drops its count before the surplus slots go. Every intermediate state
 * selects only backends of the old or of the new set.
 */
export class LbServiceMap extends TypedMap {
  static readonly mapName = "bpfnet_lb_svc";
  private active = false;

  /**
   * `sockConfig`: where set() raises SockConfigFlags.LB_ACTIVE before the first row, without which
   * the tc datapath does not look for service flows (open() passes the host's).
   */
  constructor(
    map: BpfMap,
    private readonly sockConfig?: SockConfigMap,
  ) {
    super(map);
    checkShape(map, LbServiceMap.mapName, MapType.HASH, LAYOUTS.lbSvcKey, LAYOUTS.lbSvc);
  }

  static open(pinRoot: string): LbServiceMap {
    const sockConfig = SockConfigMap.open(pinRoot);
    try {
      return openPinned(pinRoot, LbServiceMap.mapName, (map) => new LbServiceMap(map, sockConfig));
    } catch (err) {
      sockConfig.close();
      throw err;
    }
  }

  /** Raises LB_ACTIVE once (it stays: clearing it would stop reverse NAT of live flows). */
  private activate(): void {
    if (this.active || !this.sockConfig) return;
    const cfg = this.sockConfig.get();
    const flags = cfg.flags ?? 0;
    if (!(flags & SockConfigFlags.LB_ACTIVE)) this.sockConfig.set({ ...cfg, flags: flags | SockConfigFlags.LB_ACTIVE });
    this.active = true;
  }

  override close(): void {
    this.sockConfig?.close();
    super.close();
  }

  private row(key: LbServiceKey): LbServiceValue | undefined {
    const value = this.map.lookup(encodeLbSvcKey(key, 0));
    return value && decodeLbSvc(value);
  }

  get(key: LbServiceKey): LbService | undefined {
    const row = this.row(key);
    if (!row) return undefined;
    const backendIds: number[] = [];
    for (let slot = 1; slot <= row.count; slot++) {
      const value = this.map.lookup(encodeLbSvcKey(key, slot));
      if (value) backendIds.push(decodeLbSvc(value).backendId);
    }
    return { revNatIndex: row.revNatIndex, backendIds, flags: row.flags, affinityTimeoutS: row.affinityTimeoutS };
  }

  set(key: LbServiceKey, service: LbService): void {
    const count = service.backendIds.length;
    if (count > 0xffff) throw new RangeError(`a service holds at most 65535 backend slots, got ${count}`);
    service.backendIds.forEach(checkBackendId);
    const rowValue = encodeLbSvc({
      backendId: 0,
      count,
      revNatIndex: checkRevNatIndex(service.revNatIndex),
      flags: service.flags ?? 0,
      affinityTimeoutS: service.affinityTimeoutS ?? 0,
    });
    const rowKey = encodeLbSvcKey(key, 0);
    this.activate();
    const oldCount = this.row(key)?.count ?? 0;
    if (count < oldCount) this.map.update(rowKey, rowValue);
    service.backendIds.forEach((backendId, i) =>
      this.map.update(encodeLbSvcKey(key, i + 1), encodeLbSvc({ backendId, count: 0, revNatIndex: 0, flags: 0, affinityTimeoutS: 0 })),
    );
    this.map.update(rowKey, rowValue);
    for (let slot = count + 1; slot <= oldCount; slot++) this.map.delete(encodeLbSvcKey(key, slot));
  }

  /** Removes the row first (new flows stop matching), then its slots. Whether it existed. */
  delete(key: LbServiceKey): boolean {
    const row = this.row(key);
    if (!row) return false;
    this.map.delete(encodeLbSvcKey(key, 0));
    for (let slot = 1; slot <= row.count; slot++) this.map.delete(encodeLbSvcKey(key, slot));
    return true;
  }

  /** Every service (by its row), with its slots. */
  entries(): (LbServiceKey & LbService)[] {
    return this.map.keys().flatMap((raw) => {
      const { slot, ...key } = decodeLbSvcKey(raw);
      if (slot !== 0) return [];
      const service = this.get(key);
      return service ? [{ ...key, ...service }] : [];
    });
  }

  /** Slots beyond a row's count or without a row (left by an interrupted writer); the agent may delete them. */
  strays(): (LbServiceKey & { slot: number })[] {
    const keys = this.map.keys().map(decodeLbSvcKey);
    return keys.filter((k) => k.slot !== 0 && (this.row(k)?.count ?? 0) < k.slot);
  }

  /** Deletes one slot key, e.g. a stray. */
  deleteSlot(key: LbServiceKey, slot: number): boolean {
    return this.map.delete(encodeLbSvcKey(key, slot));
  }
}

/** bpfnet_lb_be: backends by id (>= 1; the agent's host-local numbering, read back after a restart). */
export class LbBackendMap extends KeyedMap<number, LbBackend> {
  static readonly mapName = "bpfnet_lb_be";

  constructor(map: BpfMap) {
    super(map, { name: LbBackendMap.mapName, type: MapType.HASH, key: U32_KEY, value: LAYOUTS.lbBackend }, {
      encodeKey: (id) => encodeU32Key(checkBackendId(id), "backend id"),
      decodeKey: decodeU32Key,
      encodeValue: encodeLbBackend,
      decodeValue: decodeLbBackend,
    });
  }

  static open(pinRoot: string): LbBackendMap {
    return openPinned(pinRoot, LbBackendMap.mapName, (map) => new LbBackendMap(map));
  }
}

/** bpfnet_lb_rnat: rev_nat_index → the frontend (VIP, port) replies are rewritten to. */
export class LbRevNatMap extends KeyedMap<number, LbRevNat> {
  static readonly mapName = "bpfnet_lb_rnat";

  constructor(map: BpfMap) {
    super(map, { name: LbRevNatMap.mapName, type: MapType.HASH, key: U32_KEY, value: LAYOUTS.lbRevNat }, {
      encodeKey: (index) => encodeU32Key(checkRevNatIndex(index), "revNatIndex"),
      decodeKey: decodeU32Key,
      encodeValue: encodeLbRevNat,
      decodeValue: decodeLbRevNat,
    });
  }

  static open(pinRoot: string): LbRevNatMap {
    return openPinned(pinRoot, LbRevNatMap.mapName, (map) => new LbRevNatMap(map));
  }
}

/** bpfnet_lb_mglv: rev_nat_index → Maglev table (MAGLEV_M backend ids). A whole table is replaced at once. */
export class LbMaglevMap extends KeyedMap<number, number[]> {
  static readonly mapName = "bpfnet_lb_mglv";

  constructor(map: BpfMap) {
    super(map, { name: LbMaglevMap.mapName, type: MapType.HASH, key: U32_KEY, value: LAYOUTS.lbMaglev }, {
      encodeKey: (index) => encodeU32Key(checkRevNatIndex(index), "revNatIndex"),
      decodeKey: decodeU32Key,
      encodeValue: encodeLbMaglev,
      decodeValue: decodeLbMaglev,
    });
  }

  static open(pinRoot: string): LbMaglevMap {
    return openPinned(pinRoot, LbMaglevMap.mapName, (map) => new LbMaglevMap(map));
  }
}

/** bpfnet_lb_aff (LRU): clientIP session affinity, written by the datapath. */
export class LbAffinityMap extends KeyedMap<LbAffinityKey, LbAffinity> {
  static readonly mapName = "bpfnet_lb_aff";

  constructor(map: BpfMap) {
    super(map, { name: LbAffinityMap.mapName, type: MapType.LRU_HASH, key: LAYOUTS.lbAffinityKey, value: LAYOUTS.lbAffinity }, {
      encodeKey: encodeLbAffinityKey,
      decodeKey: decodeLbAffinityKey,
      encodeValue: encodeLbAffinity,
      decodeValue: decodeLbAffinity,
    });
  }

  static open(pinRoot: string): LbAffinityMap {
    return openPinned(pinRoot, LbAffinityMap.mapName, (map) => new LbAffinityMap(map));
  }

  /** Drops a service's entries (e.g. when it is deleted or its affinity is switched off). */
  deleteService(revNatIndex: number): number {
    return this.entries().filter(([key]) => key.revNatIndex === revNatIndex && this.delete(key)).length;
  }
}

/** bpfnet_lb_sknat (LRU): what the socket hooks translated, per socket; read-only here. */
export class LbSockNatMap extends TypedMap {
  static readonly mapName = "bpfnet_lb_sknat";

  constructor(map: BpfMap) {
    super(map);
    checkShape(map, LbSockNatMap.mapName, MapType.LRU_HASH, LAYOUTS.lbSockNatKey, LAYOUTS.lbSockNat);
  }

  static open(pinRoot: string): LbSockNatMap {
    return openPinned(pinRoot, LbSockNatMap.mapName, (map) => new LbSockNatMap(map));
  }

  entries(): LbSockNatEntry[] {
    return this.map.keys().flatMap((key) => {
      const value = this.map.lookup(key);
      return value ? [decodeLbSockNat(key, value)] : [];
    });
  }
}

/** bpfnet_lb_nobe: per service (rev_nat_index), packets and connects dropped for want of a backend. */
export class LbNoBackendMap extends CounterMap<number> {
  static readonly mapName = "bpfnet_lb_nobe";

  constructor(map: BpfMap) {
    super(map, LbNoBackendMap.mapName, LAYOUTS.lbNoBackendKey, encodeLbNoBackendKey, decodeLbNoBackendKey);
  }

  static open(pinRoot: string): LbNoBackendMap {
    return openPinned(pinRoot, LbNoBackendMap.mapName, (map) => new LbNoBackendMap(map));
  }
}

/** bpfnet_sock_cfg: the single slot naming the namespace the socket hooks act in. */
export class SockConfigMap extends TypedMap {
  static readonly mapName = "bpfnet_sock_cfg";
  private static readonly slot = Buffer.alloc(4);

  constructor(map: BpfMap) {
    super(map);
    checkShape(map, SockConfigMap.mapName, MapType.ARRAY, 4, LAYOUTS.sockConfig);
  }

  static open(pinRoot: string): SockConfigMap {
    return openPinned(pinRoot, SockConfigMap.mapName, (map) => new SockConfigMap(map));
  }

  get(): SockConfig {
    const value = this.map.lookup(SockConfigMap.slot);
    if (!value) throw new Error("bpfnet_sock_cfg has no slot 0");
    return decodeSockConfig(value);
  }

  set(config: SockConfig): void {
    this.map.update(SockConfigMap.slot, encodeSockConfig(config));
  }
}

/** The service maps of one host (pinned once any datapath object of this version is loaded). */
export interface LbMaps {
  services: LbServiceMap;
  backends: LbBackendMap;
  revNat: LbRevNatMap;
  maglev: LbMaglevMap;
  affinity: LbAffinityMap;
  sockNat: LbSockNatMap;
  noBackend: LbNoBackendMap;
  sockConfig: SockConfigMap;
  close(): void;
}

export function openLbMaps(pinRoot: string): LbMaps {
  const opened: TypedMap[] = [];
  const track = <T extends TypedMap>(map: T): T => (opened.push(map), map);
  try {
    return {
      services: track(LbServiceMap.open(pinRoot)),
      backends: track(LbBackendMap.open(pinRoot)),
      revNat: track(LbRevNatMap.open(pinRoot)),
      maglev: track(LbMaglevMap.open(pinRoot)),
      affinity: track(LbAffinityMap.open(pinRoot)),
      sockNat: track(LbSockNatMap.open(pinRoot)),
      noBackend: track(LbNoBackendMap.open(pinRoot)),
      sockConfig: track(SockConfigMap.open(pinRoot)),
      close: () => opened.forEach((m) => m.close()),
    };
  } catch (err) {
    opened.forEach((m) => m.close());
    throw err;
  }
}
