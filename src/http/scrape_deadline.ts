/**
 * A scrape's deadline: `--web.scrape-timeout`, lowered to what Prometheus
 * waits for (its `X-Prometheus-Scrape-Timeout-Seconds` header) minus a margin
 * for the answer to reach it, as blackbox_exporter's `--timeout-offset` does.
 *
 * @module
 */

/** The header in which Prometheus sends its scrape timeout, in seconds. */
export const SCRAPE_TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds";

/** Taken off Prometheus's timeout, as blackbox_exporter's default `--timeout-offset` (0.5s). */
export const SCRAPE_TIMEOUT_OFFSET_MS = 500;

const SECONDS = /^\d+(\.\d+)?$/;

/**
 * Computes a scrape's deadline: the flag, or Prometheus's timeout minus
 * {@linkcode SCRAPE_TIMEOUT_OFFSET_MS} when that is sooner. A timeout of 1s
 * or less is halved instead, so that a short one still leaves time to
 * collect. A header that is not a positive number of seconds is ignored.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { scrapeDeadlineMs } from "./scrape_deadline.ts";
 * assert(scrapeDeadlineMs(10_000, "5") === 4500);
 * assert(scrapeDeadlineMs(10_000, "30") === 10_000);
 * assert(scrapeDeadlineMs(10_000, "0.5") === 250);
 * assert(scrapeDeadlineMs(10_000, undefined) === 10_000);
 * ```
 *
 * @param flagMs `--web.scrape-timeout` in milliseconds.
 * @param header The header's value, if the request has one.
 * @returns The deadline in milliseconds from now.
 */
export function scrapeDeadlineMs(flagMs: number, header: string | undefined): number {
  const text = header?.trim() ?? "";
  if (!SECONDS.test(text)) return flagMs;
  const prometheusMs = Number(text) * 1000;
  if (!(prometheusMs > 0) || !Number.isFinite(prometheusMs)) return flagMs;
  return Math.min(flagMs, Math.max(prometheusMs - SCRAPE_TIMEOUT_OFFSET_MS, prometheusMs / 2));
}
