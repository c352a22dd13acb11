// Teardown that keeps going: every step runs even when an earlier one throws, so one failure
// never leaves namespaces, processes or mounts behind; the first error is thrown at the end.
export async function cleanupAll(steps: (() => unknown)[]): Promise<void> {
  const errors: unknown[] = [];
  for (const step of steps) {
    try {
      await step();
    } catch (err) {
      errors.push(err);
    }
  }
  if (errors.length) throw errors[0];
}
