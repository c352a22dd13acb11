// README.md's "Services" program, appended to the "Using it from a Pulumi program" one it
// extends (both extracted, so the README cannot drift), type-checks under a strict tsconfig
// with "bpfnet" resolved to this checkout's entry point, as the package's exports map it.
import { readmeProgram, typeCheckInRepo } from "../library/support/userProject";

jest.setTimeout(180_000);

test("the README's Service program type-checks against the package's entry point", () => {
  const network = readmeProgram("Using it from a Pulumi program");
  const services = readmeProgram("Services");
  expect(network).toMatch(/serviceCidr: "10\.96\.0\.0\/16"/);
  expect(services).toMatch(/new Service\("api", \{\n\s+network: net,/);
  expect(typeCheckInRepo(`${network}\n${services}`, { bpfnet: ["./index.ts"] })).toEqual({ output: "", status: 0 });
});
