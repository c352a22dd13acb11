// The Pulumi toolchain for tests: the CLI from .tools/bin (built by scripts/setup, never downloaded),
// the file backend of this checkout, and stacks of the root project through the Automation API.
import * as path from "path";
import { LocalWorkspace, PulumiCommand, Stack } from "@pulumi/pulumi/automation";

export const REPO = path.resolve(__dirname, "..", "..");
export const TOOLS = path.join(REPO, ".tools");

/** The same environment as scripts/env.sh. */
export function pulumiEnv(): Record<string, string> {
  return {
    PATH: `${path.join(TOOLS, "bin")}:${process.env.PATH ?? ""}`,
    PULUMI_BACKEND_URL: `file://${path.join(REPO, ".pulumi-state")}`,
    PULUMI_CONFIG_PASSPHRASE: "bpfnet-lab-only",
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
    PULUMI_HOME: path.join(TOOLS, "pulumi-home"),
  };
}

/** A fresh stack of the root project (REPO) with the given config; `env` overrides pulumiEnv() (e.g. a backend of its own). */
export async function rootProjectStack(stackName: string, config: Record<string, string>, env: Record<string, string> = {}): Promise<Stack> {
  const pulumiCommand = await PulumiCommand.get({ root: TOOLS });
  const stack = await LocalWorkspace.createOrSelectStack({ stackName, workDir: REPO }, { pulumiCommand, envVars: { ...pulumiEnv(), ...env } });
  for (const [k, v] of Object.entries(config)) await stack.setConfig(k, { value: v });
  return stack;
}

/** Destroys and removes a stack (and its Pulumi.<stack>.yaml), ignoring a stack already gone.
 *  Asks for this stack alone: `stack ls` reads every stack's checkpoint in the shared backend and
 *  fails with "EOF" when another suite is writing one at that moment. */
export async function removeStack(stack: Stack): Promise<void> {
  try {
    await stack.workspace.selectStack(stack.name);
  } catch (err) {
    if (/no stack named/.test(String(err))) return;
    throw err;
  }
  try {
    await stack.destroy();
  } finally {
    await stack.workspace.removeStack(stack.name);
  }
}
