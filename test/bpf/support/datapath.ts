// The datapath for BPF_PROG_TEST_RUN tests: the three objects and their maps in a private
// bpffs, plus the test build of bpf_overlay (tunnel metadata from skb->cb) on the same maps.
import { join } from "path";
import { BpfObject, DatapathMaps, DatapathObjects, defaultObjectDir, loadDatapathObjects, openDatapathMaps } from "../../../bpf";
import { mountTempBpffs, TempBpffs } from "./bpffs";
import { ensureBuilt } from "./build";

export interface TestDatapath {
  bpffs: TempBpffs;
  dp: DatapathObjects;
  maps: DatapathMaps;
  /** bpf_overlay built with -DBPFNET_TEST_TUNNEL_FROM_CB, sharing the pinned maps. */
  overlayTest: BpfObject;
  /** Closes everything and unmounts the bpffs (for afterAll). */
  close(): void;
}

export function loadTestDatapath(): TestDatapath {
  ensureBuilt();
  const bpffs = mountTempBpffs();
  const opened: { close(): void }[] = [];
  try {
    const dp = loadDatapathObjects(bpffs.dir);
    opened.push(dp);
    const maps = openDatapathMaps(bpffs.dir);
    opened.push(maps);
    const overlayTest = BpfObject.load(join(defaultObjectDir(), "test", "bpf_overlay.o"), { pinRoot: bpffs.dir });
    opened.push(overlayTest);
    const close = () => {
      for (const o of opened.reverse()) o.close();
      bpffs.cleanup();
    };
    return { bpffs, dp, maps, overlayTest, close };
  } catch (err) {
    for (const o of opened.reverse()) o.close();
    bpffs.cleanup();
    throw err;
  }
}

/**
 * skb->cb for the test build of bpf_overlay: tunnel metadata as the VXLAN device would report
 * it (BPF_PROG_TEST_RUN cannot attach real metadata): [has metadata, remote IPv4 as u32, VNI].
 */
export function tunnelCb(remote: string, vni: number): number[] {
  return [1, remote.split(".").reduce((a, o) => a * 256 + Number(o), 0), vni];
}
