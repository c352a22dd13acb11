// Labs for tests and benchmarks: each file takes its own name and /16 so files never collide.
// Test labs are named t*: .ci/run tears down only those, never the demo's (bpfnet) or a
// benchmark's (b*) lab.
import * as fs from "fs";
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
  const subnet = `10.${subnetOctet}.0.0/16`;
  // Files run in parallel: a second lab on the same /16 would break both, so say which file to fix.
  const clash = labsOnSubnet(subnet).find((other) => other !== name);
  if (clash) throw new Error(`test lab ${name}: subnet ${subnet} is already used by running lab ${clash}; give each test file its own octet`);
  labDown(stateDir); // a lab left by an earlier, killed run
  const inventory = await labUp({ name, hosts, topology, subnet, stateDir });
  return { inventory, stateDir, down: () => labDown(stateDir) };
}

/** Names of the labs under TEST_LAB_ROOT whose lab.json says they use `subnet`. */
function labsOnSubnet(subnet: string): string[] {
  if (!fs.existsSync(TEST_LAB_ROOT)) return [];
  return fs.readdirSync(TEST_LAB_ROOT).filter((dir) => {
    try {
      const state = JSON.parse(fs.readFileSync(path.join(TEST_LAB_ROOT, dir, "lab.json"), "utf8")) as { options?: { subnet?: string } };
      return state.options?.subnet === subnet;
    } catch {
      return false; // not a lab, or one being torn down
    }
  });
}
