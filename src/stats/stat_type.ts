/**
 * Where a stat's kind and unit come from, in order: QEMU's schema when QMP
 * supplied it, the catalog of the stats the kernel defines, the debugfs file
 * mode, else untyped.
 *
 * @module
 */

import { catalogType } from "./catalog.ts";
import { type StatKind, type StatSchema, type StatType, untypedStat } from "./stat.ts";

const SCHEMA_KINDS: Record<StatSchema["type"], StatKind> = {
  "cumulative": "cumulative",
  "instant": "instant",
  "peak": "peak",
  "linear-histogram": "linear_hist",
  "log2-histogram": "log2_hist",
};

/**
 * The type QEMU's schema gives a stat; an instant with unit boolean is a boolean.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { typeFromSchema } from "./stat_type.ts";
 * const type = typeFromSchema({ name: "halt_wait_ns", type: "cumulative", unit: "seconds", base: 10, exponent: -9 });
 * assert(type.kind === "cumulative" && type.exponent === -9);
 * ```
 *
 * @param schema The stat's schema.
 * @returns Its type.
 */
export function typeFromSchema(schema: StatSchema): StatType {
  const kind = schema.unit === "boolean" && schema.type !== "cumulative"
    ? "boolean"
    : SCHEMA_KINDS[schema.type];
  return {
    kind,
    unit: schema.unit,
    base: schema.base,
    exponent: schema.exponent,
    bucketSize: schema.bucketSize ?? 0,
    origin: "schema",
  };
}

/**
 * The type a debugfs file's mode implies: KVM creates cumulative stats 0644
 * (writable, to reset them) and the others 0444; `max_*` files are peaks.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { typeFromMode } from "./stat_type.ts";
 * assert(typeFromMode("exits", 0o100644).kind === "cumulative");
 * assert(typeFromMode("max_x", 0o100644).kind === "peak");
 * ```
 *
 * @param name The file name.
 * @param mode The file's mode, or undefined when it could not be read.
 * @returns Its type.
 */
export function typeFromMode(name: string, mode: number | undefined): StatType {
  if (mode === undefined) return untypedStat();
  const base = { ...untypedStat(), origin: "mode" as const };
  if (name.startsWith("max_")) return { ...base, kind: "peak" };
  return { ...base, kind: (mode & 0o222) !== 0 ? "cumulative" : "instant" };
}

/**
 * The type of a stat QMP read: its schema's, else the catalog's, else untyped.
 *
 * @param name The stat's name.
 * @param schema Its schema, if QEMU supplied one.
 * @returns Its type.
 */
export function qmpStatType(name: string, schema: StatSchema | undefined): StatType {
  if (schema !== undefined) return typeFromSchema(schema);
  return catalogType(name) ?? untypedStat();
}

const SUFFIX_KINDS = { sum: "cumulative", cur: "instant", max: "peak" } as const;

/**
 * The type of a stat libvirt republished as `<stat>.<suffix>`: the catalog's
 * when it knows the stat, else the suffix's kind (`sum` cumulative, `cur`
 * instant, or boolean when libvirt sent a boolean, `max` peak) with
 * nanoseconds for a name ending in `_ns`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { libvirtStatType } from "./stat_type.ts";
 * assert(libvirtStatType("new_thing_ns", "sum", false).exponent === -9);
 * assert(libvirtStatType("new_flag", "cur", true).kind === "boolean");
 * ```
 *
 * @param name The stat's KVM name.
 * @param suffix libvirt's suffix.
 * @param boolean Whether libvirt sent the value as a boolean.
 * @returns Its type.
 */
export function libvirtStatType(
  name: string,
  suffix: "cur" | "sum" | "max",
  boolean: boolean,
): StatType {
  const known = catalogType(name);
  if (known !== undefined) return known;
  const type: StatType = { ...untypedStat(), kind: SUFFIX_KINDS[suffix], origin: "suffix" };
  if (boolean && suffix === "cur") return { ...type, kind: "boolean", unit: "boolean" };
  if (name.endsWith("_ns")) return { ...type, unit: "seconds", exponent: -9 };
  return type;
}
