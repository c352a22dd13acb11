#!/usr/bin/env node
// Refuses the public lab passphrase for a stack whose inventory is not a lab's (scripts/env.sh
// runs this before every `pulumi` while that passphrase is in use). The stack is the one the
// command names (--stack/-s) or the selected one; its inventory is any `<project>:inventory`
// config value; a lab's inventory carries the marker `bpfnet lab up` writes: a non-empty "lab".
// Exit 0: go ahead; exit 1: refused, with the reason on stderr.
"use strict";
const fs = require("fs");
const path = require("path");
const { execFileSync } = require("child_process");

const args = process.argv.slice(2);
const flag = (...names) => {
  for (let i = 0; i < args.length; i++) {
    for (const n of names) {
      if (args[i] === n && i + 1 < args.length) return args[i + 1];
      if (args[i].startsWith(`${n}=`)) return args[i].slice(n.length + 1);
    }
  }
  return undefined;
};

// Commands that touch no stack's secrets, or pick the stack (the next command is judged).
const words = args.filter((a) => !a.startsWith("-"));
if (["version", "help", "login", "logout", "whoami", "about", "plugin"].includes(words[0])) process.exit(0);
if (words[0] === "stack" && ["init", "ls", "select", "rm"].includes(words[1])) process.exit(0);

const cwd = path.resolve(flag("--cwd", "-C") ?? ".");
if (!fs.existsSync(path.join(cwd, "Pulumi.yaml"))) process.exit(0); // not in a project: nothing to judge
let stack = flag("--stack", "-s");
if (!stack) {
  try {
    stack = execFileSync("pulumi", ["stack", "--show-name", "--non-interactive"], { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    process.exit(0); // no stack selected yet (stack init, ls, login): nothing to judge
  }
}
const stackFile = path.join(cwd, `Pulumi.${stack.split("/").pop()}.yaml`);
if (!fs.existsSync(stackFile)) process.exit(0);
// The inventory setting: a plain `<project>:inventory: <path>` line of the stack's config.
const m = /^\s+[A-Za-z0-9_-]+:inventory:\s*["']?([^"'\n]+?)["']?\s*$/m.exec(fs.readFileSync(stackFile, "utf8"));
if (!m) process.exit(0);
const inventory = m[1];
let lab;
try {
  lab = JSON.parse(fs.readFileSync(inventory, "utf8")).lab;
} catch {
  process.exit(0); // no readable inventory: the program cannot reach any host, so there is nothing to protect yet
}
if (typeof lab === "string" && lab !== "") process.exit(0);
process.stderr.write(
  `bpfnet: REFUSED: stack "${stack}" deploys onto inventory ${inventory}, which is not a lab's (no "lab" marker), ` +
    `and PULUMI_CONFIG_PASSPHRASE is the public lab-only passphrase. Anyone could decrypt this stack's secrets ` +
    `(SSH keys, etcd keys). Set your own: export PULUMI_CONFIG_PASSPHRASE=... (or PULUMI_CONFIG_PASSPHRASE_FILE) before sourcing scripts/env.sh.\n`,
);
process.exit(1);
