import assert from "node:assert/strict";
import { BlockedReadError } from "../../src/system/file_system.ts";
import { DeadlineError, ReadGuard, untilAborted } from "../../src/system/read_guard.ts";

/** A read that returns when the test says. */
function pending(): {
  read: () => Promise<string>;
  finish: (text: string) => void;
  starts: number;
} {
  let finish: (text: string) => void = () => {};
  const promise = new Promise<string>((resolve) => finish = resolve);
  const handle = {
    starts: 0,
    read: () => {
      handle.starts++;
      return promise;
    },
    finish: (text: string) => finish(text),
  };
  return handle;
}

Deno.test("ReadGuard.read() stops waiting at the deadline and skips the path until the read returns", async () => {
  const guard = new ReadGuard();
  const slow = pending();
  const deadline = new AbortController();
  const first = guard.read("/x", slow.read, deadline.signal);
  deadline.abort();
  await assert.rejects(first, DeadlineError);
  assert.equal(guard.blocked, 1);
  await assert.rejects(guard.read("/x", slow.read, new AbortController().signal), BlockedReadError);
  assert.equal(slow.starts, 1);
  slow.finish("1\n");
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(guard.blocked, 0);
  assert.equal(
    await guard.read("/x", () => Promise.resolve("2\n"), new AbortController().signal),
    "2\n",
  );
});

Deno.test("ReadGuard.read() joins a read in flight that no scrape gave up on", async () => {
  const guard = new ReadGuard();
  const slow = pending();
  const open = new AbortController().signal;
  const a = guard.read("/x", slow.read, open);
  const b = guard.read("/x", slow.read, open);
  slow.finish("7\n");
  assert.deepEqual(await Promise.all([a, b]), ["7\n", "7\n"]);
  assert.equal(slow.starts, 1);
});

Deno.test("ReadGuard.read() skips every path once too many reads are blocked", async () => {
  const guard = new ReadGuard(2);
  const reads = [pending(), pending()];
  const deadline = new AbortController();
  const waits = reads.map((r, i) => guard.read(`/${i}`, r.read, deadline.signal));
  deadline.abort();
  for (const wait of waits) await assert.rejects(wait, DeadlineError);
  assert.equal(guard.blocked, 2);
  await assert.rejects(
    guard.read("/other", () => Promise.resolve(""), new AbortController().signal),
    BlockedReadError,
  );
  for (const r of reads) r.finish("");
});

Deno.test("untilAborted() adds one abort listener per signal however many reads wait on it", async () => {
  const controller = new AbortController();
  const { signal } = controller;
  let listeners = 0;
  const add = signal.addEventListener.bind(signal);
  signal.addEventListener = (...args: Parameters<typeof add>) => {
    listeners++;
    add(...args);
  };
  const never = new Promise<never>(() => {});
  // Before: one listener per wait, each added after a look through all the others, so 20,000
  // command-line reads of a first scrape held the event loop for seconds.
  const waits = Array.from({ length: 1000 }, () => untilAborted(never, signal));
  const done = untilAborted(Promise.resolve("read"), signal);
  assert.equal(await done, "read");
  assert.equal(listeners, 1);
  controller.abort();
  const outcomes = await Promise.allSettled(waits);
  assert.ok(outcomes.every((o) => o.status === "rejected" && o.reason instanceof DeadlineError));
});

Deno.test("ReadGuard.markBlocked() counts a read stuck elsewhere as blocked until it is released", async () => {
  const guard = new ReadGuard(2);
  const released = Promise.withResolvers<void>();
  assert.equal(guard.markBlocked("/x", released.promise), true);
  assert.equal(guard.blocked, 1);
  assert.equal(guard.markBlocked("/x", released.promise), false, "already blocked");
  assert.equal(guard.blocked, 1);
  let started = 0;
  const read = () => Promise.resolve(String(++started));
  await assert.rejects(guard.read("/x", read, new AbortController().signal), BlockedReadError);
  assert.equal(started, 0, "the blocked path is not read");
  released.resolve();
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(guard.blocked, 0);
  assert.equal(await guard.read("/x", read, new AbortController().signal), "1");
});

Deno.test("ReadGuard.markBlocked() counts nothing once too many reads are blocked", () => {
  const guard = new ReadGuard(1);
  const never = new Promise<void>(() => {});
  assert.equal(guard.markBlocked("/a", never), true);
  assert.equal(guard.markBlocked("/b", never), false);
  assert.equal(guard.blocked, 1);
});
