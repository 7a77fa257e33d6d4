/**
 * Kernel lockdown: under it (the Secure Boot default on Ubuntu, RHEL, Fedora)
 * debugfs refuses every 0644 file, which is every cumulative, peak and
 * histogram KVM stat.
 *
 * @module
 */

/** The lockdown mode, or "unknown" when the kernel does not say. */
export type LockdownMode = "none" | "integrity" | "confidentiality" | "unknown";

/**
 * Parses `/sys/kernel/security/lockdown`: the mode in brackets.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseLockdown } from "./lockdown.ts";
 * assert(parseLockdown("none [integrity] confidentiality\n") === "integrity");
 * ```
 *
 * @param text The file content.
 * @returns The mode in force.
 */
export function parseLockdown(text: string): LockdownMode {
  const mode = /\[(\w+)\]/.exec(text)?.[1];
  return mode === "none" || mode === "integrity" || mode === "confidentiality" ? mode : "unknown";
}

/**
 * Reads the lockdown mode.
 *
 * @param sysfs The sysfs mount point.
 * @returns The mode, "unknown" when the file cannot be read.
 */
export async function readLockdown(sysfs: string): Promise<LockdownMode> {
  try {
    return parseLockdown(await Deno.readTextFile(`${sysfs}/kernel/security/lockdown`));
  } catch {
    return "unknown";
  }
}
