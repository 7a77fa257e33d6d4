/**
 * The strict exposition parser: what it accepts (and how it decodes it), what it rejects, and
 * that every golden output of the exporter passes it.
 *
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { escapeHelp, escapeLabelValue, formatValue } from "../../src/exposition/text_format.ts";
import { parseExposition, parseGoFloat } from "./exposition_parser.ts";

const GOOD: {
  name: string;
  text: string;
  check: (f: ReturnType<typeof parseExposition>) => void;
}[] = [
  {
    name: "empty body",
    text: "",
    check: (f) => assert.equal(f.length, 0),
  },
  {
    name: "HELP and TYPE, escapes decoded",
    text: '# HELP a x\\\\y\\nz\n# TYPE a gauge\na{l="q\\"b\\\\s\\nn"} 1\n',
    check: (f) => {
      assert.equal(f[0]?.help, "x\\y\nz");
      assert.equal(f[0]?.type, "gauge");
      assert.equal(f[0]?.samples[0]?.labels.get("l"), 'q"b\\s\nn');
    },
  },
  {
    name: "untyped sample without comments, timestamp",
    text: "b 2 1700000000000\n",
    check: (f) => {
      assert.equal(f[0]?.type, "untyped");
      assert.equal(f[0]?.samples[0]?.timestamp, 1700000000000n);
    },
  },
  {
    name: "special values",
    text: 'a{v="1"} +Inf\na{v="2"} -Inf\na{v="3"} NaN\na{v="4"} inf\na{v="5"} -1.5e-3\n',
    check: (f) => {
      const values = f[0]!.samples.map((s) => s.value);
      assert.deepEqual(values.slice(0, 2), [Infinity, -Infinity]);
      assert.ok(Number.isNaN(values[2]));
      assert.deepEqual(values.slice(3), [Infinity, -0.0015]);
    },
  },
  {
    name: "u64 max is a valid float",
    text: "a 18446744073709551615\n",
    check: (f) => assert.equal(f[0]?.samples[0]?.valueText, "18446744073709551615"),
  },
  {
    name: "histogram suffixes",
    text: '# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 3\nh_count 2\n',
    check: (f) => assert.equal(f[0]?.samples.length, 4),
  },
  {
    name: "summary suffixes",
    text: '# TYPE s summary\ns{quantile="0.5"} 1\ns_sum 3\ns_count 2\n',
    check: (f) => assert.equal(f[0]?.samples.length, 3),
  },
  {
    name: "blanks, trailing comma and ordinary comments",
    text: '# just a comment\na { x = "1" , } \t 7\n\n',
    check: (f) => assert.equal(f[0]?.samples[0]?.labels.get("x"), "1"),
  },
  {
    name: "a gauge may end in _count (the compat names do)",
    text: "# TYPE kvm_stat_exits_count gauge\nkvm_stat_exits_count 1\n",
    check: (f) => assert.equal(f[0]?.name, "kvm_stat_exits_count"),
  },
];

Deno.test("parseExposition() accepts and decodes valid text", async (t) => {
  for (const { name, text, check } of GOOD) {
    await t.step(name, () => check(parseExposition(text)));
  }
});

const BAD: { name: string; text: string; error: RegExp }[] = [
  { name: "no final newline", text: "a 1", error: /newline/ },
  { name: "bad metric name", text: "1a 1\n", error: /invalid metric name/ },
  { name: "bad label name", text: 'a{1x="1"} 1\n', error: /invalid label name/ },
  { name: "reserved label name", text: 'a{__x="1"} 1\n', error: /reserved/ },
  { name: "duplicate label", text: 'a{x="1",x="2"} 1\n', error: /duplicate label/ },
  { name: "duplicate series", text: 'a{x="1"} 1\na{x="1"} 2\n', error: /duplicate series/ },
  {
    name: "duplicate series, labels reordered",
    text: 'a{x="1",y="2"} 1\na{y="2",x="1"} 2\n',
    error: /duplicate series/,
  },
  { name: "bad escape in label", text: 'a{x="\\t"} 1\n', error: /invalid escape/ },
  { name: "raw newline cannot be in a label", text: 'a{x="\n"} 1\n', error: /unterminated/ },
  { name: "unterminated label value", text: 'a{x="1} 1\n', error: /unterminated/ },
  { name: "missing comma", text: 'a{x="1" y="2"} 1\n', error: /expected ","/ },
  { name: "bad escape in HELP", text: "# HELP a \\t\n", error: /invalid escape/ },
  { name: "second HELP", text: "# HELP a x\n# HELP a y\n", error: /second HELP/ },
  { name: "second TYPE", text: "# TYPE a gauge\n# TYPE a gauge\n", error: /second TYPE/ },
  { name: "TYPE after samples", text: "a 1\n# TYPE a gauge\n", error: /after its samples/ },
  { name: "unknown TYPE", text: "# TYPE a gauges\n", error: /invalid TYPE/ },
  { name: "family repeated", text: 'a 1\nb 1\na{x="1"} 2\n', error: /appears twice/ },
  { name: "value missing", text: "a\n", error: /invalid value ""/ },
  { name: "value too large for float64", text: `a ${"9".repeat(400)}\n`, error: /invalid value/ },
  { name: "hex float", text: "a 0x1p3\n", error: /invalid value/ },
  { name: "underscore in value", text: "a 1_000\n", error: /invalid value/ },
  { name: "signed NaN", text: "a +NaN\n", error: /invalid value/ },
  { name: "word value", text: "a one\n", error: /invalid value/ },
  { name: "bad timestamp", text: "a 1 1.5\n", error: /invalid timestamp/ },
  { name: "timestamp beyond int64", text: "a 1 9223372036854775808\n", error: /int64/ },
  { name: "trailing text", text: "a 1 2 3\n", error: /trailing/ },
  { name: "histogram without suffix", text: "# TYPE h histogram\nh 1\n", error: /suffix/ },
  { name: "bucket without le", text: "# TYPE h histogram\nh_bucket 1\n", error: /"le"/ },
  { name: "summary without quantile", text: "# TYPE s summary\ns 1\n", error: /quantile/ },
  { name: "summary bucket", text: "# TYPE s summary\ns_bucket 1\n", error: /summary sample/ },
];

Deno.test("parseExposition() rejects invalid text", async (t) => {
  for (const { name, text, error } of BAD) {
    await t.step(name, () => assert.throws(() => parseExposition(text), error));
  }
});

const FLOATS: [string, number | undefined][] = [
  ["0", 0],
  ["-0", -0],
  [".5", 0.5],
  ["5.", 5],
  ["1e308", 1e308],
  ["1e309", undefined],
  ["-1e309", undefined],
  ["Infinity", Infinity],
  ["-infinity", -Infinity],
  ["nan", NaN],
  ["", undefined],
  ["1e", undefined],
  ["0x10", undefined],
  [" 1", undefined],
];

Deno.test("parseGoFloat() reads what Go's ParseFloat and expfmt read", () => {
  for (const [text, expected] of FLOATS) {
    assert.ok(Object.is(parseGoFloat(text), expected), `${JSON.stringify(text)}`);
  }
});

Deno.test("parseExposition() round-trips any label value, HELP and integer the exporter escapes", () => {
  fc.assert(
    fc.property(
      fc.string({ unit: "binary", maxLength: 40 }),
      fc.string({ unit: "binary", maxLength: 40 }),
      fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n }),
      (value, help, number) => {
        const text = `# HELP m ${escapeHelp(help)}\n# TYPE m gauge\nm{l="${
          escapeLabelValue(value)
        }"} ${formatValue(number)}\n`;
        const [family] = parseExposition(text);
        // The format drops the blanks between the name and the HELP text.
        assert.equal(family?.help, help.replace(/^[ \t]+/, ""));
        assert.equal(family?.samples[0]?.labels.get("l"), value);
        assert.equal(family?.samples[0]?.value, Number(number));
      },
    ),
    { numRuns: 150 },
  );
});

Deno.test("parseExposition() accepts every golden output", async () => {
  const dir = new URL("../e2e/golden/", import.meta.url);
  let count = 0;
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.name.endsWith(".metrics")) continue;
    // The golden files mask volatile values (durations, timestamps) as "X".
    const text = (await Deno.readTextFile(new URL(entry.name, dir))).replace(/ X$/gm, " 0");
    const families = parseExposition(text);
    assert.ok(families.length > 0, entry.name);
    count++;
  }
  assert.ok(count >= 3, `golden files found: ${count}`);
});
