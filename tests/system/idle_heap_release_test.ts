import assert from "node:assert/strict";
import { exposedGc, IdleHeapRelease } from "../../src/system/idle_heap_release.ts";

/** A release whose timer and heap size the test drives. */
function driven(heap: { bytes: number }) {
  const log: string[] = [];
  let pending: { run: () => void; ms: number } | undefined;
  const release = new IdleHeapRelease({
    quietMs: 1000,
    collect: () => {
      log.push(`collect at ${heap.bytes}`);
      heap.bytes = heap.bytes / 4;
    },
    heapBytes: () => heap.bytes,
    schedule: (run, ms) => {
      pending = { run, ms };
      return () => (pending = undefined);
    },
  });
  const fire = () => {
    const timer = pending;
    pending = undefined;
    timer?.run();
  };
  return { release, log, fire, pending: () => pending };
}

Deno.test("IdleHeapRelease.around() collects once no scrape ran for the quiet time", async () => {
  const heap = { bytes: 100e6 };
  const { release, log, fire, pending } = driven(heap);
  assert.equal(await release.around(() => Promise.resolve(7)), 7);
  assert.equal(pending()?.ms, 1000);
  fire();
  assert.deepEqual(log, ["collect at 100000000"]);
});

Deno.test("IdleHeapRelease.around() does not collect while a scrape runs or once one started", async () => {
  const heap = { bytes: 100e6 };
  const { release, log, fire, pending } = driven(heap);
  let finish!: () => void;
  const slow = release.around(() => new Promise<void>((resolve) => (finish = resolve)));
  await release.around(() => Promise.resolve());
  assert.equal(pending(), undefined, "a scrape still runs: nothing scheduled");
  finish();
  await slow;
  assert.ok(pending() !== undefined);
  const next = release.around(() => Promise.resolve());
  assert.equal(pending(), undefined, "a new scrape cancels the collection");
  await next;
  fire();
  assert.equal(log.length, 1);
});

Deno.test("IdleHeapRelease.around() collects again only when the heap doubled since", async () => {
  const heap = { bytes: 100e6 };
  const { release, log, fire } = driven(heap);
  await release.around(() => Promise.resolve());
  fire(); // 100 MB collected to 25 MB.
  heap.bytes = 40e6;
  await release.around(() => Promise.resolve());
  fire();
  heap.bytes = 60e6;
  await release.around(() => Promise.resolve());
  fire();
  assert.deepEqual(log, ["collect at 100000000", "collect at 60000000"]);
});

Deno.test("IdleHeapRelease.around() schedules nothing without a collector, and passes errors", async () => {
  let scheduled = 0;
  const release = new IdleHeapRelease({
    quietMs: 1,
    collect: undefined,
    schedule: () => (scheduled++, () => {}),
  });
  await assert.rejects(release.around(() => Promise.reject(new Error("scrape failed"))), {
    message: "scrape failed",
  });
  assert.equal(scheduled, 0);
});

Deno.test("exposedGc() gives Deno's collector, which releases a dropped heap", async () => {
  const gc = await exposedGc();
  assert.ok(gc !== undefined, "Deno allows --expose-gc at run time");
  let garbage: number[][] | undefined = Array.from({ length: 200_000 }, (_, i) => [i]);
  const before = Deno.memoryUsage().heapUsed;
  garbage = undefined;
  gc();
  assert.equal(garbage, undefined);
  assert.ok(Deno.memoryUsage().heapUsed < before);
});
