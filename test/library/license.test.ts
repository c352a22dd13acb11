// The licensing of the package: the eBPF programs under bpf/ are GPL-2.0-only OR BSD-2-Clause
// (so the kernel lets them call GPL-only helpers such as bpf_fib_lookup), everything else
// Apache-2.0. Every BPF source says so, every compiled program declares "Dual BSD/GPL", and the
// npm tarball carries the texts, the statement and the programs' sources.
import * as fs from "fs";
import * as path from "path";
import { REPO } from "../support/pulumi";
import { packedFiles } from "./support/userProject";

const BPF_SPDX = "SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause";
const bpfSources = [
  ...fs.readdirSync(path.join(REPO, "bpf")).filter((f) => f.endsWith(".c")).map((f) => `bpf/${f}`),
  ...fs.readdirSync(path.join(REPO, "bpf", "lib")).filter((f) => f.endsWith(".h")).map((f) => `bpf/lib/${f}`),
];
const read = (f: string) => fs.readFileSync(path.join(REPO, f), "utf8");

test("every BPF C source and header starts with the dual-license SPDX line; the Makefile too", () => {
  expect(bpfSources.length).toBeGreaterThan(15);
  expect(bpfSources.filter((f) => read(f).split("\n")[0] !== `/* ${BPF_SPDX} */`)).toEqual([]);
  expect(read("bpf/Makefile").split("\n")[0]).toBe(`# ${BPF_SPDX}`);
});

test("every program declares the GPL-compatible license the kernel checks, in source and in the built object", () => {
  const programs = bpfSources.filter((f) => f.endsWith(".c"));
  for (const f of programs) expect(read(f)).toContain('char _license[] SEC("license") = "Dual BSD/GPL";');
  // The "license" ELF section of each object holds exactly that string (NUL-terminated).
  for (const f of programs) {
    const obj = fs.readFileSync(path.join(REPO, "build", "bpf", path.basename(f).replace(/\.c$/, ".o")));
    expect(obj.includes(Buffer.from("Dual BSD/GPL\0"))).toBe(true);
    expect(obj.includes(Buffer.from("Apache-2.0\0"))).toBe(false);
  }
});

test("package.json states both licenses; the tarball carries the texts, the statement and the programs' sources", () => {
  const pkg = JSON.parse(read("package.json")) as { license: string };
  expect(pkg.license).toBe("Apache-2.0 AND (GPL-2.0-only OR BSD-2-Clause)");
  for (const t of ["Apache-2.0", "GPL-2.0-only", "BSD-2-Clause"]) expect(fs.existsSync(path.join(REPO, "LICENSES", `${t}.txt`))).toBe(true);
  expect(read("LICENSES/GPL-2.0-only.txt")).toContain("GNU GENERAL PUBLIC LICENSE\n                       Version 2, June 1991");
  expect(read("bpf/LICENSE")).toContain(BPF_SPDX);
  const packed = new Set(packedFiles().files);
  for (const f of ["LICENSES/Apache-2.0.txt", "LICENSES/GPL-2.0-only.txt", "LICENSES/BSD-2-Clause.txt", "bpf/LICENSE", "bpf/Makefile", ...bpfSources]) {
    expect(packed).toContain(f);
  }
});
