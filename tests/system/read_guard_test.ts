import assert from "node:assert/strict";
import { BlockedReadError } from "../../src/system/file_system.ts";
import { DeadlineError, ReadGuard } from "../../src/system/read_guard.ts";

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
