// `bpfnet lab k8s up|down|status`: the lab's Kubernetes control plane (lab/kubernetes.ts).
import { labKubernetesDown, labKubernetesUp, readKubernetesState } from "../../lab/kubernetes";
import { pidAlive } from "../../lab/sh";

export async function kubernetesCommand(verb: string | undefined, stateDir: string, flags: Map<string, string>): Promise<number> {
  switch (verb) {
    case "up": {
      const port = flags.has("port") ? Number(flags.get("port")) : undefined;
      const k = await labKubernetesUp(stateDir, { port, virtualKubelet: !flags.has("no-virtual-kubelet"), kubelet: flags.has("kubelet") });
      console.log(`kubernetes is up: ${k.server} (control plane on ${k.controlPlaneHost}; nodes ${k.nodes.join(", ")} as ${k.nodeKind})`);
      console.log(`kubeconfig: ${k.kubeconfigPath}`);
      return 0;
    }
    case "down":
      labKubernetesDown(stateDir);
      console.log("kubernetes is down");
      return 0;
    case "status": {
      const k = readKubernetesState(stateDir);
      if (!k) {
        console.log("kubernetes is not up");
        return 0;
      }
      const dead = Object.entries(k.processes).filter(([, pid]) => !pidAlive(pid));
      console.log(`kubernetes ${dead.length ? "DEGRADED" : "up"}: ${k.server}, kubeconfig ${k.kubeconfigPath}`);
      for (const [name, pid] of Object.entries(k.processes)) console.log(`  ${name.padEnd(28)} pid ${pid} ${pidAlive(pid) ? "running" : "EXITED"}`);
      return dead.length ? 1 : 0;
    }
    default:
      console.error("usage: bpfnet lab k8s up|down|status [--name N] [--state-dir DIR] [--port 16443] [--kubelet | --no-virtual-kubelet]");
      return 2;
  }
}
