import { execFileSync } from "child_process";
import { existsSync, writeFileSync } from "fs";
import { join } from "path";

/** Compiles into dir an object whose one program (reads_past_the_end) the verifier rejects; returns its path. */
export function compileRejectedProgram(dir: string): string {
  const source = join(dir, "bad.c");
  writeFileSync(
    source,
    [
      "#include <linux/bpf.h>",
      "#include <bpf/bpf_helpers.h>",
      'SEC("tc") int reads_past_the_end(struct __sk_buff *skb) {',
      "  unsigned char *data = (unsigned char *)(long)skb->data;",
      "  return data[100]; /* no bounds check against data_end */",
      "}",
      'char _license[] SEC("license") = "Apache-2.0";',
    ].join("\n"),
  );
  const object = join(dir, "bad.o");
  const clang = existsSync("/usr/bin/clang") ? "clang" : "clang-14";
  execFileSync(clang, ["-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu", "-c", source, "-o", object]);
  return object;
}
