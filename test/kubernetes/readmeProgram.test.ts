// README.md's "On Kubernetes" program (extracted, so the README cannot drift) type-checks under a
// strict tsconfig with "bpfnet" and "bpfnet/kubernetes" resolved to this checkout's entry points,
// exactly as the package's exports map them. The same component runs against a real API server
// in kubernetesNetwork.test.ts.
import { readmeProgram, typeCheckInRepo } from "../library/support/userProject";

jest.setTimeout(180_000);

test("the README's Kubernetes program type-checks against the package's two entry points", () => {
  const program = readmeProgram("On Kubernetes");
  expect(program).toContain('from "bpfnet/kubernetes"');
  expect(typeCheckInRepo(program, { bpfnet: ["./index.ts"], "bpfnet/kubernetes": ["./kubernetes.ts"] })).toEqual({ output: "", status: 0 });
});
