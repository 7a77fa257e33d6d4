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
 * import { sanitizeMetricName } from "./naming.ts";
 * console.assert(sanitizeMetricName("tsc-offset") === "tsc_offset");
 * ```
 *
 * @param text The stat name.
 * @returns The text with invalid characters replaced.
 */
export function sanitizeMetricName(text: string): string {
  return text.replace(/[^a-zA-Z0-9_:]/g, "_");
}

const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/**
 * Whether `name` is a valid label name that users may set (not `__` reserved).
 *
 * @param name The candidate label name.
 * @returns true if Prometheus accepts it as a user label name.
 */
export function isValidLabelName(name: string): boolean {
  return LABEL_NAME.test(name) && !name.startsWith("__");
}
