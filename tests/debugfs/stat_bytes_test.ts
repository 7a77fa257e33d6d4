import { strictEqual } from "node:assert/strict";
import fc from "fast-check";
import { parseStatBytes } from "../../src/debugfs/stat_bytes.ts";
import { parseStatValue } from "../../src/debugfs/stat_value.ts";
import { propertyParams } from "../support/property.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** What parseStatBytes() gives for a text, its bytes in a buffer larger than them. */
function parseText(text: string): number {
  const bytes = encoder.encode(text);
  const buffer = new Uint8Array(bytes.length + 8).fill(0x37);
  buffer.set(bytes);
  return parseStatBytes(buffer, bytes.length);
}

Deno.test("parseStatBytes() parses safe integers and leaves everything else to the text", async (t) => {
  const cases: [string, number][] = [
    ["0\n", 0],
    ["42", 42],
    ["-6492169368040186\n", -6492169368040186],
    ["9007199254740991\n", 9007199254740991],
    ["-9007199254740991\n", -9007199254740991],
    [`${"0".repeat(19)}42\n`, 42], // 22 bytes: parseStatValue takes it too.
    ["9007199254740992\n", NaN], // 2^53: not safe, the text path is exact.
    ["18446744073709551615\n", NaN],
    [`${"0".repeat(20)}42\n`, NaN], // 23 bytes: malformed for parseStatValue.
    ["", NaN],
    ["\n", NaN],
    ["-\n", NaN],
    ["--1\n", NaN],
    [" 1\n", NaN],
    ["1 \n", NaN],
    ["1\n\n", NaN],
    ["1\n2\n", NaN],
    ["\ufeff5\n", NaN], // The decoder drops a byte-order mark; the text path decides.
    ["١٢\n", NaN], // Arabic-Indic digits are not \d.
  ];
  for (const [text, expected] of cases) {
    await t.step(JSON.stringify(text), () => strictEqual(parseText(text), expected));
  }
});

Deno.test("parseStatBytes() of -0 is a zero that BigInt() makes 0n, as parseStatValue() does", () => {
  strictEqual(BigInt(parseText("-0\n")), parseStatValue("-0\n"));
});

Deno.test("parseStatBytes() agrees with parseStatValue() wherever it gives a number", () => {
  const digits = fc.stringMatching(/^-?[0-9]{1,22}\n?$/).map((s) => encoder.encode(s));
  const bytes = fc.oneof(fc.uint8Array({ maxLength: 30 }), digits);
  fc.assert(
    fc.property(bytes, (input) => {
      const value = parseStatBytes(input, input.length);
      const exact = parseStatValue(decoder.decode(input));
      if (Number.isNaN(value)) {
        // Left to the text: never a safe integer the fast path should have taken in its format.
        return exact === undefined || !Number.isSafeInteger(Number(exact)) ||
          !/^-?\d+\n?$/.test(decoder.decode(input)) || input.length > 22;
      }
      return exact !== undefined && BigInt(value) === exact;
    }),
    propertyParams(5000),
  );
});
