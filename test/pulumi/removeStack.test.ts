// removeStack asks the backend for its own stack only: a partly written checkpoint of another
// suite's stack (the shared file backend, suites in parallel) made `stack ls` fail with "EOF".
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { removeStack, rootProjectStack } from "../support/pulumi";

jest.setTimeout(120_000);

describe("removeStack beside another stack's half-written checkpoint", () => {
  const backend = fs.mkdtempSync(path.join(os.tmpdir(), "bpfnet-backend-"));
  const env = { PULUMI_BACKEND_URL: `file://${backend}` };
  const name = `ci-rm-${process.pid}`;

  afterAll(() => {
    fs.rmSync(backend, { recursive: true, force: true });
    fs.rmSync(path.join(__dirname, "..", "..", `Pulumi.${name}.yaml`), { force: true });
  });

  test("removes its stack while listing every stack fails, and a second call finds it gone", async () => {
    const stack = await rootProjectStack(name, { "bpfnet:inventory": "/nonexistent/inventory.json", "bpfnet:agents": "false" }, env);
    const stacksDir = path.join(backend, ".pulumi", "stacks", "bpfnet");
    fs.writeFileSync(path.join(stacksDir, "being-written.json"), "");
    await expect(stack.workspace.listStacks()).rejects.toThrow(/end of JSON input|EOF/);

    await removeStack(stack);
    expect(fs.existsSync(path.join(stacksDir, `${name}.json`))).toBe(false);
    await expect(removeStack(stack)).resolves.toBeUndefined();
  });
});
