/**
 * One guarded read of a procfs file for a collector: through its limiter and the scrape's read
 * guard (a read that blocks, as a VMM in D state holding its memory lock makes it, is waited for
 * only until the deadline and not started again until it returns), with the failure classified
 * the one way every collector counts it.
 *
 * @module
 */

import {
  classifyReadError,
  describeReadError,
  type FileSystem,
  type ReadErrorReason,
} from "../system/file_system.ts";
import type { Limiter } from "../system/limiter.ts";
import { DeadlineError } from "../system/read_guard.ts";
import type { ScrapeContext } from "./collector.ts";

/** What {@linkcode guardedRead} gives: the text, or why there is none. */
export type GuardedReadResult =
  | { ok: true; text: string }
  | { ok: false; reason: ReadErrorReason; detail: string };

/**
 * The reason of a guarded read's failure: a read the deadline cut short is a blocked one, as
 * the guard then counts it; anything else as {@linkcode classifyReadError} says.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { guardedReadReason } from "./guarded_read.ts";
 * import { DeadlineError } from "../system/read_guard.ts";
 * assert.equal(guardedReadReason(new DeadlineError("Deadline passed")), "blocked");
 * ```
 *
 * @param error What the read threw.
 * @returns The reason.
 */
export function guardedReadReason(error: unknown): ReadErrorReason {
  return error instanceof DeadlineError ? "blocked" : classifyReadError(error);
}

/**
 * Reads a file through the limiter and the scrape's read guard; never throws.
 *
 * @param context The scrape (its read guard and deadline).
 * @param read The path, its cap, the file access and the collector's limiter.
 * @returns The text, or the reason and a line saying why.
 */
export async function guardedRead(
  context: ScrapeContext,
  read: { path: string; maxBytes: number; fs: FileSystem; limiter: Limiter },
): Promise<GuardedReadResult> {
  const { path, maxBytes, fs, limiter } = read;
  try {
    const text = await limiter.run(() =>
      context.reads.read(path, () => fs.readTextFile(path, { maxBytes }), context.signal)
    );
    return { ok: true, text };
  } catch (error) {
    return { ok: false, reason: guardedReadReason(error), detail: describeReadError(path, error) };
  }
}
