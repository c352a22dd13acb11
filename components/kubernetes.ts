// KubernetesNetwork: bpfnet installed onto a Kubernetes cluster with @pulumi/kubernetes. The same
// etcd-side resources as Network (the spec in etcd, one pod-CIDR allocation and one least-privilege
// etcd identity per node), and instead of SSH the agent runs as a DaemonSet: a namespace, the
// agent's ServiceAccount with read-only RBAC, a ConfigMap with the network config, a Secret with
// each node's etcd credentials, and the DaemonSet (hostNetwork, CAP_BPF/CAP_NET_ADMIN/CAP_SYS_ADMIN
// or privileged, bpffs and /run/netns mounted, an init container that writes the node's agent
// config and installs the CNI plugin and conflist, readiness from the agent's API, rolling one
// node at a time). `import { KubernetesNetwork } from "bpfnet/kubernetes"`: the package's main
// entry never loads @pulumi/kubernetes, so users without Kubernetes do not need it.
import * as crypto from "crypto";
import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import { ContainerNetwork } from "../provider/network/containerNetwork";
import { EtcdConnection } from "../provider/etcd/etcdClient";
import { EtcdHostAccess } from "../provider/etcd/etcdHostAccess";
import { HostAllocation } from "../provider/ipam/hostAllocation";
import { NetworkMode } from "../provider/network/networkSpec";
import { EtcdCluster } from "./etcdCluster";
import { DEFAULT_BUNDLE_PATH, NetworkEtcdArgs, bundleDigest, hostCredentialsMode, rotationOf } from "./network";
import type { ContainerNetworkArgs } from "../provider/network/containerNetwork";
import { validateKubernetesNetworkArgs } from "./kubernetesValidation";
import { API_SOCKET_NAME } from "../node-agent/config";
import { agentImageRef, IMAGE_NODE, IMAGE_RELEASE_DIR } from "../node-agent/kubernetes/image";

/** A Kubernetes Node that joins the network: its name (the Node object's) and its data-plane address. */
export interface KubernetesNodeArgs {
  /** The Node's name (`kubectl get nodes`); also its host name in etcd. */
  name: string;
  /** The address other nodes reach this node's VXLAN endpoint on (usually its InternalIP). */
  underlayIp: string;
  /** The data-plane interface (default eth0). */
  underlayInterface?: string;
}

/** Directories on every node (hostPath volumes). */
export interface KubernetesNodePaths {
  /** The agent's release and the Node.js runtime the CNI plugin runs on (default /opt/bpfnet). */
  installDir?: string;
  /** The agent's state: its config, endpoints, API socket (default /var/lib/bpfnet/agent). */
  stateDir?: string;
  /** bpffs directory for pinned maps (default /sys/fs/bpf/bpfnet); /sys/fs/bpf is mounted. */
  bpffsDir?: string;
  /** Where the container runtime looks for CNI plugins (default /opt/cni/bin). */
  cniBinDir?: string;
  /** Where the container runtime reads CNI configs (default /etc/cni/net.d). */
  cniConfDir?: string;
}

type NetworkSpecArgs = Pick<ContainerNetworkArgs, "clusterCidr" | "hostPrefixLength" | "vni" | "vxlanPort" | "mtu" | "underlayMtu" | "serviceCidr">;

/** KubernetesNetwork's arguments: the cluster, its nodes, the network's spec and etcd. Checked at construction, naming the field and value. */
export interface KubernetesNetworkArgs extends NetworkSpecArgs {
  /** The cluster: `new k8s.Provider("cluster", { kubeconfig })`. Every Kubernetes object is created through it. */
  provider: k8s.Provider;
  /** The nodes the network spans (from your Node objects or a node list): one pod CIDR and one etcd identity each. */
  nodes: KubernetesNodeArgs[];
  /** "vxlan" (tunnel between nodes). */
  mode: NetworkMode;
  /** Names the network; its etcd prefix is /bpfnet/<networkName> (default: the component's name). */
  networkName?: string;
  /** The etcd the agents use: `existing` (reachable from the nodes), with per-node identities as in Network. */
  etcd: NetworkEtcdArgs;
  /** Namespace of the agent's objects (default "bpfnet-system"); created and owned by this component. */
  namespace?: string;
  /** The agent image (default "bpfnet/agent:<package version>-<bundle digest>", built by scripts/build-agent-image.js). */
  image?: string;
  /** Default "IfNotPresent" (a locally imported image; no registry needed). */
  imagePullPolicy?: "Always" | "IfNotPresent" | "Never";
  /** "capabilities" (default): CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN (bpffs, netns), CAP_PERFMON, CAP_SYS_RESOURCE. "privileged": a privileged container. */
  securityMode?: "capabilities" | "privileged";
  paths?: KubernetesNodePaths;
  /** Also write each node's pod CIDR to its Node's spec.podCIDR (immutable once set; default false). */
  podCidrOnNodes?: boolean;
  /** Wait for the DaemonSet's rollout (default true); false when the nodes have no kubelet yet. */
  awaitRollout?: boolean;
  /** The agent bundle the default image tag is derived from (default: this package's build/agent-bundle.tgz). */
  bundlePath?: string;
}

/** Defaults of KubernetesNodePaths. */
export const DEFAULT_NODE_PATHS: Required<KubernetesNodePaths> = {
  installDir: "/opt/bpfnet",
  stateDir: "/var/lib/bpfnet/agent",
  bpffsDir: "/sys/fs/bpf/bpfnet",
  cniBinDir: "/opt/cni/bin",
  cniConfDir: "/etc/cni/net.d",
};
export const DEFAULT_NAMESPACE = "bpfnet-system";
/** Names of the objects in the namespace. */
export const OBJECT_NAMES = { serviceAccount: "bpfnet-agent", role: "bpfnet-agent", configMap: "bpfnet-config", secret: "bpfnet-etcd", daemonSet: "bpfnet-agent" } as const;
/** The agent's namespaced rights: read its own ConfigMap, nothing else (docs/kubernetes.md, "The RBAC"). */
export const AGENT_ROLE_RULES = [{ apiGroups: [""], resources: ["configmaps"], resourceNames: [OBJECT_NAMES.configMap], verbs: ["get", "watch"] }];
/** The agent's cluster-wide rights: read the Nodes. */
export const AGENT_CLUSTER_ROLE_RULES = [{ apiGroups: [""], resources: ["nodes"], verbs: ["get", "list", "watch"] }];

/**
 * bpfnet on a Kubernetes cluster: the network's spec, one pod CIDR and one etcd identity per node
 * in etcd, and the node agent as a DaemonSet with its RBAC, config and credentials.
 * `import { KubernetesNetwork } from "bpfnet/kubernetes"`; see docs/kubernetes.md.
 */
export class KubernetesNetwork extends pulumi.ComponentResource {
  /** The network's key prefix in etcd. */
  public readonly prefix: pulumi.Output<string>;
  /** Each node's pod CIDR, by node name. */
  public readonly podCidrs: pulumi.Output<Record<string, string>>;
  /** The namespace the agent runs in. */
  public readonly namespaceName: pulumi.Output<string>;
  /** The resources, for programs that compose further. */
  public readonly etcd: EtcdCluster;
  public readonly containerNetwork: ContainerNetwork;
  public readonly allocations: Record<string, HostAllocation>;
  public readonly hostAccess: Record<string, EtcdHostAccess>;
  public readonly daemonSet: k8s.apps.v1.DaemonSet;

  constructor(name: string, args: KubernetesNetworkArgs, opts?: pulumi.ComponentResourceOptions) {
    super("bpfnet:index:KubernetesNetwork", name, {}, opts);
    validateKubernetesNetworkArgs(name, args);
    const k8sOpts = { parent: this, provider: args.provider };
    const paths = { ...DEFAULT_NODE_PATHS, ...args.paths };
    const ns = args.namespace ?? DEFAULT_NAMESPACE;

    // The etcd side: exactly Network's resources.
    this.etcd = new EtcdCluster(`${name}-etcd`, { existing: args.etcd.existing }, { parent: this });
    const { provider: _p, nodes, etcd: _e, namespace: _n, image: _i, imagePullPolicy: _ip, securityMode: _s, paths: _pa, podCidrOnNodes: _pc, awaitRollout: _a, bundlePath: _b, networkName, ...spec } = args;
    this.containerNetwork = new ContainerNetwork(
      `${name}-spec`,
      { ...spec, connection: this.etcd.connection, networkName: networkName ?? name, hostAddresses: nodes.map((n) => n.underlayIp) },
      { parent: this },
    );
    this.hostAccess = hostCredentialsMode(args.etcd) === "shared" ? {} : this.grantNodeAccess(name, args);
    this.allocations = Object.fromEntries(
      nodes.map((n) => [n.name, new HostAllocation(`${name}-${n.name}`, { network: this.containerNetwork, host: n.name }, { parent: this, dependsOn: this.hostAccess[n.name] ? [this.hostAccess[n.name]] : [] })]),
    );

    // The Kubernetes side.
    const namespace = new k8s.core.v1.Namespace(`${name}-namespace`, { metadata: { name: ns, labels: { "app.kubernetes.io/part-of": "bpfnet" } } }, k8sOpts);
    this.namespaceName = namespace.metadata.name;
    const meta = (objectName: string) => ({ name: objectName, namespace: this.namespaceName, labels: { "app.kubernetes.io/name": "bpfnet-agent", "app.kubernetes.io/part-of": "bpfnet" } });
    const objOpts = { ...k8sOpts, dependsOn: [namespace] };

    const serviceAccount = new k8s.core.v1.ServiceAccount(`${name}-agent`, { metadata: meta(OBJECT_NAMES.serviceAccount), automountServiceAccountToken: false }, objOpts);
    // Least privilege: the agent's config arrives through volumes (the kubelet reads them, not
    // the agent), so its identity may only read its own ConfigMap and the Nodes; no Secret, no write.
    const role = new k8s.rbac.v1.Role(`${name}-agent`, {
      metadata: meta(OBJECT_NAMES.role),
      rules: AGENT_ROLE_RULES,
    }, objOpts);
    const roleBinding = new k8s.rbac.v1.RoleBinding(`${name}-agent`, {
      metadata: meta(OBJECT_NAMES.role),
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: role.metadata.name },
      subjects: [{ kind: "ServiceAccount", name: serviceAccount.metadata.name, namespace: this.namespaceName }],
    }, objOpts);
    const clusterRoleName = pulumi.interpolate`bpfnet-agent-${this.namespaceName}`;
    const clusterRole = new k8s.rbac.v1.ClusterRole(`${name}-agent`, {
      metadata: { name: clusterRoleName, labels: { "app.kubernetes.io/part-of": "bpfnet" } },
      rules: AGENT_CLUSTER_ROLE_RULES,
    }, k8sOpts);
    const clusterRoleBinding = new k8s.rbac.v1.ClusterRoleBinding(`${name}-agent`, {
      metadata: { name: clusterRoleName, labels: { "app.kubernetes.io/part-of": "bpfnet" } },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: clusterRole.metadata.name },
      subjects: [{ kind: "ServiceAccount", name: serviceAccount.metadata.name, namespace: this.namespaceName }],
    }, objOpts);

    const networkJson = this.containerNetwork.prefix.apply((networkPrefix) =>
      JSON.stringify(
        {
          networkName: networkName ?? name,
          networkPrefix,
          stateDir: paths.stateDir,
          bpffsDir: paths.bpffsDir,
          nodes: Object.fromEntries(nodes.map((n) => [n.name, { underlayIp: n.underlayIp, underlayInterface: n.underlayInterface ?? "eth0" }])),
        },
        null,
        2,
      ),
    );
    const configMap = new k8s.core.v1.ConfigMap(`${name}-config`, { metadata: meta(OBJECT_NAMES.configMap), data: { "network.json": networkJson } }, objOpts);
    // One key per node: <node>.json, the connection that node's agent uses (its own etcd user).
    const credentials = pulumi.secret(
      pulumi.all(Object.fromEntries(nodes.map((n) => [n.name, this.hostAccess[n.name]?.agentConnection ?? this.etcd.connection])) as Record<string, pulumi.Output<EtcdConnection>>),
    ).apply((byNode) => Object.fromEntries(Object.entries(byNode).map(([n, c]) => [`${n}.json`, JSON.stringify(c)])));
    const secret = new k8s.core.v1.Secret(`${name}-etcd`, { metadata: meta(OBJECT_NAMES.secret), type: "Opaque", stringData: credentials }, objOpts);

    const image = args.image ?? agentImageRef(bundleDigest(args.bundlePath ?? DEFAULT_BUNDLE_PATH, name));
    // A changed config or credential rolls the pods (volumes alone would not restart the agent).
    const configHash = pulumi.all([networkJson, credentials]).apply(([n, c]) => crypto.createHash("sha256").update(JSON.stringify([n, c])).digest("hex"));
    this.daemonSet = new k8s.apps.v1.DaemonSet(
      `${name}-agent`,
      {
        metadata: {
          ...meta(OBJECT_NAMES.daemonSet),
          ...(args.awaitRollout === false ? { annotations: { "pulumi.com/skipAwait": "true" } } : {}),
        },
        spec: agentDaemonSetSpec({ image, pullPolicy: args.imagePullPolicy ?? "IfNotPresent", privileged: args.securityMode === "privileged", paths, configHash, serviceAccount: serviceAccount.metadata.name }),
      },
      { ...objOpts, dependsOn: [namespace, configMap, secret, roleBinding, clusterRoleBinding, ...Object.values(this.allocations)] },
    );

    if (args.podCidrOnNodes) {
      for (const n of nodes) {
        // spec.podCIDR is immutable once set: destroy leaves it (and the Node) as they are.
        new k8s.core.v1.NodePatch(
          `${name}-podcidr-${n.name}`,
          { metadata: { name: n.name }, spec: { podCIDR: this.allocations[n.name].podCidr, podCIDRs: [this.allocations[n.name].podCidr] } },
          { ...k8sOpts, retainOnDelete: true },
        );
      }
    }

    this.prefix = this.containerNetwork.prefix;
    this.podCidrs = pulumi.all(Object.fromEntries(Object.entries(this.allocations).map(([n, a]) => [n, a.podCidr]))) as pulumi.Output<Record<string, string>>;
    this.registerOutputs({ prefix: this.prefix, podCidrs: this.podCidrs, namespaceName: this.namespaceName });
  }

  /** Each node's own etcd user and credentials (hostAccessSpec.ts), as Network grants its hosts. */
  private grantNodeAccess(name: string, args: KubernetesNetworkArgs): Record<string, EtcdHostAccess> {
    const e = args.etcd;
    return Object.fromEntries(
      args.nodes.map((n) => [
        n.name,
        new EtcdHostAccess(
          `${name}-access-${n.name}`,
          {
            connection: this.etcd.connection,
            networkPrefix: this.containerNetwork.prefix,
            hostName: n.name,
            transport: e.agentTransport,
            validityDays: e.credentialValidityDays,
            renewBeforeDays: e.renewBeforeDays,
            rotation: rotationOf(e.credentialRotation, undefined),
          },
          { parent: this, dependsOn: [this.containerNetwork] },
        ),
      ]),
    );
  }
}

interface DaemonSetInputs {
  image: string;
  pullPolicy: string;
  privileged: boolean;
  paths: Required<KubernetesNodePaths>;
  configHash: pulumi.Input<string>;
  serviceAccount: pulumi.Input<string>;
}

/** The agent's pod: init container (config + CNI install), the agent, its volumes and probes. */
export function agentDaemonSetSpec(d: DaemonSetInputs): k8s.types.input.apps.v1.DaemonSetSpec {
  const labels = { "app.kubernetes.io/name": "bpfnet-agent" };
  const hostDir = (name: string, p: string, type = "DirectoryOrCreate") => ({ name, hostPath: { path: p, type } });
  const securityContext = d.privileged
    ? { privileged: true }
    : { privileged: false, capabilities: { drop: ["ALL"], add: ["BPF", "NET_ADMIN", "SYS_ADMIN", "PERFMON", "SYS_RESOURCE", "NET_RAW"] } };
  const socket = `${d.paths.stateDir}/${API_SOCKET_NAME}`;
  const cli = `${IMAGE_RELEASE_DIR}/bin/bpfnet`;
  return {
    selector: { matchLabels: labels },
    updateStrategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 1 } },
    template: {
      metadata: { labels, annotations: { "bpfnet.io/config-sha256": d.configHash } },
      spec: {
        serviceAccountName: d.serviceAccount,
        automountServiceAccountToken: false,
        hostNetwork: true,
        dnsPolicy: "ClusterFirstWithHostNet",
        priorityClassName: "system-node-critical",
        // The network must come up on every node, whatever its taints.
        tolerations: [{ operator: "Exists" }],
        initContainers: [
          {
            name: "install",
            image: d.image,
            imagePullPolicy: d.pullPolicy,
            command: [
              IMAGE_NODE, `${IMAGE_RELEASE_DIR}/dist/node-agent/kubernetes/podSetup.js`,
              "--node", "$(NODE_NAME)", "--config", "/etc/bpfnet/config", "--etcd", "/etc/bpfnet/etcd", "--release", IMAGE_RELEASE_DIR,
              "--host-install", d.paths.installDir, "--host-cni-bin", d.paths.cniBinDir, "--host-cni-conf", d.paths.cniConfDir,
            ],
            env: [{ name: "NODE_NAME", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } }],
            securityContext: { privileged: false, capabilities: { drop: ["ALL"], add: ["CHOWN", "DAC_OVERRIDE", "FOWNER"] } },
            volumeMounts: [
              { name: "config", mountPath: "/etc/bpfnet/config", readOnly: true },
              { name: "etcd", mountPath: "/etc/bpfnet/etcd", readOnly: true },
              { name: "state", mountPath: d.paths.stateDir },
              { name: "install", mountPath: d.paths.installDir },
              { name: "cni-bin", mountPath: d.paths.cniBinDir },
              { name: "cni-conf", mountPath: d.paths.cniConfDir },
            ],
          },
        ],
        containers: [
          {
            name: "agent",
            image: d.image,
            imagePullPolicy: d.pullPolicy,
            command: [IMAGE_NODE, cli, "agent", "--config", `${d.paths.stateDir}/agent.json`],
            securityContext,
            readinessProbe: { exec: { command: [IMAGE_NODE, cli, "status", "--socket", socket] }, periodSeconds: 10, timeoutSeconds: 8, failureThreshold: 3 },
            livenessProbe: { exec: { command: [IMAGE_NODE, cli, "status", "--socket", socket] }, initialDelaySeconds: 60, periodSeconds: 30, timeoutSeconds: 8, failureThreshold: 5 },
            resources: { requests: { cpu: "50m", memory: "128Mi" } },
            volumeMounts: [
              { name: "state", mountPath: d.paths.stateDir },
              { name: "bpffs", mountPath: "/sys/fs/bpf", mountPropagation: d.privileged ? "Bidirectional" : "HostToContainer" },
              { name: "netns", mountPath: "/run/netns", mountPropagation: "HostToContainer" },
              { name: "modules", mountPath: "/lib/modules", readOnly: true },
            ],
          },
        ],
        volumes: [
          { name: "config", configMap: { name: OBJECT_NAMES.configMap } },
          { name: "etcd", secret: { secretName: OBJECT_NAMES.secret, defaultMode: 0o400 } },
          hostDir("state", d.paths.stateDir),
          hostDir("install", d.paths.installDir),
          hostDir("cni-bin", d.paths.cniBinDir),
          hostDir("cni-conf", d.paths.cniConfDir),
          hostDir("bpffs", "/sys/fs/bpf", "Directory"),
          hostDir("netns", "/run/netns"),
          hostDir("modules", "/lib/modules", "Directory"),
        ],
      },
    },
  };
}
