// A stack of test/projects/kubernetes (KubernetesNetwork onto a lab's API server) with its config:
// the lab's kubeconfig, the test etcd and its root password (secret), the nodes, the network's
// name and namespace.
import * as path from "path";
import { LocalWorkspace, PulumiCommand, Stack } from "@pulumi/pulumi/automation";
import type { TestEtcd } from "../../support/etcd";
import { REPO, TOOLS, pulumiEnv, removeStack } from "../../support/pulumi";
import { cleanupAll } from "../../support/cleanup";
import type { TestLab } from "../../support/lab";
import { labKubernetesDown, readKubernetesState } from "../../../lab/kubernetes";
import { pidAlive } from "../../../lab/sh";

export const KUBERNETES_PROJECT = path.join(REPO, "test", "projects", "kubernetes");

export interface KubernetesStackConfig {
  stackName: string;
  kubeconfigPath: string;
  etcd: TestEtcd;
  etcdRootPassword: string;
  nodes: { name: string; underlayIp: string }[];
  networkName: string;
  namespace: string;
  /** Extra KubernetesNetwork arguments (default none). */
  overrides?: Record<string, unknown>;
}

export async function kubernetesNetworkStack(c: KubernetesStackConfig): Promise<Stack> {
  const pulumiCommand = await PulumiCommand.get({ root: TOOLS });
  const stack = await LocalWorkspace.createOrSelectStack({ stackName: c.stackName, workDir: KUBERNETES_PROJECT }, { pulumiCommand, envVars: pulumiEnv() });
  await stack.setConfig("k8stest:kubeconfig", { value: c.kubeconfigPath });
  await stack.setConfig("k8stest:etcd", { value: c.etcd.endpoints[0] });
  await stack.setConfig("k8stest:etcdRootPassword", { value: c.etcdRootPassword, secret: true });
  await stack.setConfig("k8stest:nodes", { value: JSON.stringify(c.nodes) });
  await stack.setConfig("k8stest:networkName", { value: c.networkName });
  await stack.setConfig("k8stest:namespace", { value: c.namespace });
  if (c.overrides) await stack.setConfig("k8stest:overrides", { value: JSON.stringify(c.overrides) });
  return stack;
}

/** Removes the stack, the etcd, the lab's Kubernetes (control plane and nodes) and the lab, in that order; then every process the control plane and nodes ran must be gone. */
export async function removeKubernetesLab(parts: { stack?: Stack; etcd?: TestEtcd; lab?: TestLab }): Promise<void> {
  const { stack, etcd, lab } = parts;
  const state = lab ? readKubernetesState(lab.stateDir) : undefined;
  await cleanupAll([
    () => stack && removeStack(stack),
    () => etcd?.stop(),
    () => lab && labKubernetesDown(lab.stateDir),
    () => lab?.down(),
  ]);
  for (const [name, pid] of Object.entries(state?.processes ?? {})) expect([name, pidAlive(pid)]).toEqual([name, false]);
}
