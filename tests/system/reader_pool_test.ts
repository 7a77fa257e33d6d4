import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { ReaderPool } from "../../src/system/reader_pool.ts";
import type { StatFilesResult } from "../../src/system/reader_worker.ts";
import { mkfifo, unblockFifo } from "../support/fifo.ts";

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
