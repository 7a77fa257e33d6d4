/**
 * What a device query's reply may get wrong, and the value checks its parsers share. A reply
 * from a hostile or broken monitor costs only what is wrong in it: a bad value leaves out that
 * value, a bad device that device, a reply of the wrong shape that query; each is a
 * {@linkcode ReplyProblem}, counted by reason. Pure.
 *
 * @module
 */

/** Why part of a device query's reply was left out. */
export type ReplyProblemReason =
  | "error_reply" // QEMU answered the command with an error (e.g. CommandNotFound).
  | "bad_reply" // The reply has not the shape of the command's return type.
  | "bad_value" // One value missing, of the wrong type, or out of range.
  | "too_many" // A device beyond the cap per VM.
  | "duplicate"; // A device whose label another device of the VM has.

/** One part of a reply left out, and why. */
export interface ReplyProblem {
  /** Why. */
  reason: ReplyProblemReason;
  /** What, for the log. */
  detail: string;
}

const U64_MAX = 2n ** 64n - 1n;

/**
 * A QMP integer as an unsigned 64-bit value: a safe non-negative integer `number`, or a
 * `bigint` in range (what `parseQmpJson` makes of integers beyond 2^53 - 1).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { u64Of } from "./reply_problems.ts";
 * assert.equal(u64Of(18446744073709551615n), 18446744073709551615n);
 * assert.equal(u64Of(-1), undefined);
 * ```
 *
 * @param value The value as parsed.
 * @returns The value, or undefined when it is no u64.
 */
export function u64Of(value: unknown): bigint | undefined {
  if (typeof value === "bigint") return value >= 0n && value <= U64_MAX ? value : undefined;
  if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) {
    return BigInt(value);
  }
  return undefined;
}

/**
 * The value as a plain object, or undefined.
 *
 * @param value Anything.
 * @returns The object, or undefined when it is not one (arrays and null are not).
 */
export function objectOf(value: unknown): Record<string, unknown> | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? value as Record<string, unknown>
    : undefined;
}

/** Longest name kept as a label value: what a peer names must stay small. */
export const MAX_NAME_LENGTH = 128;

/**
 * A name from the peer fit for a label value: a string of 1 to 128 characters without control
 * characters.
 *
 * @param value The value as parsed.
 * @returns The name, or undefined.
 */
export function nameOf(value: unknown): string | undefined {
  if (typeof value !== "string" || value.length === 0 || value.length > MAX_NAME_LENGTH) {
    return undefined;
  }
  // deno-lint-ignore no-control-regex
  return /[\x00-\x1f\x7f]/.test(value) ? undefined : value;
}

/**
 * Describes a value for a problem's detail, briefly.
 *
 * @param value Anything.
 * @returns A short description.
 */
export function describeValue(value: unknown): string {
  if (value === undefined) return "nothing";
  if (typeof value === "bigint") return String(value);
  const text = JSON.stringify(value) ?? typeof value;
  return text.length > 40 ? `${text.slice(0, 40)}...` : text;
}
