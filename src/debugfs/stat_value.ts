/**
 * Parsing of KVM debugfs stat files: one integer and a newline.
 *
 * @module
 */

const INTEGER = /^(-?\d+)\n?$/;
/** The exposition carries u64 and s64 at most: KVM's stats are one or the other. */
const MIN_S64 = -(2n ** 63n);
const MAX_U64 = 2n ** 64n - 1n;

/**
 * Parses the text of a debugfs stat file. Values stay `bigint` because
 * cumulative stats are u64 and `tsc-offset` is a negative s64.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseStatValue } from "./stat_value.ts";
 * assert(parseStatValue("18446744073709551615\n") === 18446744073709551615n);
 * assert(parseStatValue("") === undefined);
 * assert(parseStatValue("18446744073709551616\n") === undefined);
 * ```
 *
 * @param text The file's content.
 * @returns The value, or undefined when the file does not hold exactly one integer between
 *   the s64 minimum and the u64 maximum.
 */
export function parseStatValue(text: string): bigint | undefined {
  // 21 characters hold every s64 and u64: a longer number is out of range without parsing it.
  const match = text.length > 22 ? null : INTEGER.exec(text);
  if (match === null) return undefined;
  const value = BigInt(match[1]!);
  return value < MIN_S64 || value > MAX_U64 ? undefined : value;
}

const VM_DIR = /^(\d+)-(\S+)$/;

/**
 * Parses a debugfs VM dir name, `PID-FD`.
 *
 * @param name The dir name.
 * @returns The pid of the process that created the VM, or undefined when the name is not a VM dir.
 */
export function parseVmDirName(name: string): number | undefined {
  const match = VM_DIR.exec(name);
  return match === null ? undefined : Number(match[1]);
}

const VCPU_DIR = /^vcpu(\d+)$/;

/**
 * Parses a vCPU dir name, `vcpuN`.
 *
 * @param name The dir name.
 * @returns The vCPU index as text, or undefined.
 */
export function parseVcpuDirName(name: string): string | undefined {
  return VCPU_DIR.exec(name)?.[1];
}
