import { StartClock } from "../../node-agent/daemon/startClock";

test("each mark closes the step since the previous one; boot and total count from the process's start", async () => {
  const clock = new StartClock();
  expect(clock.steps.boot).toBeGreaterThan(0); // this process has been running for a while
  const spin = (ms: number) => {
    const until = performance.now() + ms;
    while (performance.now() < until);
  };
  spin(20);
  clock.mark("first");
  clock.mark("second");
  expect(clock.steps.first).toBeGreaterThanOrEqual(20);
  expect(Object.keys(clock.steps)).toEqual(["boot", "first", "second"]);
  const sum = Object.values(clock.steps).reduce((a, b) => a + b, 0);
  expect(clock.total).toBeGreaterThanOrEqual(sum - 0.5); // rounding of each step
});
