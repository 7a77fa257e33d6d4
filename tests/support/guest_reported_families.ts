/**
 * The VM families only a guest can fill: its balloon driver reports them, and
 * only when the domain has a stats period. The test VMs boot firmware only,
 * with no guest OS, so they never have these. The tests that check the
 * shipped dashboard and rules against a running exporter
 * (`tests/deploy/shipped_names_test.ts`, `tests/e2e/dashboard_coverage_test.ts`)
 * report a query over one of them as needing a guest, not as failed.
 *
 * @module
 */

/** Each guest-reported family's sample name, with what fills it. */
export const GUEST_REPORTED_FAMILIES: ReadonlyMap<string, string> = new Map([
  ["kvm_vm_memory_usable_bytes", "the guest's balloon driver, with a stats period"],
  ["kvm_vm_memory_available_bytes", "the guest's balloon driver, with a stats period"],
  [
    "kvm_vm_memory_stats_update_timestamp_seconds",
    "the guest's balloon driver, with a stats period",
  ],
]);

/**
 * Why a query cannot have data on the test VMs, if it cannot.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { whyNoData } from "./guest_reported_families.ts";
 * assert.equal(whyNoData(["kvm_vm_exits_total"]), undefined);
 * assert.match(whyNoData(["kvm_vm_memory_usable_bytes"]) ?? "", /^needs/);
 * ```
 *
 * @param names The metric names the query selects.
 * @returns "needs ..." with the family and what fills it, or undefined.
 */
export function whyNoData(names: readonly string[]): string | undefined {
  for (const name of names) {
    const source = GUEST_REPORTED_FAMILIES.get(name);
    if (source !== undefined) return `needs ${source} (${name})`;
  }
  return undefined;
}
