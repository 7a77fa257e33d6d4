/**
 * For tests of kept-open files: how many descriptors this process holds on a path, and a child
 * process (standing for a VMM or a vCPU thread) killed and reaped whatever the test did.
 *
 * @module
 */

/**
 * The descriptors of this process open on `path`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { fdsOn } from "./kept_fds.ts";
 * assert.equal(fdsOn("/nonexistent"), 0);
 * ```
 *
 * @param path The file.
 * @returns How many of this process's fds are open on it.
 */
export function fdsOn(path: string): number {
  let n = 0;
  for (const entry of Deno.readDirSync("/proc/self/fd")) {
    try {
      if (Deno.readLinkSync(`/proc/self/fd/${entry.name}`) === path) n++;
    } catch {
      // Closed while listed.
    }
  }
  return n;
}

/**
 * Kills a child with SIGKILL unless it has exited, and waits for it.
 *
 * @example Usage
 * ```ts
 * import { reapChild } from "./kept_fds.ts";
 * await reapChild(new Deno.Command("sleep", { args: ["60"] }).spawn());
 * ```
 *
 * @param child The child.
 */
export async function reapChild(child: Deno.ChildProcess): Promise<void> {
  try {
    child.kill("SIGKILL");
  } catch {
    // Exited already.
  }
  await child.status;
}
