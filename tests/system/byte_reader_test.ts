import { deepStrictEqual, rejects, strictEqual, throws } from "node:assert/strict";
import { ByteLimitError, ByteReader } from "../../src/system/byte_reader.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A reader over `chunks`, one chunk (cut to the buffer) per read, counting the reads. */
function readerOf(
  chunks: string[],
  chunkBytes?: number,
): { reader: ByteReader; reads: () => number } {
  const queue = chunks.map((c) => encoder.encode(c));
  let reads = 0;
  const reader = new ByteReader(
    (buffer) => {
      reads++;
      const next = queue.shift();
      if (next === undefined) return Promise.resolve(null);
      const n = Math.min(next.length, buffer.length);
      buffer.set(next.subarray(0, n));
      if (n < next.length) queue.unshift(next.subarray(n));
      return Promise.resolve(n);
    },
    chunkBytes === undefined ? {} : { chunkBytes },
  );
  return { reader, reads: () => reads };
}

async function lines(reader: ByteReader, maxBytes: number): Promise<string[]> {
  const out: string[] = [];
  while (true) {
    const line = await reader.readUntil(0x0a, maxBytes);
    if (line === undefined) return out;
    out.push(decoder.decode(line));
  }
}

Deno.test("ByteReader.readUntil() splits records however the stream cuts them", async (t) => {
  const cases: {
    what: string;
    chunks: string[];
    chunkBytes?: number;
    lines: string[];
    rest: string;
  }[] = [
    { what: "one chunk, two lines", chunks: ["a\nbc\n"], lines: ["a", "bc"], rest: "" },
    { what: "a line over three reads", chunks: ["ab", "c", "d\n"], lines: ["abcd"], rest: "" },
    { what: "an empty line", chunks: ["\n\n"], lines: ["", ""], rest: "" },
    { what: "an unfinished record at the end", chunks: ["a\nbc"], lines: ["a"], rest: "bc" },
    { what: "nothing at all", chunks: [], lines: [], rest: "" },
    {
      what: "reads smaller than the lines (the buffer grows and compacts)",
      chunks: ["0123456789\n".repeat(20)],
      chunkBytes: 4,
      lines: Array(20).fill("0123456789"),
      rest: "",
    },
  ];
  for (const c of cases) {
    await t.step(c.what, async () => {
      const { reader } = readerOf(c.chunks, c.chunkBytes);
      deepStrictEqual(await lines(reader, 100), c.lines);
      strictEqual(decoder.decode(reader.buffered), c.rest);
      strictEqual(reader.eof, true);
    });
  }
});

Deno.test("ByteReader.readUntil() refuses a record past the cap without reading on", async (t) => {
  const cases: { what: string; chunks: string[]; maxBytes: number; ok: string[] }[] = [
    { what: "a delimiter one byte late", chunks: ["abcd\n"], maxBytes: 3, ok: [] },
    { what: "a line exactly at the cap", chunks: ["abc\nabcd\n"], maxBytes: 3, ok: ["abc"] },
    { what: "no delimiter in sight", chunks: ["abcd", "efgh", "never read"], maxBytes: 5, ok: [] },
  ];
  for (const c of cases) {
    await t.step(c.what, async () => {
      const { reader, reads } = readerOf(c.chunks);
      for (const line of c.ok) {
        strictEqual(decoder.decode(await reader.readUntil(0x0a, c.maxBytes)), line);
      }
      await rejects(reader.readUntil(0x0a, c.maxBytes), ByteLimitError);
      strictEqual(reads() <= 2, true, `${reads()} reads`);
    });
  }
});

Deno.test("ByteReader.fillTo() and take() frame by length", async () => {
  const { reader } = readerOf(["\x00\x03", "ab", "cde"]);
  strictEqual(await reader.fillTo(2), true);
  deepStrictEqual([...reader.take(2)], [0, 3]);
  strictEqual(await reader.fillTo(3), true);
  strictEqual(decoder.decode(reader.take(3)), "abc");
  throws(() => reader.take(3), RangeError);
  strictEqual(await reader.fillTo(3), false, "the stream ends first");
  strictEqual(decoder.decode(reader.buffered), "de", "what came stays buffered");
  strictEqual(await reader.fill(), null);
});

Deno.test("ByteReader passes the read function's errors through", async () => {
  const reader = new ByteReader(() => Promise.reject(new Deno.errors.ConnectionReset("reset")));
  await rejects(reader.readUntil(0x0a, 10), Deno.errors.ConnectionReset);
  await rejects(reader.fillTo(1), Deno.errors.ConnectionReset);
});
