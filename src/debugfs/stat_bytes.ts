/**
 * Parsing of a debugfs stat file's raw bytes into a number, for the common
 * case only: an integer that a double holds exactly. Everything else is left
 * to {@linkcode parseStatValue}, on the decoded text, so that both paths agree.
 *
 * This module is also run inside reader Workers from its source text
 * (`Function.prototype.toString`): the function uses nothing but its arguments.
 *
 * @module
 */

/**
 * Parses a stat file's bytes when they are exactly an optional `-`, ASCII digits and an optional
 * newline, at most 22 bytes, and the value is a safe integer: then `parseStatValue` of the
 * decoded text gives the same value as a `bigint`. Anything else (a u64 past 2^53, a value out of
 * range, malformed text, a byte-order mark) gives NaN: the caller decodes the text and parses it
 * with `parseStatValue`, which decides exactly.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseStatBytes } from "./stat_bytes.ts";
 * const bytes = new TextEncoder().encode("-42\n");
 * assert(parseStatBytes(bytes, bytes.length) === -42);
 * assert(Number.isNaN(parseStatBytes(new TextEncoder().encode("9007199254740993\n"), 17)));
 * ```
 *
 * @param bytes The buffer the file was read into.
 * @param length How many bytes of it the file filled.
 * @returns The value, or NaN when only the text path can decide.
 */
export function parseStatBytes(bytes: Uint8Array, length: number): number {
  // parseStatValue refuses a text longer than 22 characters whatever it holds.
  if (length > 22) return NaN;
  let end = length;
  if (end > 0 && bytes[end - 1] === 10) end--;
  let i = 0;
  const negative = end > 0 && bytes[0] === 45;
  if (negative) i = 1;
  if (i === end) return NaN;
  let value = 0;
  for (; i < end; i++) {
    const digit = bytes[i]! - 48;
    if (digit < 0 || digit > 9) return NaN;
    value = value * 10 + digit;
  }
  // Past 2^53 the sum may have rounded; such a value is never taken for a safe one, since
  // rounding is monotonic and 2^53 itself is not safe.
  if (value > Number.MAX_SAFE_INTEGER) return NaN;
  return negative ? -value : value;
}
