// Teardown that keeps going: every step runs even when an earlier one throws, so one failure
// never leaves namespaces, processes or mounts behind.
export async function cleanupAll(steps: (() => unknown)[]): Promise<void> {
  for (const step of steps) {
    try {
      await step();
    } catch {
      /* keep cleaning */
    }
  }
}
