/**
 * Kernel lockdown: under it (the Secure Boot default on Ubuntu, RHEL, Fedora)
 * debugfs refuses every 0644 file, which is every cumulative, peak and
 * histogram KVM stat.
 *
 * @module
 */

import { PROC_FILE_MAX_BYTES, readBoundedText } from "./bounded_read.ts";

/** The lockdown mode, or "unknown" when the kernel does not say. */
export type LockdownMode = "none" | "integrity" | "confidentiality" | "unknown";

/**
 * Where the mode came from: securityfs (`/sys/kernel/security/lockdown`),
 * inferred from debugfs refusing a 0644 file to root, or nowhere.
 */
export type LockdownSource = "securityfs" | "debugfs" | "unknown";

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
    const path = `${sysfs}/kernel/security/lockdown`;
    return parseLockdown(await readBoundedText(path, PROC_FILE_MAX_BYTES));
  } catch {
    return "unknown";
  }
}

/**
 * Parses the effective uid from `/proc/PID/status` (the second field of `Uid:`).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseEffectiveUid } from "./lockdown.ts";
 * assert(parseEffectiveUid("Name:\tx\nUid:\t1000\t0\t0\t0\n") === 0);
 * ```
 *
 * @param text The file content.
 * @returns The uid, or undefined.
 */
export function parseEffectiveUid(text: string): number | undefined {
  const match = /^Uid:\s+\d+\s+(\d+)/m.exec(text);
  return match === null ? undefined : Number(match[1]);
}

/**
 * Infers lockdown when securityfs does not say: debugfs refusing (EPERM) a
 * file of mode 0644 to root is what lockdown does, and nothing else does. It
 * cannot tell integrity from confidentiality (both refuse), so it says
 * "integrity", the lesser.
 *
 * @param options A path the kernel refused with EPERM, and the procfs mount point (to learn
 *   whether this process is root without `--allow-sys`).
 * @returns "integrity", or undefined when nothing can be inferred.
 */
export async function inferLockdown(
  options: { refusedPath: string; procfs: string },
): Promise<LockdownMode | undefined> {
  try {
    const status = await readBoundedText(`${options.procfs}/self/status`, PROC_FILE_MAX_BYTES);
    if (parseEffectiveUid(status) !== 0) return undefined;
    const info = await Deno.stat(options.refusedPath);
    return info.mode !== null && (info.mode & 0o777) === 0o644 ? "integrity" : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The kernel lockdown mode as the exporter knows it: read from securityfs at
 * start, or inferred later from what debugfs refuses when securityfs is silent.
 */
export class KernelLockdown {
  #mode: LockdownMode;
  #source: LockdownSource;

  /**
   * Starts from what securityfs said.
   *
   * @param mode The mode read at start ("unknown" when securityfs was silent).
   */
  constructor(mode: LockdownMode) {
    this.#mode = mode;
    this.#source = mode === "unknown" ? "unknown" : "securityfs";
  }

  /** The mode. */
  get mode(): LockdownMode {
    return this.#mode;
  }

  /** Where the mode came from. */
  get source(): LockdownSource {
    return this.#source;
  }

  /**
   * While the mode is unknown, infers it from a path debugfs refused ({@linkcode inferLockdown}).
   *
   * @param seen A path the kernel refused with EPERM in this scrape, if any, and procfs.
   * @returns Whether the mode was learned now.
   */
  async learn(seen: { refusedPath: string | undefined; procfs: string }): Promise<boolean> {
    const { refusedPath, procfs } = seen;
    if (this.#mode !== "unknown" || refusedPath === undefined) return false;
    const inferred = await inferLockdown({ refusedPath, procfs });
    if (inferred === undefined) return false;
    this.#mode = inferred;
    this.#source = "debugfs";
    return true;
  }
}
