// The drivers without a router: the commands they send, how they read the router's answers, and
// the batch script that carries many commands in one exec (run here through a local sh).
import { spawnSync } from "child_process";
import type { CommandResult, RouterShell } from "../../provider/router/drivers/driver";
import { frrDriver, parseStaticRoutes } from "../../provider/router/drivers/frr";
import { routerDriver, routerDriverNames } from "../../provider/router/drivers";
import { linuxDriver, normalDst, observedRoutes } from "../../provider/router/drivers/linux";
import { batchScript, parseBatchOutput, shellQuote } from "../../provider/router/drivers/shell";

/** Runs a batch the way the channel does, on this machine's sh. */
function runLocally(commands: string[]): CommandResult[] {
  const nonce = "t3st";
  const r = spawnSync("sh", ["-s"], { input: batchScript(commands, nonce), encoding: "utf8" });
  return parseBatchOutput(commands, r.stdout, nonce);
}

/** A shell that records commands and answers from a script. */
function fakeShell(answer: (cmd: string) => Partial<CommandResult>): RouterShell & { seen: string[][] } {
  const seen: string[][] = [];
  return {
    seen,
    async run(commands) {
      seen.push(commands);
      return commands.map((command) => ({ command, code: 0, output: "", ...answer(command) }));
    },
  };
}

describe("batch script", () => {
  test("each command reports its own output and exit code, in order", () => {
    const results = runLocally(["echo one", "echo two >&2; exit 3", "true", "printf 'a\\nb'", "false | true"]);
    expect(results.map((r) => [r.code, r.output])).toEqual([
      [0, "one"],
      [3, "two"],
      [0, ""],
      [0, "a\nb"],
      [0, ""],
    ]);
  });

  test("quoting survives the trip", () => {
    const word = `it's "quoted" $HOME; \`x\``;
    expect(runLocally([`printf %s ${shellQuote(word)}`])[0].output).toBe(word);
  });

  test("output that imitates a marker cannot forge a result; missing markers mean the connection dropped", () => {
    const forged = runLocally(["echo '@@bpfnet-fake 1 0'", "exit 4"]);
    expect(forged.map((r) => r.code)).toEqual([0, 4]);
    const cut = parseBatchOutput(["a", "b"], "out a\n@@bpfnet-n 0 0\npartial", "n");
    expect(cut).toEqual([
      { command: "a", code: 0, output: "out a" },
      { command: "b", code: -1, output: "partial" },
    ]);
  });
});

describe("linux driver", () => {
  const d = linuxDriver({ driver: "linux" });

  test("routes are installed with bpfnet's protocol in the chosen table", async () => {
    const shell = fakeShell(() => ({}));
    await d.ensure(shell, [{ prefix: "10.244.1.0/24", nextHop: "10.0.1.5" }]);
    expect(shell.seen).toEqual([["ip route replace 10.244.1.0/24 via 10.0.1.5 proto 178 table main"]]);
    expect(linuxDriver({ driver: "linux", table: 100, protocol: "bpfnet" }).describe("ensure", { prefix: "10.1.0.0/16", nextHop: "10.0.0.9" })).toBe(
      "ip route replace 10.1.0.0/16 via 10.0.0.9 proto bpfnet table 100",
    );
  });

  test("ownership comes from the kernel's own protocol filter; a batch of reads is one ip process", async () => {
    const all = JSON.stringify([
      { dst: "10.244.1.0/24", gateway: "10.0.1.5", dev: "eth1", protocol: "178", flags: [] },
      { dst: "10.244.1.0/24", gateway: "10.0.7.7", dev: "eth1", protocol: "boot", metric: 100, flags: [] },
    ]);
    const ours = JSON.stringify([{ dst: "10.244.1.0/24", gateway: "10.0.1.5", dev: "eth1", flags: [] }]);
    const shell = fakeShell(() => ({ output: [all, ours, "[]", "[]"].join("\n") }));
    const [routes, none] = await d.read(shell, ["10.244.1.0/24", "10.9.0.0/24"]);
    expect(shell.seen).toEqual([
      [
        "ip -j -batch - <<'BPFNET_EOF'\nroute show table main 10.244.1.0/24\nroute show table main proto 178 10.244.1.0/24\n" +
          "route show table main 10.9.0.0/24\nroute show table main proto 178 10.9.0.0/24\nBPFNET_EOF",
      ],
    ]);
    expect(none).toEqual([]);
    expect(routes.map((r) => [r.nextHop, r.owned, r.description])).toEqual([
      ["10.0.1.5", true, "10.244.1.0/24 via 10.0.1.5 dev eth1 proto 178 metric 0"],
      ["10.0.7.7", false, "10.244.1.0/24 via 10.0.7.7 dev eth1 proto boot metric 100"],
    ]);
    // Removal matches exactly that route: protocol and metric included.
    expect(d.describe("remove", routes[1])).toBe("ip route del 10.244.1.0/24 via 10.0.7.7 proto boot metric 100 table main");
  });

  test("a failed or short read names the command", async () => {
    const broken = fakeShell(() => ({ code: 255, output: 'Error: argument "x" is wrong: table id value is invalid' }));
    await expect(d.read(broken, ["10.1.0.0/24"])).rejects.toThrow("`ip -j -batch - (route show table main [proto 178] 10.1.0.0/24)` exited 255: Error: argument");
    const short = fakeShell(() => ({ output: "[]" }));
    await expect(d.read(short, ["10.1.0.0/24"])).rejects.toThrow(/printed 1 answers for 2 questions/);
  });

  test("the heredoc batch really runs through sh (here against this machine's own table)", async () => {
    const local: RouterShell = { run: async (commands) => runLocally(commands) };
    const prefix = "127.0.0.0/8";
    const direct = JSON.parse(spawnSync("ip", ["-j", "route", "show", "table", "local", prefix], { encoding: "utf8" }).stdout);
    const [routes] = await linuxDriver({ driver: "linux", table: "local" }).read(local, [prefix]);
    expect(routes.map((r) => r.description)).toEqual(direct.map((r: { type: string; dev: string }) => `${r.type} ${prefix} dev ${r.dev} proto kernel metric 0`));
    expect(routes.every((r) => !r.owned)).toBe(true);
  });

  test("removing a route that is already gone is fine; other failures name the command", async () => {
    const r = { prefix: "10.1.0.0/24", nextHop: "10.0.0.1", owned: true, description: "", identity: { metric: 0, protocol: "178", gateway: "10.0.0.1" } };
    const gone = fakeShell(() => ({ code: 2, output: "RTNETLINK answers: No such process" }));
    expect(await d.remove(gone, [r])).toEqual([undefined]);
    const denied = fakeShell(() => ({ code: 2, output: "RTNETLINK answers: Operation not permitted" }));
    expect(await d.remove(denied, [r])).toEqual(["`ip route del 10.1.0.0/24 via 10.0.0.1 proto 178 metric 0 table main` exited 2: RTNETLINK answers: Operation not permitted"]);
  });

  test("ip's spellings of prefixes", () => {
    expect(normalDst("default")).toBe("0.0.0.0/0");
    expect(normalDst("10.0.0.5")).toBe("10.0.0.5/32");
    const multipath = observedRoutes("10.3.0.0/24", [{ dst: "10.3.0.0/24", nexthops: [{ gateway: "10.0.0.1" }, { gateway: "10.0.0.2" }], protocol: "static" }], []);
    expect(multipath[0]).toMatchObject({ nextHop: "10.0.0.1", owned: false, description: "10.3.0.0/24 nexthop via 10.0.0.1 nexthop via 10.0.0.2 proto static metric 0" });
  });
});

describe("frr driver", () => {
  const args = ["--vty_socket", "/run/lab/frr"];
  const d = frrDriver({ driver: "frr", vtyshArgs: args });

  test("a batch is one vtysh call with a configure line per route", async () => {
    const shell = fakeShell(() => ({}));
    expect(await d.ensure(shell, [{ prefix: "10.1.0.0/24", nextHop: "10.0.0.1" }, { prefix: "10.2.0.0/24", nextHop: "10.0.0.2" }])).toEqual([undefined, undefined]);
    expect(shell.seen).toEqual([
      ["vtysh --vty_socket /run/lab/frr -c 'configure terminal' -c 'ip route 10.1.0.0/24 10.0.0.1 tag 178' -c 'ip route 10.2.0.0/24 10.0.0.2 tag 178'"],
    ]);
  });

  test("when vtysh stops at a failing line, each route is retried alone to find the culprit", async () => {
    const shell = fakeShell((cmd) => (cmd.includes("10.2.0.0") ? { code: 1, output: "% Unknown command: ip route 10.2.0.0/24 …" } : {}));
    const errors = await d.ensure(shell, [{ prefix: "10.1.0.0/24", nextHop: "10.0.0.1" }, { prefix: "10.2.0.0/24", nextHop: "10.0.0.2" }]);
    expect(errors[0]).toBeUndefined();
    expect(errors[1]).toBe("`vtysh --vty_socket /run/lab/frr -c 'configure terminal' -c 'ip route 10.2.0.0/24 10.0.0.2 tag 178'` exited 1: % Unknown command: ip route 10.2.0.0/24 …");
    expect(shell.seen).toHaveLength(2);
  });

  test("writeStartupConfig adds one write memory per batch, and its failure is reported", async () => {
    const saving = frrDriver({ driver: "frr", writeStartupConfig: true });
    const shell = fakeShell((cmd) => (cmd.includes("write memory") ? { code: 1, output: "cannot write" } : {}));
    const errors = await saving.ensure(shell, [{ prefix: "10.1.0.0/24", nextHop: "10.0.0.1" }]);
    expect(shell.seen[1]).toEqual(["vtysh -c 'write memory'"]);
    expect(errors[0]).toBe("the route is in the running config, but `vtysh -c 'write memory'` exited 1: cannot write");
  });

  test("reads static routes of the default VRF from the running config; the tag marks ours", () => {
    const config = [
      "frr version 8.4.4",
      "ip route 10.1.0.0/24 10.0.0.1 tag 178",
      "ip route 10.2.0.0/24 10.0.0.2",
      "ip route 10.3.0.0/24 10.0.0.3 eth1 tag 178 5",
      "ip route 10.4.0.0/24 10.0.0.4 table 100",
      "vrf red",
      " ip route 10.1.0.0/24 10.9.9.9 tag 178",
      "exit-vrf",
    ].join("\n");
    expect(parseStaticRoutes(config, 178).map((r) => [r.prefix, r.nextHop, r.owned])).toEqual([
      ["10.1.0.0/24", "10.0.0.1", true],
      ["10.2.0.0/24", "10.0.0.2", false],
      ["10.3.0.0/24", "10.0.0.3", true],
    ]);
    // Removal repeats the route's own line, so distance and interface match.
    const [, , third] = parseStaticRoutes(config, 178);
    expect(d.describe("remove", third)).toBe("vtysh --vty_socket /run/lab/frr -c 'configure terminal' -c 'no ip route 10.3.0.0/24 10.0.0.3 eth1 tag 178 5'");
  });
});

test("drivers are found by name; an unknown one is a clear error", () => {
  expect(routerDriverNames()).toEqual(["linux", "frr"]);
  expect(routerDriver({ driver: "frr" }).kind).toBe("frr");
  expect(() => routerDriver({ driver: "bgp" })).toThrow('router.driver must be one of "linux", "frr", got "bgp"');
});
