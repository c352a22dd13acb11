/**
 * bpfnet's datapath API for the node agent:
 *
 *   const dp = loadDatapathObjects(DEFAULT_PIN_ROOT);      // build/bpf/*.o, maps shared via pins
 *   const maps = openDatapathMaps(DEFAULT_PIN_ROOT);
 *   maps.config.set({ mode: "vxlan", vni: 2, vxlanIfindex, hostIfindex, gateway: "10.1.0.1" });
 *   maps.endpoints.set("10.1.0.5", { ifindex, endpointId, mac, nodeMac });
 *   TcHook.open(vethIfindex, "ingress").attach(dp.programs.lxc);
 *   dp.close();                                            // attachments and pins stay
 */
export { BpfError } from "./errors";
export type { BpfErrorDetails } from "./errors";
export { DEFAULT_PIN_ROOT, defaultObjectDir, makePinDir, nativeAddonPath } from "./paths";
export {
  ABI_CONSTANTS,
  DropReason,
  EndpointFlags,
  Identity,
  LAYOUTS,
  monotonicNowNs,
  PolicyAction,
  PolicyDirection,
  reasonName,
  TcAction,
  Verdict,
} from "./abi";
export type {
  CtEntry,
  CtHook,
  CtKey,
  CtValue,
  Counters,
  DatapathConfig,
  DatapathMode,
  Direction,
  Endpoint,
  FieldLayout,
  MetricsKey,
  PeerEntry,
  PolicyKey,
  PolicyRow,
  PolicyValue,
  StructLayout,
  TunnelEntry,
  RouteEntry,
  PolicyVerdict,
  VerdictKey,
} from "./abi";
export { ALL_DATAPATH_PROGRAMS, BpfObject, BpfProgram, DATAPATH_PROGRAMS, loadDatapathObjects, loadDatapathObjectsAsync, objectPath } from "./object";
export type { DatapathObjects, DatapathObjectSet, DatapathProgram, LoadOptions } from "./object";
export { BpfMap, ConfigMap, CtMap, EndpointMap, IpcacheMap, MetricsMap, openDatapathMaps, PeerMap, PolicyMap, RouteMap, TunnelMap, VerdictMap } from "./maps";
export type { DatapathMaps, MapInfo, MetricsEntry, UpdateMode, VerdictEntry } from "./maps";
export { DEFAULT_TC_HANDLE, DEFAULT_TC_PRIORITY, TcHook } from "./tc";
export type { TcAttachment, TcAttachOptions, TcDirection, TcFilterOptions, TcHookOptions } from "./tc";
export { testRun } from "./testrun";
// rtnetlink from the addon (endpoint plumbing without spawning ip)
export { checkNetnsPath, deleteLink, NETKIT_PROBE_NAMES, NetlinkError, ownNetnsFd, probeNetkit, readLink, rtnetlink } from "./netlink";
export type { NetkitSupport } from "./netlink";
export { addrAdd, checkIfname, decodeLink, linkDel, linkGet, linkUp, neighPermanent, netkitAdd, REPLIED_IFINDEX, routeReplace, vethAdd } from "./rtnetlink";
export type { IfindexRef, RouteSpec, RtLink, RtRequest, VethEnd } from "./rtnetlink";
export type { TestRunOptions, TestRunResult } from "./testrun";
export { possibleCpus } from "./system";
// Service load balancing (bpf/README.md, "Service load balancing")
export { LbBackendFlags, LbProto, LbServiceFlags, lbFlowHash, MAGLEV_M, SockConfigFlags } from "./abi";
export type { LbAffinity, LbAffinityKey, LbBackend, LbFlowTuple, LbRevNat, LbServiceKey, LbSockNatEntry, SockConfig } from "./abi";
export {
  LbAffinityMap,
  LbBackendMap,
  LbMaglevMap,
  LbNoBackendMap,
  LbRevNatMap,
  LbServiceMap,
  LbSockNatMap,
  openLbMaps,
  SockConfigMap,
} from "./maps";
export type { LbMaps, LbService } from "./maps";
export { attachSocketLb, CGROUP_V2_MOUNT, cgroupV2Root, detachSocketLb, netnsCookie, SOCKET_LB_HOOKS, SOCKET_LB_OBJECT, socketLbLinks, socketLbPin } from "./socketLb";
export type { AttachSocketLbOptions, SocketLbHook, SocketLbLink } from "./socketLb";
export { connectFromProxy, transparentListener } from "./socket";
