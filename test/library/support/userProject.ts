// What a new user does, for the library tests: the package packed by npm, a fresh program
// directory outside the repository with its own package.json, `npm install` of the tarball from
// the registry's point of view, and the real `pulumi` CLI run in that directory. Nothing here
// reaches into the repository's node_modules: the program resolves bpfnet, its dependencies and
// @pulumi/pulumi from its own.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { REPO, TOOLS } from "../../support/pulumi";

/** The repository's pinned @pulumi/pulumi, which the user's program pins too. */
export const PULUMI_VERSION: string = JSON.parse(fs.readFileSync(path.join(REPO, "package.json"), "utf8")).devDependencies["@pulumi/pulumi"];

export interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command, never through a shell; the output is kept for assertions and failure messages. */
export function run(cmd: string, args: string[], opts: { cwd: string; env: Record<string, string>; timeoutMs?: number }): RunResult {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, env: opts.env, encoding: "utf8", timeout: opts.timeoutMs ?? 600_000, maxBuffer: 64 << 20 });
  return { status: r.status, stdout: r.stdout ?? "", stderr: (r.stderr ?? "") + (r.error ? `\n${r.error.message}` : "") };
}

/** Throws with the command's output unless it exited 0. */
export function runOk(cmd: string, args: string[], opts: Parameters<typeof run>[2]): RunResult {
  const r = run(cmd, args, opts);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${r.status}\n${r.stdout.slice(-4000)}\n${r.stderr.slice(-4000)}`);
  return r;
}

/**
 * `npm pack` of this repository into `dir` (the package build itself is scripts/setup's, which
 * `npm test` runs first: packing skips the prepack rebuild). Returns the tarball's path.
 */
export function packPackage(dir: string): string {
  const r = runOk("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", dir], { cwd: REPO, env: process.env as Record<string, string> });
  const [info] = JSON.parse(r.stdout) as { filename: string }[];
  return path.join(dir, info.filename);
}

/** The files in a packed tarball, as npm lists them (package-relative paths). */
export function packedFiles(): { files: string[]; size: number } {
  const r = runOk("npm", ["pack", "--ignore-scripts", "--dry-run", "--json"], { cwd: REPO, env: process.env as Record<string, string> });
  const [info] = JSON.parse(r.stdout) as { files: { path: string }[]; size: number }[];
  return { files: info.files.map((f) => f.path).sort(), size: info.size };
}

/** The first ```ts block of README.md's section `heading`: the program users copy. */
export function readmeProgram(heading: string): string {
  const readme = fs.readFileSync(path.join(REPO, "README.md"), "utf8");
  const start = readme.indexOf(`\n## ${heading}\n`);
  if (start < 0) throw new Error(`README.md has no "## ${heading}" section`);
  const next = readme.indexOf("\n## ", start + 4);
  const section = readme.slice(start, next < 0 ? undefined : next);
  const m = /```ts\n([\s\S]*?)```/.exec(section);
  if (!m) throw new Error(`README.md's "${heading}" section has no ts block`);
  return m[1];
}

/**
 * Type-checks `program` (a README program) under a strict tsconfig, with module names resolved
 * to this checkout's files as the package's exports map them (e.g. { bpfnet: ["./index.ts"] }).
 * Returns tsc's combined output and exit status.
 */
export function typeCheckInRepo(program: string, paths: Record<string, string[]>): { output: string; status: number | null } {
  const dir = fs.mkdtempSync(path.join(REPO, "build", "readme-program-"));
  try {
    fs.writeFileSync(path.join(dir, "index.ts"), program);
    fs.writeFileSync(
      path.join(dir, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          strict: true, target: "ES2022", module: "commonjs", moduleResolution: "node", esModuleInterop: true, noEmit: true, skipLibCheck: true, types: ["node"],
          baseUrl: REPO, paths, typeRoots: [path.join(REPO, "node_modules", "@types")],
        },
        files: ["index.ts"],
      }),
    );
    const tsc = spawnSync(path.join(REPO, "node_modules", ".bin", "tsc"), ["-p", dir], { encoding: "utf8", cwd: dir });
    return { output: tsc.stdout + tsc.stderr, status: tsc.status };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export interface UserProject {
  dir: string;
  /** The environment the user's shell would have: PATH with pulumi, a file backend in `dir`. */
  env: Record<string, string>;
  pulumi(args: string[], timeoutMs?: number): RunResult;
  npx(args: string[], timeoutMs?: number): RunResult;
  /** Whether a stack may hold resources (set by stackUp, cleared by stackDestroy). */
  deployed: boolean;
  /** Destroys what is deployed, then removes the directory. */
  teardown(): void;
}

export interface UserProjectOptions {
  /** The program's @pulumi/pulumi (default: the repository's pinned version). */
  pulumiVersion?: string;
  /** Extra `npm install` arguments. */
  npmArgs?: string[];
}

/**
 * A fresh Pulumi TypeScript program under the OS temp dir (outside the repository): package.json
 * with @pulumi/pulumi pinned and bpfnet from `tarball`, a tsconfig like `pulumi new typescript`
 * writes, Pulumi.yaml and `program` as index.ts; `npm install` from the registry.
 */
export function createUserProject(name: string, tarball: string, program: string, options: UserProjectOptions = {}): UserProject {
  const project = scaffoldUserProject(name, tarball, program, options.pulumiVersion);
  runOk("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error", ...(options.npmArgs ?? [])], { cwd: project.dir, env: project.env });
  return project;
}

/** The program directory of createUserProject, before `npm install` (for installs expected to fail). */
export function scaffoldUserProject(name: string, tarball: string, program: string, pulumiVersion = PULUMI_VERSION): UserProject {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `bpfnet-${name}-`));
  if (path.relative(REPO, dir).split(path.sep)[0] !== "..") throw new Error(`${dir} is inside the repository`);
  const write = (file: string, text: string) => fs.writeFileSync(path.join(dir, file), text);
  write(
    "package.json",
    JSON.stringify(
      {
        name,
        version: "1.0.0",
        private: true,
        main: "index.ts",
        dependencies: { "@pulumi/pulumi": pulumiVersion, bpfnet: `file:${tarball}` },
        devDependencies: { typescript: "~5.9.3", "@types/node": "^20.17.0" },
      },
      null,
      2,
    ),
  );
  write("Pulumi.yaml", `name: ${name}\nruntime:\n  name: nodejs\n  options:\n    typescript: true\ndescription: a bpfnet network\n`);
  write(
    "tsconfig.json",
    JSON.stringify({ compilerOptions: { strict: true, outDir: "bin", target: "es2020", module: "commonjs", moduleResolution: "node", sourceMap: true, forceConsistentCasingInFileNames: true }, files: ["index.ts"] }, null, 2),
  );
  write("index.ts", program);

  // The CLI and language host this machine has (built by scripts/setup; nothing is downloaded),
  // and the dynamic-provider plugin of the program's own @pulumi/pulumi.
  const bin = path.join(dir, ".bin");
  fs.mkdirSync(bin);
  for (const tool of ["pulumi", "pulumi-language-nodejs"]) fs.symlinkSync(fs.realpathSync(path.join(TOOLS, "bin", tool)), path.join(bin, tool));
  fs.symlinkSync(path.join(dir, "node_modules", "@pulumi", "pulumi", "pulumi-resource-pulumi-nodejs"), path.join(bin, "pulumi-resource-pulumi-nodejs"));
  fs.mkdirSync(path.join(dir, ".state"));
  const env: Record<string, string> = {
    PATH: `${bin}:${path.dirname(process.execPath)}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
    HOME: process.env.HOME ?? "/root",
    PULUMI_BACKEND_URL: `file://${path.join(dir, ".state")}`,
    PULUMI_HOME: path.join(dir, ".pulumi-home"),
    PULUMI_CONFIG_PASSPHRASE: "bpfnet-lab-only",
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
  };
  const project: UserProject = {
    dir,
    env,
    deployed: false,
    pulumi: (args, timeoutMs) => run("pulumi", [...args, "--non-interactive"], { cwd: dir, env, timeoutMs }),
    npx: (args, timeoutMs) => run("npx", ["--no-install", ...args], { cwd: dir, env, timeoutMs }),
    teardown: () => {
      try {
        if (project.deployed) stackDestroy(project);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  };
  return project;
}

/**
 * What the README has the user type: `pulumi stack init dev`, the inventory in the stack's config,
 * `pulumi up`. Throws with the CLI's output unless the update created resources; returns the
 * stack's outputs. Marks the project deployed, so teardown destroys it.
 */
export function stackUp(p: UserProject, inventoryFile: string): Record<string, unknown> {
  runOk("pulumi", ["stack", "init", "dev", "--non-interactive"], { cwd: p.dir, env: p.env });
  runOk("pulumi", ["config", "set", "inventory", inventoryFile, "--non-interactive"], { cwd: p.dir, env: p.env });
  p.deployed = true;
  const up = runOk("pulumi", ["up", "--yes", "--skip-preview", "--non-interactive"], { cwd: p.dir, env: p.env });
  if (!/Resources:\s+\+ \d+ created/.test(up.stdout)) throw new Error(`pulumi up created nothing:\n${up.stdout}`);
  return stackOutputs(p);
}

/** `pulumi destroy`; throws with the output unless resources were deleted. */
export function stackDestroy(p: UserProject): void {
  const r = runOk("pulumi", ["destroy", "--yes", "--skip-preview", "--non-interactive"], { cwd: p.dir, env: p.env });
  if (!/\d+ deleted/.test(r.stdout)) throw new Error(`pulumi destroy deleted nothing:\n${r.stdout}`);
  p.deployed = false;
}

/** The two lines of `npx bpfnet health` that matter: agents ready, and the cross-host container ping. */
export function healthOf(p: UserProject, inventoryFile: string): { status: number | null; agents?: string; ping?: string } {
  const r = p.npx(["bpfnet", "health", "--inventory", inventoryFile]);
  return { status: r.status, agents: /\d+\/\d+ agents ready/.exec(r.stdout)?.[0], ping: /container on \S+ → container on .*/.exec(r.stdout)?.[0] ?? r.stdout + r.stderr };
}

/** `pulumi stack output --json` of the selected stack. */
export function stackOutputs(p: UserProject): Record<string, unknown> {
  const r = p.pulumi(["stack", "output", "--json", "--show-secrets"]);
  if (r.status !== 0) throw new Error(`pulumi stack output: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}
