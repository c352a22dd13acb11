// Migration of pinned maps whose size the network's spec changed (provider/network/mapSizes.ts).
// libbpf cannot reuse a pinned map of another max_entries, so before the objects load the agent
// reads such a map's entries, removes its pin (the programs still attached keep the old map
// alive until the new ones replace them), and after the load writes the entries into the map
// the load created. These maps (tunnel, peers, routes, ipcache) hold only what the agent derives
// from etcd and the old agent has stopped, so the copy is complete; if the load fails after the
// unpin, the next start creates the maps and the reconcilers refill them from etcd.
import * as fs from "fs";
import { join } from "path";
import { BpfMap } from "../../bpf";

/** One resized map's entries, held between the unpin and the load. */
export interface PendingResize {
  mapName: string;
  fromEntries: number;
  toEntries: number;
  entries: [Buffer, Buffer][];
}

/** Reads and unpins every map of `asked` pinned with another size; copyResized() after the load finishes the migration. */
export function unpinResized(pinRoot: string, asked: Record<string, number>): PendingResize[] {
  const pending: PendingResize[] = [];
  for (const [mapName, toEntries] of Object.entries(asked)) {
    const pin = join(pinRoot, mapName);
    if (!fs.existsSync(pin)) continue;
    const map = BpfMap.open(pin);
    try {
      const fromEntries = map.info.maxEntries;
      if (fromEntries === toEntries) continue;
      const entries: [Buffer, Buffer][] = [];
      for (const key of map.keys()) {
        const value = map.lookup(key);
        if (value) entries.push([key, value]);
      }
      if (entries.length > toEntries) {
        throw new Error(`map ${mapName} (${pin}) holds ${entries.length} entries, more than its new size ${toEntries}: not resized (raise the network's agents.maxHosts / agents.maxEndpointsPerHost)`);
      }
      pending.push({ mapName, fromEntries, toEntries, entries });
    } finally {
      map.close();
    }
  }
  // Unpinned only once every map was read: a refusal above leaves all pins as they were.
  for (const p of pending) fs.unlinkSync(join(pinRoot, p.mapName));
  return pending;
}

/** Writes the held entries into the maps the load pinned anew. */
export function copyResized(pinRoot: string, pending: PendingResize[]): void {
  for (const p of pending) {
    const map = BpfMap.open(join(pinRoot, p.mapName));
    try {
      for (const [key, value] of p.entries) map.update(key, value);
    } finally {
      map.close();
    }
  }
}
