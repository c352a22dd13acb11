// Labs for tests and benchmarks: each file takes its own name and /16 so files never collide.
// Test labs are named t*: .ci/run tears down only those, never the demo's (bpfnet) or a
// benchmark's (b*) lab.
import * as path from "path";
import { labDown, labUp } from "../../lab/lab";
import { Inventory } from "../../lab/inventory";
import { LabTopology } from "../../lab/topology";

export const TEST_LAB_ROOT = "/run/bpfnet/lab";

export interface TestLab {
  inventory: Inventory;
  stateDir: string;
  down(): void;
}

export async function startTestLab(name: string, subnetOctet: number, topology: LabTopology = "vxlan", hosts = 3): Promise<TestLab> {
  const stateDir = path.join(TEST_LAB_ROOT, name);
  labDown(stateDir); // a lab left by an earlier, killed run
  const inventory = await labUp({ name, hosts, topology, subnet: `10.${subnetOctet}.0.0/16`, stateDir });
  return { inventory, stateDir, down: () => labDown(stateDir) };
}
