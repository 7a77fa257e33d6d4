/**
 * Parsing of KVM debugfs stat files: one integer and a newline.
 *
 * @module
 */

const INTEGER = /^(-?\d+)\n?$/;

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
 * ```
 *
 * @param text The file's content.
 * @returns The value, or undefined when the file does not hold exactly one integer.
 */
export function parseStatValue(text: string): bigint | undefined {
  const match = INTEGER.exec(text);
  return match === null ? undefined : BigInt(match[1]!);
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
