/** Jest: TypeScript tests under test/, run against the real toolchain, etcd, netns and BPF. */
module.exports = {
  testEnvironment: "node",
  roots: ["<rootDir>/test"],
  testMatch: ["**/*.test.ts"],
  transform: { "^.+\\.ts$": ["ts-jest", { tsconfig: "tsconfig.json" }] },
  // Every lab test file takes its own lab name and /16 (test/support/lab.ts), etcd ports are
  // picked free, Pulumi stacks are per test: files run in parallel. scripts/test sets the count.
  maxWorkers: 1,
  testTimeout: 120000,
  reporters: ["default", "<rootDir>/test/support/summary-reporter.js"],
};
