import { native } from "./native";

/** CPUs a per-CPU map holds a slot for (libbpf_num_possible_cpus). */
export function possibleCpus(): number {
  return native().possibleCpus();
}
