/** Jest: TypeScript tests under test/, run against the real toolchain, etcd, netns and BPF. */
module.exports = {
  testEnvironment: "node",
  roots: ["<rootDir>/test"],
  testMatch: ["**/*.test.ts"],
  transform: { "^.+\\.ts$": ["ts-jest", { tsconfig: "tsconfig.json" }] },
  // Lab tests own network namespaces and ports: run files one at a time.
  maxWorkers: 1,
  testTimeout: 120000,
  reporters: ["default", "<rootDir>/test/support/summary-reporter.js"],
};
