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
  | "duplicate" // A device whose label another device of the VM has.
  | "timeout" // The session's deadline passed while the group was asked.
  | "session_broken"; // The peer hung up, or sent what is not QMP, while the group was asked.

/** One part of a reply left out, and why. */
export interface ReplyProblem {
  /** Why. */
  reason: ReplyProblemReason;
  /** What, for the log. */
  detail: string;
  /** How many problems of this reason the entry stands for; 1 when absent. */
  count?: number;
}

/** Most problem details kept per reply: a hostile reply's 300000 bad values are counted, not kept. */
export const MAX_PROBLEMS = 16;

/**
 * Adds a problem to a reply's list, keeping at most {@linkcode MAX_PROBLEMS} details: past that,
 * each reason has one entry more that counts the rest. The list stays short whatever the reply.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { addProblem, type ReplyProblem } from "./reply_problems.ts";
 * const problems: ReplyProblem[] = [];
 * for (let i = 0; i < 1000; i++) addProblem(problems, { reason: "duplicate", detail: `#${i}` });
 * assert.equal(problems.length, 17);
 * assert.equal(problems.reduce((n, p) => n + (p.count ?? 1), 0), 1000);
 * ```
 *
 * @param problems The reply's problems so far.
 * @param problem One more.
 */
export function addProblem(problems: ReplyProblem[], problem: ReplyProblem): void {
  if (problems.length < MAX_PROBLEMS) {
    problems.push(problem);
    return;
  }
  const rest = problems.slice(MAX_PROBLEMS).find((p) => p.reason === problem.reason);
  if (rest === undefined) {
    problems.push({ reason: problem.reason, count: 1, detail: `1 more: ${problem.detail}` });
  } else {
    rest.count = (rest.count ?? 1) + 1;
    rest.detail = `${rest.count} more like: ${problem.detail}`;
  }
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
