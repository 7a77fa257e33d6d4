import { strictEqual } from "node:assert/strict";
import {
  escapeHelp,
  escapeLabelValue,
  formatValue,
  renderBytesSliced,
  renderText,
} from "../../src/exposition/text_format.ts";

Deno.test("escapeLabelValue() escapes backslash, quote and newline only", async (t) => {
  const cases: [string, string][] = [
    ["plain", "plain"],
    ['a"b', 'a\\"b'],
    ["a\\b", "a\\\\b"],
    ["a\nb", "a\\nb"],
    ["ünï,code\t", "ünï,code\t"],
    ['\\"\n', '\\\\\\"\\n'],
  ];
  for (const [input, expected] of cases) {
    await t.step(JSON.stringify(input), () => strictEqual(escapeLabelValue(input), expected));
  }
});

Deno.test("escapeHelp() escapes backslash and newline", () => {
  strictEqual(escapeHelp('a\\b\n"c"'), 'a\\\\b\\n"c"');
});

Deno.test("formatValue() keeps every digit of 64-bit integers", async (t) => {
  const cases: [bigint | number, string][] = [
    [18446744073709551615n, "18446744073709551615"],
    [-9223372036854775808n, "-9223372036854775808"],
    [0n, "0"],
    [0.5, "0.5"],
    [NaN, "NaN"],
    [Infinity, "+Inf"],
    [-Infinity, "-Inf"],
  ];
  for (const [value, expected] of cases) {
    await t.step(expected, () => strictEqual(formatValue(value), expected));
  }
});

Deno.test("renderText() sorts families and samples (vcpu numerically) and ends with a newline", () => {
  const text = renderText([
    {
      name: "b",
      help: "B.",
      type: "gauge",
      samples: [
        { labels: [["domain", "x"], ["vcpu", "10"]], value: 1n },
        { labels: [["domain", "x"], ["vcpu", "2"]], value: 2n },
        { labels: [["domain", "global"]], value: 3n },
      ],
    },
    { name: "a", help: "A.", type: "counter", samples: [{ labels: [], value: 1 }] },
    { name: "empty", help: "Left out.", type: "gauge", samples: [] },
  ]);
  strictEqual(
    text,
    [
      "# HELP a A.",
      "# TYPE a counter",
      "a 1",
      "# HELP b B.",
      "# TYPE b gauge",
      'b{domain="global"} 3',
      'b{domain="x",vcpu="2"} 2',
      'b{domain="x",vcpu="10"} 1',
      "",
    ].join("\n"),
  );
});

Deno.test("renderBytesSliced() renders what renderText() does, numbers in the collator's order, also two at once", async () => {
  const values = ["10", "2", "0", "00", "01", "1", "9", "100", "007", "x", "1a", ""];
  const families = [{
    name: "n",
    help: "N.",
    type: "gauge" as const,
    samples: values.flatMap((v, i) => [
      { labels: [["vcpu", v]] as const, value: BigInt(i) },
      { labels: [["vcpu", v], ["le", values[(i + 3) % values.length]!]] as const, value: 1n },
    ]),
  }];
  const other = [{
    name: "up",
    help: "Up.",
    type: "gauge" as const,
    samples: [{ labels: [], value: 1 }],
  }];
  const many = Array.from({ length: 20 }, (_, i) => ({ ...families[0]!, name: `n${i}` }));
  // A slice of 0 ms lets the event loop run before every family: the two renders interleave.
  const [a, b] = await Promise.all([renderBytesSliced(many, 0), renderBytesSliced(other, 0)]);
  const decoder = new TextDecoder();
  strictEqual(decoder.decode(a), renderText(many));
  strictEqual(decoder.decode(b), renderText(other));
  const collator = new Intl.Collator("en", { numeric: true });
  const digits = values.filter((v) => /^\d+$/.test(v));
  const order = [...renderText(families).matchAll(/^n\{vcpu="(\d+)"\}/gm)].map((m) => m[1]);
  strictEqual(
    order.join(),
    [...digits].sort((a, b) => collator.compare(a, b) || (a < b ? -1 : 1)).join(),
  );
});
