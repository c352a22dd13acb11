// The agent API's messages (HTTP/JSON over the unix socket). Shared by the server, the CLI
// and the CNI plugin.
import type { EndpointView } from "../daemon/endpoints";
import type { PeerHealth } from "../health/view";

export type { EndpointView, PeerHealth };

export const API_VERSION = "v1";

/** POST /v1/endpoints */
export interface AddEndpointRequest {
  id: string;
  /** Path of the container's network namespace: /run/netns/NAME or /proc/PID/ns/net. */
  netns: string;
  /** Interface name inside the container (default eth0). */
  ifname?: string;
  labels?: Record<string, string>;
}

export interface AddEndpointResponse {
  endpoint: EndpointView;
  /** False when the endpoint already existed (idempotent add). */
  created: boolean;
}

export interface DeleteEndpointResponse {
  deleted: boolean;
  endpoint?: EndpointView;
}

export interface ApiErrorBody {
  error: { code: string; message: string };
}

export interface DeviceStatus {
  name: string;
  ifindex?: number;
  up: boolean;
  mtu?: number;
  kind?: string;
}

export interface ProgramStatus {
  device: string;
  ifindex: number;
  direction: "ingress" | "egress";
  program: string;
  attachedProgId?: number;
  /** The attached program is the one this agent loaded. */
  current: boolean;
}

export interface PeerStatus {
  host: string;
  podCidr: string;
  underlayIp: string;
}

export interface CounterTotals {
  forwarded: { packets: string; bytes: string };
  passed: { packets: string; bytes: string };
  /** Drop reason name → packets. */
  dropped: Record<string, string>;
}

/** GET /v1/status */
export interface AgentStatus {
  agent: {
    host: string;
    version: string;
    incarnation: string;
    pid: number;
    startedAt: string;
    uptimeSeconds: number;
    ready: boolean;
    networkPrefix: string;
    mode: "vxlan" | "l3";
    clusterCidr: string;
    podCidr: string;
    gateway: string;
    mtu: number;
    vni: number;
    underlayIp: string;
  };
  etcd: {
    endpoints: string[];
    /**
     * "degraded" while any watch has no stream to etcd (etcd down or unreachable): the
     * datapath keeps forwarding on the last known state, and nothing new is learned.
     */
    state: "connected" | "degraded";
    /** Since when (ISO time) the agent has been degraded. */
    degradedSince?: string;
    registered: boolean;
    lease?: string;
    viewSynced: boolean;
    watches: { prefix: string; connected: boolean; revision: number; lists: number; disconnects: number; compactions: number }[];
  };
  devices: DeviceStatus[];
  programs: ProgramStatus[];
  maps: { endpoints: number; tunnel: number; metrics: number };
  tunnels: { cidr: string; remote: string }[];
  peers: PeerStatus[];
  endpoints: { total: number; ready: number; lost: number };
  counters: CounterTotals;
  reconcilers: { name: string; passes: number; upserts: number; removals: number; errors: number; lastError?: string }[];
  /** Network policy (docs/policy.md): what the agent read and computed. */
  policy?: PolicyStatus;
  /** The L7 HTTP proxy (vxlan mode): its port and verdict counts. */
  l7?: { port: number; connections: number; allowed: number; denied: number; upstreamErrors: number };
  /** Host-to-host health (node-agent/health): this host's endpoint and its view of every peer. */
  health?: HealthStatus;
  /** The node monitor (docs/observability.md): its switches and what it read. */
  monitor?: MonitorStatus;
  problems: string[];
}

/** PUT /v1/traces: an endpoint's lasting trace switch, or the sampling rate (null: back to the agent config's). */
export type TraceChange = { endpoint: string; on: boolean } | { sampleEvery: number | null };

/** `monitor` in GET /v1/status. */
export interface MonitorStatus {
  /** off: the agent config's monitorEvents is false; idle: on, but nobody listens (the datapath writes nothing); listening. */
  state: "off" | "idle" | "listening";
  listeners: number;
  /** Events read from the ring, by type. */
  received: { drop: number; verdict: number; trace: number };
  /** Events the ring had no room for (decimal: a 64-bit count). */
  lost: string;
  listenerDropped: number;
  /** 1-in-N sampling of forwarded packets' traces (0: none). */
  traceSampleEvery: number;
  /** Endpoints traced by `bpfnet monitor trace on` (persisted across restarts), by id. */
  tracedEndpoints: string[];
  /** Endpoints traced while a listener names them (`bpfnet monitor --endpoint`). */
  listenerTraced: string[];
}

/** GET /v1/health, and `health` in GET /v1/status. */
export interface HealthStatus {
  intervalSeconds: number;
  /** This host's health endpoint (absent while it starts, or when it failed: see `error`). */
  endpoint?: { ip: string; responderPid?: number };
  error?: string;
  rounds: number;
  peers: PeerHealth[];
}

export interface PolicyStatus {
  /** Policies, identities and endpoint records were all listed once. */
  synced: boolean;
  policies: number;
  identities: number;
  /** Policy records that do not validate (hand edits): ignored. */
  problems: string[];
  warnings: string[];
  /** The computed rows reached the datapath (false: computed only). */
  applied: boolean;
  passes: number;
  errors: number;
  allocations: number;
  releases: number;
  lastError: string;
}

/** A backend of a service port as this host programs it (`bpfnet service list`). */
export interface ServiceBackendView {
  address: string;
  port: number;
  /** The host of the endpoint behind it. */
  host: string;
  /** active: takes new flows; health-down: its host's health path is down from here (no new flows). */
  state: "active" | "health-down";
  /** This host's backend id in bpfnet_lb_be (absent when not programmed). */
  id?: number;
}

/** A service as this host sees it: VIP, ports and their backends. */
export interface ServiceView {
  name: string;
  vip: string;
  sessionAffinity: "none" | "clientIP";
  algorithm: "random" | "maglev";
  ports: { port: number; protocol: "TCP" | "UDP"; targetPort: number; revNatIndex: number; backends: ServiceBackendView[] }[];
}

/** GET /v1/services. */
export interface ServiceList {
  /** Services and every host's endpoint records were listed once (before that, nothing is programmed). */
  synced: boolean;
  /** The service maps are written (false: computed only, no datapath maps). */
  programmed: boolean;
  services: ServiceView[];
  /** Backends that left, kept TERMINATING while tracked flows use them. */
  draining: { id: number; backend: string }[];
  /** Service records that do not validate (hand edits): ignored. */
  problems: string[];
}
