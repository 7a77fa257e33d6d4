import { deepStrictEqual, rejects, strictEqual } from "node:assert/strict";
import { SerialQueue } from "../../src/system/serial_queue.ts";

/** A task the test ends by hand, logging when it starts. */
function gated(
  log: string[],
  name: string,
): { task: () => Promise<string>; end: (fail?: boolean) => void } {
  let end: (fail?: boolean) => void = () => {};
  const task = () =>
    new Promise<string>((resolve, reject) => {
      log.push(`start ${name}`);
      end = (fail) => fail ? reject(new Error(name)) : resolve(name);
    });
  return { task, end: (fail) => end(fail) };
}

Deno.test("SerialQueue.run() starts each task when the one before it has settled", async (t) => {
  const cases: { what: string; firstFails: boolean }[] = [
    { what: "after a resolve", firstFails: false },
    { what: "after a reject (its failure is its caller's alone)", firstFails: true },
  ];
  for (const c of cases) {
    await t.step(c.what, async () => {
      const queue = new SerialQueue();
      const log: string[] = [];
      const a = gated(log, "a");
      const b = gated(log, "b");
      const first = queue.run(a.task);
      const second = queue.run(b.task);
      await Promise.resolve();
      await Promise.resolve();
      deepStrictEqual(log, ["start a"], "b waits");
      a.end(c.firstFails);
      if (c.firstFails) await rejects(first, /a/);
      else strictEqual(await first, "a");
      while (log.length < 2) await new Promise((resolve) => setTimeout(resolve, 1));
      deepStrictEqual(log, ["start a", "start b"]);
      b.end();
      strictEqual(await second, "b");
    });
  }
});
