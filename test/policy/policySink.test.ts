// The policy sink's ipcache against a real LPM trie (bpfnet_ipcache in a test bpffs): full passes
// read the map back (a previous agent's stale rows go, drift is repaired), incremental passes
// look at the touched rows only and compare with what the sink wrote — a lookup in an LPM trie
// answers the longest matching prefix, so a /32 under a CIDR rule must never be judged by it.
import { DatapathPolicySink } from "../../node-agent/daemon/policySink";
import { IpcacheRows } from "../../node-agent/policy/ipcache";
import { CIDR_IDENTITY_BASE } from "../../node-agent/policy/identity";
import { loadTestDatapath, TestDatapath } from "../bpf/support/datapath";

let t: TestDatapath | undefined;
afterAll(() => t?.close());

test("full and incremental ipcache passes leave exactly the claimed rows in the map", () => {
  t = loadTestDatapath();
  const { ipcache } = t.maps;
  ipcache.set("10.30.9.9/32", 999); // left by a previous agent, claimed by no one
  const rows = new IpcacheRows();
  const sink = new DatapathPolicySink(t.maps);
  const CIDR = CIDR_IDENTITY_BASE;
  const held = () => Object.fromEntries(ipcache.entries());
  const incremental = () => sink.apply(undefined, rows, rows.takeChanged());

  rows.setCidrIdentities(new Map([["0.0.0.0/0", CIDR]]));
  rows.setRecord("/p/endpoints/v1/h2/a", { ip: "10.30.2.5", identity: 300 }, 5);
  rows.takeChanged();
  sink.apply(undefined, rows, undefined); // the first pass: full
  expect(held()).toEqual({ "0.0.0.0/0": CIDR, "10.30.2.5/32": 300 });

  // An endpoint whose identity equals the rule's: a lookup would answer CIDR already; the row is written.
  rows.setRecord("/p/endpoints/v1/h2/b", { ip: "10.30.2.6", identity: CIDR }, 6);
  incremental();
  expect(held()).toEqual({ "0.0.0.0/0": CIDR, "10.30.2.5/32": 300, "10.30.2.6/32": CIDR });
  // Its record goes: the /32 alone is deleted, the rule stays (a lookup of the /32 would have found /0).
  rows.setRecord("/p/endpoints/v1/h2/b", undefined, 7);
  rows.setRecord("/p/endpoints/v1/h2/a", { ip: "10.30.2.5", identity: 301 }, 8);
  incremental();
  expect(held()).toEqual({ "0.0.0.0/0": CIDR, "10.30.2.5/32": 301 });
  expect(sink.stats.ipcacheDeleted).toBe(2); // the stale row at the full pass, the /32 now

  // Drift behind the sink's back: an incremental pass does not see it, the next full pass repairs it.
  ipcache.delete("10.30.2.5/32");
  ipcache.set("10.30.7.7/32", 5);
  incremental();
  expect(held()).toEqual({ "0.0.0.0/0": CIDR, "10.30.7.7/32": 5 });
  sink.apply(undefined, rows, undefined);
  expect(held()).toEqual({ "0.0.0.0/0": CIDR, "10.30.2.5/32": 301 });
});
