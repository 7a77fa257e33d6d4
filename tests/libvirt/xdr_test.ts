import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { XdrError, XdrReader, XdrWriter } from "../../src/libvirt/xdr.ts";

const bytes = (...values: number[]) => new Uint8Array(values);

Deno.test("XdrWriter encodes ints, strings and opaques big-endian and padded", async (t) => {
  const cases: { what: string; write: (w: XdrWriter) => XdrWriter; expected: number[] }[] = [
    { what: "int 1", write: (w) => w.int(1), expected: [0, 0, 0, 1] },
    { what: "int -1", write: (w) => w.int(-1), expected: [255, 255, 255, 255] },
    { what: "uint max", write: (w) => w.uint(0xffffffff), expected: [255, 255, 255, 255] },
    { what: "empty string", write: (w) => w.string(""), expected: [0, 0, 0, 0] },
    { what: "string padded", write: (w) => w.string("abc"), expected: [0, 0, 0, 3, 97, 98, 99, 0] },
    {
      what: "string of 4 bytes, no padding",
      write: (w) => w.string("abcd"),
      expected: [0, 0, 0, 4, 97, 98, 99, 100],
    },
    {
      what: "UTF-8 length in bytes",
      write: (w) => w.string("ü"),
      expected: [0, 0, 0, 2, 195, 188, 0, 0],
    },
    { what: "fixed opaque", write: (w) => w.fixedOpaque(bytes(1, 2)), expected: [1, 2, 0, 0] },
    { what: "optional present", write: (w) => w.optional(true), expected: [0, 0, 0, 1] },
  ];
  for (const c of cases) {
    await t.step(c.what, () => deepStrictEqual([...c.write(new XdrWriter()).bytes()], c.expected));
  }
});

Deno.test("XdrWriter rejects values out of range", () => {
  throws(() => new XdrWriter().int(2 ** 31), RangeError);
  throws(() => new XdrWriter().uint(-1), RangeError);
  throws(() => new XdrWriter().int(1.5), RangeError);
});

Deno.test("XdrReader decodes each type", async (t) => {
  const cases: {
    what: string;
    input: number[];
    read: (r: XdrReader) => unknown;
    expected: unknown;
  }[] = [
    { what: "int -2", input: [255, 255, 255, 254], read: (r) => r.int(), expected: -2 },
    { what: "uint", input: [128, 0, 0, 0], read: (r) => r.uint(), expected: 2 ** 31 },
    {
      what: "hyper -3",
      input: [255, 255, 255, 255, 255, 255, 255, 253],
      read: (r) => r.hyper(),
      expected: -3n,
    },
    {
      what: "unsigned hyper max",
      input: [255, 255, 255, 255, 255, 255, 255, 255],
      read: (r) => r.unsignedHyper(),
      expected: 18446744073709551615n,
    },
    {
      what: "double 0.5",
      input: [63, 224, 0, 0, 0, 0, 0, 0],
      read: (r) => r.double(),
      expected: 0.5,
    },
    { what: "bool true", input: [0, 0, 0, 1], read: (r) => r.bool(), expected: true },
    {
      what: "string",
      input: [0, 0, 0, 2, 104, 105, 0, 0],
      read: (r) => r.string(2),
      expected: "hi",
    },
    {
      what: "fixed opaque",
      input: [1, 2, 3, 0],
      read: (r) => [...r.fixedOpaque(3)],
      expected: [1, 2, 3],
    },
    { what: "count", input: [0, 0, 0, 3], read: (r) => r.count(3, "things"), expected: 3 },
  ];
  for (const c of cases) {
    await t.step(c.what, () => {
      const reader = new XdrReader(new Uint8Array(c.input));
      deepStrictEqual(c.read(reader), c.expected);
      strictEqual(reader.remaining, 0);
    });
  }
});

Deno.test("XdrReader rejects truncation, over-long lengths and bad values", async (t) => {
  const cases: {
    what: string;
    input: number[];
    read: (r: XdrReader) => unknown;
    message: RegExp;
  }[] = [
    {
      what: "short int",
      input: [0, 0, 1],
      read: (r) => r.int(),
      message: /Truncated XDR int at byte 0: needs 4 bytes, 3 left/,
    },
    {
      what: "short hyper",
      input: [0, 0, 0, 0],
      read: (r) => r.hyper(),
      message: /Truncated XDR hyper/,
    },
    {
      what: "string over its cap",
      input: [0, 0, 0, 5, 1, 2, 3, 4, 5, 0, 0, 0],
      read: (r) => r.string(4),
      message: /XDR string at byte 0 too long: "5" bytes, the limit is 4/,
    },
    {
      what: "string longer than the message",
      input: [0x7f, 0xff, 0xff, 0xff],
      read: (r) => r.string(2 ** 31),
      message: /Truncated XDR opaque at byte 4/,
    },
    {
      what: "string missing its padding",
      input: [0, 0, 0, 1, 97],
      read: (r) => r.string(8),
      message: /Truncated/,
    },
    {
      what: "not UTF-8",
      input: [0, 0, 0, 1, 255, 0, 0, 0],
      read: (r) => r.string(8),
      message: /not UTF-8/,
    },
    {
      what: "count over its cap",
      input: [0, 0, 1, 0],
      read: (r) => r.count(255, "records"),
      message: /Too many records at byte 0: "256", the limit is 255/,
    },
    {
      what: "bool 2",
      input: [0, 0, 0, 2],
      read: (r) => r.bool(),
      message: /Invalid XDR boolean at byte 0: "2"/,
    },
  ];
  for (const c of cases) {
    await t.step(c.what, () => {
      throws(
        () => c.read(new XdrReader(new Uint8Array(c.input))),
        (e: unknown) => e instanceof XdrError && c.message.test(e.message),
      );
    });
  }
});
