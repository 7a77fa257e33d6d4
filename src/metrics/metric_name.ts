/**
 * Metric and label naming rules of the Prometheus data model.
 *
 * @module
 */

/**
 * Turns any text into a valid metric name fragment by replacing each character
 * outside `[a-zA-Z0-9_:]` with `_` (KVM names such as `tsc-offset` contain `-`).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { sanitizeMetricName } from "./metric_name.ts";
 * assert(sanitizeMetricName("tsc-offset") === "tsc_offset");
 * ```
 *
 * @param text The stat name.
 * @returns The text with invalid characters replaced.
 */
export function sanitizeMetricName(text: string): string {
  return text.replace(/[^a-zA-Z0-9_:]/g, "_");
}
