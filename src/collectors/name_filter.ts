/**
 * node_exporter's device filters (`collector.diskstats.device-exclude`): a name is reported when
 * it matches the include pattern, if any, and not the exclude pattern, if any. Patterns match
 * anywhere in the name, as node_exporter's do (anchor them with `^...$` for a whole name). The
 * disk and interface filters of the qmp, libvirt and tap collectors.
 *
 * @module
 */

/** An include and an exclude pattern, each optional. */
export interface NameFilter {
  /** Only names that match are reported. */
  include: RegExp | undefined;
  /** Names that match are not reported. */
  exclude: RegExp | undefined;
}

/**
 * Whether a name passes a filter.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { passes } from "./name_filter.ts";
 * assert(passes({ include: /^scsi/, exclude: /^scsi9$/ }, "scsi0"));
 * assert(!passes({ include: /^scsi/, exclude: /^scsi9$/ }, "scsi9"));
 * ```
 *
 * @param filter The patterns.
 * @param name The device or interface name.
 * @returns True when it is reported.
 */
export function passes(filter: NameFilter, name: string): boolean {
  if (filter.include !== undefined && !filter.include.test(name)) return false;
  return filter.exclude === undefined || !filter.exclude.test(name);
}
