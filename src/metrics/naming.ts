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
 * import { sanitizeMetricName } from "./naming.ts";
 * assert(sanitizeMetricName("tsc-offset") === "tsc_offset");
 * ```
 *
 * @param text The stat name.
 * @returns The text with invalid characters replaced.
 */
export function sanitizeMetricName(text: string): string {
  return text.replace(/[^a-zA-Z0-9_:]/g, "_");
}

/**
 * The family of a KVM stat in the original exporter's names: a gauge
 * `kvm_stat_<stat>_count` with HELP `<stat> count from <source>`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { compatStatFamily } from "./naming.ts";
 * assert(compatStatFamily("vcpu_tsc-offset", "/sys/kernel/debug/kvm").name === "kvm_stat_vcpu_tsc_offset_count");
 * ```
 *
 * @param stem The stat's name, `vcpu_`-prefixed for vCPU stats.
 * @param source Where it was read: the debugfs dir, or "qmp".
 * @returns The family's name and HELP.
 */
export function compatStatFamily(stem: string, source: string): { name: string; help: string } {
  const clean = sanitizeMetricName(stem);
  return { name: `kvm_stat_${clean}_count`, help: `${clean} count from ${source}` };
}
