// A stack's state as the backend stores it (`pulumi stack export` without --show-secrets: the
// Automation API's exportStack decrypts secrets, so its sizes are not the stored ones), and its
// bytes per resource type, with the parts that repeat per resource broken out.
import { execFile } from "child_process";
import { promisify } from "util";
import type { Stack } from "@pulumi/pulumi/automation";
import { pulumiEnv } from "./pulumi";

export interface StoredResource {
  type: string;
  inputs?: Record<string, unknown>;
  outputs?: Record<string, unknown>;
  [k: string]: unknown;
}

/** The stored state: its text (secrets as ciphertext) and its resources. */
export async function storedState(stack: Stack): Promise<{ text: string; resources: StoredResource[] }> {
  const { stdout } = await promisify(execFile)("pulumi", ["stack", "export", "--stack", stack.name], {
    cwd: stack.workspace.workDir,
    env: { ...process.env, ...pulumiEnv(), ...(stack.workspace as { envVars?: Record<string, string> }).envVars },
    maxBuffer: 1 << 30,
  });
  return { text: stdout, resources: (JSON.parse(stdout).deployment?.resources ?? []) as StoredResource[] };
}

/** Per type: count and mean bytes of one resource, and of its serialized provider and etcd/SSH credentials (inputs + outputs). */
export interface TypeSize {
  count: number;
  each: number;
  provider: number;
  credentials: number;
}

const size = (v: unknown) => (v === undefined ? 0 : JSON.stringify(v).length);
const CREDENTIALS = ["connection", "privateKeys"];

/** Bytes per resource type ("pulumi-nodejs:dynamic/" dropped), means over the resources of each type. */
export function sizeByType(resources: StoredResource[]): Record<string, TypeSize> {
  const types: Record<string, TypeSize> = {};
  for (const r of resources) {
    const t = (types[r.type.replace(/^pulumi-nodejs:dynamic\//, "")] ??= { count: 0, each: 0, provider: 0, credentials: 0 });
    t.count++;
    t.each += size(r);
    for (const part of [r.inputs, r.outputs]) {
      t.provider += size(part?.__provider);
      for (const k of CREDENTIALS) t.credentials += size(part?.[k]);
    }
  }
  for (const t of Object.values(types)) for (const k of ["each", "provider", "credentials"] as const) t[k] = Math.round(t[k] / t.count);
  return types;
}
