// bpfnet's public entry point (package.json "main"/"exports" → dist/index.js): the components a
// program composes and every resource they are built from. `import { Network } from "bpfnet"`.
// The repository's own stack program is deploy/index.ts, not this file: importing bpfnet deploys
// nothing.
import { assertCompatibleRuntime } from "./components/compat";

assertCompatibleRuntime();

export { Network, etcdMembersOn } from "./components/network";
export type { NetworkArgs, NetworkHostArgs, NetworkEtcdArgs, NetworkAgentArgs, NetworkOutputs } from "./components/network";
export { EtcdCluster } from "./components/etcdCluster";
export type { EtcdClusterArgs, EtcdHostArgs, ExistingEtcdArgs } from "./components/etcdCluster";
export { compatibilityProblems, MIN_NODE_MAJOR, MIN_PULUMI_VERSION, PULUMI_PEER_RANGE } from "./components/compat";
export * from "./provider";
export { readInventory, networkHostsOf, sshConnectionFor } from "./lab/inventory";
export type { Inventory, InventoryHost, InventoryRouter, InventorySsh } from "./lab/inventory";
