// Which Node.js and @pulumi/pulumi versions bpfnet supports, checked when the package is
// loaded: an unsupported runtime fails with one clear line instead of an obscure error deep in
// a provider. The range is the one the new-user test (test/library/) installs and runs.
/** Oldest supported Node.js major (the program's Node.js; hosts check their own in NodeAgent). */
export const MIN_NODE_MAJOR = 20;
/** Supported @pulumi/pulumi: 3.x from this version up (the peerDependency range says the same). */
export const MIN_PULUMI_VERSION = "3.248.0";
/** The @pulumi/pulumi versions bpfnet supports, as an npm range (package.json's peerDependencies). */
export const PULUMI_PEER_RANGE = `>=${MIN_PULUMI_VERSION} <4`;

const parts = (v: string) => /^v?(\d+)\.(\d+)\.(\d+)/.exec(v)?.slice(1).map(Number);

/** Problems with a runtime, or [] when it is supported. Pure: versions in, messages out. */
export function compatibilityProblems(nodeVersion: string, pulumiVersion: string | undefined): string[] {
  const problems: string[] = [];
  const node = parts(nodeVersion);
  if (!node || node[0] < MIN_NODE_MAJOR) problems.push(`bpfnet needs Node.js >= ${MIN_NODE_MAJOR}, this program runs on ${nodeVersion}`);
  const pulumi = pulumiVersion === undefined ? undefined : parts(pulumiVersion);
  const min = parts(MIN_PULUMI_VERSION)!;
  const below = pulumi && (pulumi[0] < min[0] || (pulumi[0] === min[0] && (pulumi[1] < min[1] || (pulumi[1] === min[1] && pulumi[2] < min[2]))));
  if (!pulumi || pulumi[0] !== 3 || below) {
    problems.push(`bpfnet needs @pulumi/pulumi ${PULUMI_PEER_RANGE}, this program has ${pulumiVersion ?? "none"} (npm install @pulumi/pulumi@^3)`);
  }
  return problems;
}

/** The @pulumi/pulumi this program resolves (the user's own, a peer dependency). */
function installedPulumiVersion(): string | undefined {
  try {
    return (require("@pulumi/pulumi/version") as { version: string }).version;
  } catch {
    return undefined;
  }
}

/** Throws one message listing every problem with this runtime. */
export function assertCompatibleRuntime(): void {
  const problems = compatibilityProblems(process.version, installedPulumiVersion());
  if (problems.length) throw new Error(problems.join("; "));
}
