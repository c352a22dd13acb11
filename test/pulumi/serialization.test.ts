// The dynamic-provider host loads providers from the text that serializeFunction writes into
// state; this proves ours survive that trip and run (read, delete) in a fresh process.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { execFileSync } from "child_process";
import * as pulumi from "@pulumi/pulumi";
import { sshConnectionFor } from "../../lab/inventory";
import { endpointOf, keysOf } from "../../provider/host/sshConnection";
import { hostProbeProvider } from "../../provider/host/hostProbe";
import { startTestLab, TestLab } from "../support/lab";
import { REPO } from "../support/pulumi";

/** Serializes a provider like Pulumi does, then runs `call` against it in a new node process. */
async function runSerialized(provider: object, call: string, input: unknown): Promise<unknown> {
  const sf = await pulumi.runtime.serializeFunction(() => provider, { allowSecrets: true });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bpfnet-ser-"));
  try {
    fs.writeFileSync(path.join(dir, "provider.js"), sf.text);
    const driver = `
      const provider = require("./provider.js").${sf.exportName}();
      provider.${call}(...JSON.parse(process.argv[2])).then(
        (r) => { process.stdout.write(JSON.stringify(r ?? null)); },
        (e) => { console.error(e.message); process.exit(1); });`;
    fs.writeFileSync(path.join(dir, "driver.js"), driver);
    // Modules under node_modules are required by name, as in the provider host started from the project.
    const out = execFileSync("node", [path.join(dir, "driver.js"), JSON.stringify(input)], {
      env: { ...process.env, NODE_PATH: path.join(REPO, "node_modules") },
      encoding: "utf8",
    });
    return JSON.parse(out);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe("provider serialization", () => {
  let lab: TestLab;
  beforeAll(async () => {
    lab = await startTestLab("tser", 226, "vxlan", 1);
  });
  afterAll(() => lab?.down());

  test("HostProbe's serialized provider reads a host and deletes from a fresh process", async () => {
    const conn = sshConnectionFor(lab.inventory.hosts[0].ssh);
    const props = { connection: endpointOf(conn), privateKeys: keysOf(conn), hostname: "", kernelVersion: "old", os: "" };
    const read = (await runSerialized(hostProbeProvider, "read", ["id-1", props])) as { id: string; props: { kernelVersion: string } };
    expect(read.id).toBe("id-1");
    expect(read.props.kernelVersion).toBe(os.release());
    await expect(runSerialized(hostProbeProvider, "delete", ["id-1", props])).resolves.toBeNull();
  });

  test("the serialized text carries no captured key material", async () => {
    const sf = await pulumi.runtime.serializeFunction(() => hostProbeProvider, { allowSecrets: false });
    expect(sf.text).not.toMatch(/PRIVATE KEY/);
    expect(sf.containsSecrets).toBe(false);
  });
});
