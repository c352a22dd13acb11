// KubernetesNetwork onto the lab's real API server, as a user's program writes it (the package's
// "bpfnet/kubernetes" entry), with the cluster's nodes and etcd from config. Driven by
// test/kubernetes/kubernetesNetwork.test.ts.
import * as fs from "fs";
import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import { KubernetesNetwork, KubernetesNodeArgs } from "../../../kubernetes";

const config = new pulumi.Config("k8stest");
// The kubeconfig holds the admin's key: a secret in the state.
const provider = new k8s.Provider("lab", { kubeconfig: pulumi.secret(fs.readFileSync(config.require("kubeconfig"), "utf8")) });
const nodes = JSON.parse(config.require("nodes")) as KubernetesNodeArgs[];

const net = new KubernetesNetwork("k8snet", {
  provider,
  nodes,
  mode: "vxlan",
  clusterCidr: "10.181.0.0/16",
  networkName: config.require("networkName"),
  namespace: config.require("namespace"),
  podCidrOnNodes: true,
  etcd: { existing: { endpoints: [config.require("etcd")], username: "root", password: config.requireSecret("etcdRootPassword") } },
  ...JSON.parse(config.require("overrides")),
});

export const podCidrs = net.podCidrs;
export const namespace = net.namespaceName;
export const prefix = net.prefix;
