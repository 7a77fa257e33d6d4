/**
 * Work that yields to the event loop takes turns: one slice per turn however many scrapes run, so
 * a health check waits for one slice, not one per scrape in flight (issue 14, defect 6).
 */

import assert from "node:assert/strict";
import { yieldToEventLoop } from "../../src/system/event_loop_slice.ts";

Deno.test("yieldToEventLoop() resumes one waiter per turn, with other tasks between them", async () => {
  const order: string[] = [];
  const waiters = ["a", "b", "c"].map(async (name) => {
    await yieldToEventLoop();
    order.push(name);
  });
  // Stands for a socket that became readable meanwhile: it must not wait for every waiter.
  const other = new Promise<void>((resolve) =>
    setTimeout(() => {
      order.push("other");
      resolve();
    }, 0)
  );
  await Promise.all([...waiters, other]);
  // Before: each waiter had a timer of its own, due before the other task's: a, b, c, other.
  assert.deepEqual(order, ["a", "other", "b", "c"]);
});

Deno.test("yieldToEventLoop() resumes waiters first come first served", async () => {
  const order: number[] = [];
  await Promise.all(
    Array.from({ length: 20 }, async (_, i) => {
      await yieldToEventLoop();
      order.push(i);
    }),
  );
  assert.deepEqual(order, Array.from({ length: 20 }, (_, i) => i));
});
