// bpfnet's Kubernetes entry point (package.json exports "./kubernetes" → dist/kubernetes.js):
// `import { KubernetesNetwork } from "bpfnet/kubernetes"`. Separate from the main entry so that
// only programs that install onto Kubernetes need @pulumi/kubernetes (an optional peer dependency).
import { assertCompatibleRuntime } from "./components/compat";

assertCompatibleRuntime();

export { KubernetesNetwork, agentDaemonSetSpec, DEFAULT_NAMESPACE, DEFAULT_NODE_PATHS, OBJECT_NAMES } from "./components/kubernetes";
export { agentImageRef, AGENT_IMAGE_REPOSITORY, IMAGE_NODE, IMAGE_RELEASE_DIR } from "./node-agent/kubernetes/image";
export type { KubernetesNetworkArgs, KubernetesNodeArgs, KubernetesNodePaths } from "./components/kubernetes";
export { kubernetesNetworkArgsProblems } from "./components/kubernetesValidation";
