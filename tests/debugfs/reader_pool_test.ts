import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { ReaderPool } from "../../src/debugfs/reader_pool.ts";
import type { StatFilesResult } from "../../src/debugfs/reader_worker.ts";
import { blockedOnFifo, mkfifo, unblockFifo } from "../support/fifo.ts";
import { waitFor } from "../support/exporter_process.ts";

/** A dir of stat files `name` → content. */
async function statDir(files: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_reader_pool_" });
  for (const [name, text] of Object.entries(files)) {
    await Deno.writeTextFile(`${dir}/${name}`, text);
  }
  return dir;
}

/** Reads batches; returns the results in the order delivered, and the stuck reads. */
async function readAll(
  pool: ReaderPool,
  batches: { key: string; paths: readonly string[] }[],
  signal = new AbortController().signal,
) {
  const delivered: { batch: number; result: StatFilesResult }[] = [];
  const stuck = await pool.read(batches, {
    signal,
    onResult: (batch, result) => delivered.push({ batch, result }),
  });
  return { delivered, stuck };
}

Deno.test("ReaderPool.read() delivers each VM's values in batch order, fresh on every read", async () => {
  const dir = await statDir({ a: "1\n", b: "-2\n", c: "18446744073709551615\n", d: "x\n" });
  const pool = new ReaderPool({ size: 2, maxBytes: 4096 });
  try {
    const batches = [
      { key: "vm1", paths: [`${dir}/a`, `${dir}/b`] },
      { key: "vm2", paths: [`${dir}/c`, `${dir}/d`, `${dir}/gone`] },
      { key: "vm3", paths: [`${dir}/a`] },
    ];
    let { delivered, stuck } = await readAll(pool, batches);
    deepStrictEqual(stuck, []);
    deepStrictEqual(delivered.map((d) => d.batch), [0, 1, 2]);
    deepStrictEqual([...delivered[0]!.result.values], [1, -2]);
    const vm2 = delivered[1]!.result;
    ok(vm2.values.every(Number.isNaN));
    deepStrictEqual(vm2.side.slice(0, 2), [
      { index: 0, kind: "text", text: "18446744073709551615\n" },
      { index: 1, kind: "text", text: "x\n" },
    ]);
    strictEqual(vm2.side[2]?.kind === "error" && vm2.side[2].name, "NotFound");

    await Deno.writeTextFile(`${dir}/a`, "7\n");
    // vm1's list changes (a new array): sent again; vm3's is the same array.
    batches[0] = { key: "vm1", paths: [`${dir}/b`] };
    ({ delivered } = await readAll(pool, batches));
    deepStrictEqual([...delivered[0]!.result.values], [-2]);
    deepStrictEqual([...delivered[2]!.result.values], [7]);
  } finally {
    pool.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ReaderPool.read() gives up on a Worker stuck at the deadline, names the file, and refuses past its cap", async () => {
  const dir = await statDir({ a: "1\n" });
  const fifo = `${dir}/fifo`;
  await mkfifo(fifo);
  const pool = new ReaderPool({ size: 1, maxBytes: 4096, maxAbandoned: 1 });
  let released = false;
  try {
    const deadline = AbortSignal.timeout(300);
    const { delivered, stuck } = await readAll(pool, [
      { key: "vm1", paths: [`${dir}/a`] },
      { key: "vm2", paths: [`${dir}/a`, fifo] },
    ], deadline);
    deepStrictEqual(delivered.map((d) => d.batch), [0], "what was read before");
    deepStrictEqual(stuck?.map(({ batch, file }) => ({ batch, file })), [{ batch: 1, file: 1 }]);
    strictEqual(pool.abandoned, 1);
    strictEqual(pool.usable, false, "at its cap of abandoned Workers");
    deepStrictEqual(await readAll(pool, [{ key: "vm1", paths: [`${dir}/a`] }]), {
      delivered: [],
      stuck: undefined,
    });

    await unblockFifo(fifo);
    released = true;
    await stuck![0]!.released;
    strictEqual(pool.abandoned, 0);
    strictEqual(pool.usable, true);
    const again = await readAll(pool, [{ key: "vm1", paths: [`${dir}/a`] }]);
    deepStrictEqual([...again.delivered[0]!.result.values], [1], "a new Worker reads");
  } finally {
    if (!released) await unblockFifo(fifo).catch(() => {});
    pool.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ReaderPool.close() ends the Workers; a read after it reads nothing", async () => {
  const dir = await statDir({ a: "1\n" });
  const pool = new ReaderPool({ size: 1, maxBytes: 4096 });
  try {
    strictEqual(pool.started, false);
    await readAll(pool, [{ key: "vm1", paths: [`${dir}/a`] }]);
    strictEqual(pool.started, true);
    pool.close();
    strictEqual(pool.usable, false);
    deepStrictEqual(await readAll(pool, [{ key: "vm1", paths: [`${dir}/a`] }]), {
      delivered: [],
      stuck: undefined,
    });
  } finally {
    pool.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ReaderPool.read() neither runs beside nor waits behind a read stuck on a FIFO", async () => {
  const dir = await statDir({ b: "2\n" });
  const fifo = `${dir}/fifo`;
  await mkfifo(fifo);
  const pool = new ReaderPool({ size: 1, maxBytes: 4096 });
  const first = new AbortController();
  let released = false;
  try {
    const stuckRead = readAll(pool, [{ key: "vmA", paths: [fifo] }], first.signal);
    await waitFor(() => blockedOnFifo(Deno.pid), { what: "the Worker blocked on the FIFO" });
    // A second scrape with a shorter deadline gives up while the first still reads.
    deepStrictEqual(await readAll(pool, [{ key: "vmA", paths: [fifo] }], AbortSignal.abort()), {
      delivered: [],
      stuck: [],
    });
    // A third neither takes the first's answer for its own VM nor waits for its deadline: it
    // reads nothing, and says so, so that its caller reads the guarded async way.
    deepStrictEqual(await readAll(pool, [{ key: "vmC", paths: [`${dir}/b`] }]), {
      delivered: [],
      stuck: undefined,
    });
    await unblockFifo(fifo);
    released = true;
    // Its writer gone, the FIFO reads empty, and the open file shows what it is.
    deepStrictEqual((await stuckRead).delivered.map((d) => d.result.side), [[
      {
        index: 0,
        kind: "error",
        name: "NotRegularError",
        message: `Not a regular file "${fifo}": a FIFO`,
      },
    ]]);
    const { delivered } = await readAll(pool, [{ key: "vmC", paths: [`${dir}/b`] }]);
    deepStrictEqual(delivered.map((d) => [...d.result.values]), [[2]], "vmC's own value");
  } finally {
    if (!released) await unblockFifo(fifo).catch(() => {});
    first.abort();
    pool.close();
    await Deno.remove(dir, { recursive: true });
  }
});

/** Whether a thread of this process waits for a FIFO's writer, looked at without yielding. */
function blockedOnFifoSync(): boolean {
  for (const task of Deno.readDirSync("/proc/self/task")) {
    try {
      if (Deno.readTextFileSync(`/proc/self/task/${task.name}/wchan`) === "wait_for_partner") {
        return true;
      }
    } catch {
      // The thread exited while we listed.
    }
  }
  return false;
}

Deno.test("ReaderPool.read() blames the file the Worker is stuck on even when its earlier answers are still queued", async () => {
  const dir = await statDir({ a: "1\n" });
  const fifo = `${dir}/fifo`;
  await mkfifo(fifo);
  const pool = new ReaderPool({ size: 1, maxBytes: 4096 });
  const deadline = new AbortController();
  let unblocked = false;
  try {
    // Start the Worker and hand it both lists, so that the read below posts at once.
    await readAll(pool, [{ key: "vm0", paths: [`${dir}/a`] }]);
    const read = readAll(pool, [
      { key: "vm0", paths: [`${dir}/a`] },
      { key: "vm1", paths: [fifo] },
    ], deadline.signal);
    // read() posts once the previous read's promise settles: microtasks, never a macrotask, so
    // no message from the Worker is taken in meanwhile.
    for (let i = 0; i < 50; i++) await Promise.resolve();
    // The main thread stays busy (a big render, say) while vm0's answer is queued and the
    // Worker blocks on vm1's FIFO; the deadline passes before the event loop turns.
    const until = Date.now() + 10_000;
    while (!blockedOnFifoSync()) {
      if (Date.now() > until) throw new Error("The Worker never blocked on the FIFO");
    }
    // Stuck long enough to be blamed, not only slow.
    const blockedAt = Date.now();
    while (Date.now() - blockedAt < 100) {
      // The Worker stays blocked: nothing to wait for but the clock.
    }
    deadline.abort();
    const { stuck } = await read;
    deepStrictEqual(stuck?.map(({ batch, file }) => ({ batch, file })), [{ batch: 1, file: 0 }]);
    // vm0's queued answer does not free the Worker's place: it is still blocked.
    const early = await Promise.race([
      stuck![0]!.released.then(() => "released"),
      waitFor(async () => !(await blockedOnFifo(Deno.pid)), {
        what: "a released abandoned Worker",
        timeoutMs: 1_000,
      }).then(() => "unblocked", () => "still blocked"),
    ]);
    strictEqual(early, "still blocked");
    strictEqual(pool.abandoned, 1);
    await unblockFifo(fifo);
    unblocked = true;
    await stuck![0]!.released;
    strictEqual(pool.abandoned, 0);
  } finally {
    if (!unblocked) await unblockFifo(fifo).catch(() => {});
    deadline.abort();
    pool.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ReaderPool.read() cut short while its Worker is only busy blames no file", async () => {
  const dir = await statDir({ a: "1\n" });
  const pool = new ReaderPool({ size: 1, maxBytes: 4096 });
  try {
    // 200 VMs of 100 files: the deadline comes (at the first VM's answer) mid-read.
    const batches = Array.from({ length: 200 }, (_, vm) => ({
      key: `vm${vm}`,
      paths: Array.from({ length: 100 }, () => `${dir}/a`),
    }));
    const deadline = new AbortController();
    const stuck = await pool.read(batches, {
      signal: deadline.signal,
      onResult: () => deadline.abort(),
    });
    deepStrictEqual(stuck, [], "a file read in microseconds is not blocked");
    strictEqual(pool.usable, true);
    const again = await readAll(pool, [batches[0]!]);
    deepStrictEqual(again.delivered.length, 1, "a new Worker reads");
  } finally {
    pool.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ReaderPool: each Worker collects its own heap once reads stop, and reads on after", async () => {
  const dir = await statDir({ a: "1\n", b: "2\n" });
  const pool = new ReaderPool({ size: 2, maxBytes: 4096, collectAfterMs: 0 });
  try {
    const batches = [{ key: "vm1", paths: [`${dir}/a`] }, { key: "vm2", paths: [`${dir}/b`] }];
    await readAll(pool, batches);
    await waitFor(() => pool.collections >= 2, { timeoutMs: 10_000, what: "both Workers' gc()" });
    await Deno.writeTextFile(`${dir}/b`, "3\n");
    const { delivered, stuck } = await readAll(pool, batches);
    deepStrictEqual(stuck, []);
    deepStrictEqual(delivered.map((d) => [...d.result.values]), [[1], [3]]);
  } finally {
    pool.close();
    await Deno.remove(dir, { recursive: true });
  }
});
