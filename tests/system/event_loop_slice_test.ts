/**
 * Work that yields to the event loop takes turns: one slice per turn however many scrapes run, so
 * a health check waits for one slice, not one per scrape in flight (issue 14, defect 6).
 */

import assert from "node:assert/strict";
import { beginSlice, sliceSpent, yieldToEventLoop } from "../../src/system/event_loop_slice.ts";

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

Deno.test("sliceSpent() is one clock for every stage: the next stage yields at once", async () => {
  await yieldToEventLoop(); // A slice of its own, begun now.
  let spins = 0;
  while (!sliceSpent()) spins++; // The first stage spends the slice.
  assert.ok(spins > 0);
  // A stage that began after it in the same turn (naming after listing, say) must not take a
  // slice of its own: before, each loop kept its own clock and held the loop for another.
  assert.equal(sliceSpent(), true);
  assert.equal(sliceSpent(1_000_000), false, "a longer slice is not spent yet");
});

Deno.test("beginSlice() starts a fresh slice after an idle spell, but not while others wait for a turn", async () => {
  await yieldToEventLoop();
  await new Promise((resolve) => setTimeout(resolve, 20)); // Idle: no turn was taken meanwhile.
  // The clock is from before the idle spell: a scrape starting now would yield at its first check.
  assert.equal(sliceSpent(10), true);
  beginSlice();
  assert.equal(sliceSpent(1_000_000), false, "a fresh slice");
  while (!sliceSpent(10)) {
    // Spend it.
  }
  // Another task is waiting for its turn: starting work does not take the slice from it.
  const waiter = yieldToEventLoop();
  beginSlice();
  assert.equal(sliceSpent(10), true);
  await waiter;
});
