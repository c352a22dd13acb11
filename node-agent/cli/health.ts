// `bpfnet health`: one line on the deployment's state, for the demo and for operators.
import { readInventory, sshConnectionFor } from "../../lab/inventory";
import { withSsh } from "../../provider/ssh";

export async function healthCommand(flags: Map<string, string>): Promise<number> {
  const inventoryFile = flags.get("inventory") ?? "/run/bpfnet/lab/bpfnet/inventory.json";
  const inv = readInventory(inventoryFile);
  const results = await Promise.all(
    inv.hosts.map(async (h) => {
      try {
        await withSsh(sshConnectionFor(h.ssh), (s) => s.run("true"));
        return { host: h.name, ok: true, detail: "" };
      } catch (e) {
        return { host: h.name, ok: false, detail: (e as Error).message };
      }
    }),
  );
  const ok = results.filter((r) => r.ok).length;
  console.log(`health: ${ok}/${results.length} hosts reachable over SSH with verified host keys`);
  for (const r of results.filter((r) => !r.ok)) console.log(`  ${r.host}: ${r.detail}`);
  return ok === results.length ? 0 : 1;
}
