// The providers' one public entry point: every Pulumi resource bpfnet defines, with its
// argument types. Grouped by domain, one folder each:
//   etcd/     the store: client, key layout, PKI, members, health
//   ipam/     CIDR arithmetic and the transactional allocator (HostAllocation)
//   network/  the network's spec in etcd (ContainerNetwork)
//   router/   routes on the upstream router (RouterRoute) and its drivers
//   agent/    the node agent's deployment (NodeAgent)
//   policy/   network policy (NetworkPolicy): spec, validation, its record in etcd
//   services/ virtual IPs (Service): spec, validation, VIP and reverse-NAT allocation in etcd
//   host/     SSH, daemons on hosts (supervisor), HostProbe
//   common/   shell quoting, Pulumi's unknown sentinel
export type { EtcdConnection } from "./etcd/etcdClient";
export { EtcdPki } from "./etcd/etcdPki";
export type { EtcdPkiArgs } from "./etcd/etcdPki";
export { EtcdMember } from "./etcd/etcdMember";
export type { EtcdMemberArgs } from "./etcd/etcdMember";
export { EtcdHealth } from "./etcd/etcdHealth";
export type { EtcdHealthArgs } from "./etcd/etcdHealth";
export { ContainerNetwork } from "./network/containerNetwork";
export type { ContainerNetworkArgs, EtcdConnectionArgs } from "./network/containerNetwork";
export type { NetworkMode } from "./network/networkSpec";
export { HostAllocation } from "./ipam/hostAllocation";
export type { HostAllocationArgs } from "./ipam/hostAllocation";
export { SharedEtcdConnection } from "./etcd/sharedConnection";
export type { ConnectionRef } from "./etcd/sharedConnection";
export { RouterRoute } from "./router/routerRoute";
export type { RouterArgs } from "./router/routerRoute";
export { NodeAgent } from "./agent/nodeAgent";
export type { NodeAgentArgs } from "./agent/nodeAgent";
export { NetworkPolicy } from "./policy/networkPolicy";
export type { NetworkPolicyArgs, PolicyNetwork } from "./policy/networkPolicy";
export type { EgressRule, Entity, HttpRule, IngressRule, PortRule, Protocol, Selector } from "./policy/policySpec";
export { Service } from "./services/service";
export type { ServiceArgs, ServiceNetwork } from "./services/service";
export type { ServiceAlgorithm, ServiceFrontendArgs, ServicePortArgs, ServiceProtocol, SessionAffinity, StoredServicePort } from "./services/serviceSpec";
export { HostProbe } from "./host/hostProbe";
export type { HostProbeArgs } from "./host/hostProbe";
export type { SshConnection } from "./host/sshConnection";
