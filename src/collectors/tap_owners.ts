/**
 * Which tap devices a VMM holds, by the kernel's word: each of its fds open on `/dev/net/tun`
 * has an `iff:` line in its `<procfs>/PID/fdinfo/FD` naming the tap. A command line is whatever
 * its writer made it, so a tap it names is taken only where the VMM holds it, when its fds can be
 * read (root; the container's unprivileged uid cannot, and then the command line is taken as it
 * is).
 *
 * @module
 */

import type { FileSystem } from "../system/file_system.ts";

/** The most fds of one VMM looked at; QEMU opens its taps early, among its first fds. */
export const MAX_FDS_PER_VMM = 1024;

/** What a VMM's fds say of its taps. */
export type HeldTaps =
  | { known: true; names: ReadonlySet<string> }
  | { known: false; why: string };

/**
 * The tap's name in a `/dev/net/tun` fd's fdinfo (`iff:\tNAME`).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { tapNameOfFdinfo } from "./tap_owners.ts";
 * assert.equal(tapNameOfFdinfo("pos:\t0\nflags:\t0104002\nmnt_id:\t25\niff:\ttap100i0\n"), "tap100i0");
 * ```
 *
 * @param text The fdinfo file's content.
 * @returns The name, or undefined when the fd is attached to no tap.
 */
export function tapNameOfFdinfo(text: string): string | undefined {
  return /^iff:\s+(\S{1,15})\s*$/m.exec(text)?.[1];
}

/**
 * The taps a VMM holds: the `iff:` of each of its fds (at most {@linkcode MAX_FDS_PER_VMM}) that
 * links to `/dev/net/tun`.
 *
 * @param where procfs, the VMM's pid, and file access for the fdinfo reads.
 * @returns The names, or why they cannot be known (the fds are not ours to read, or the VMM went).
 */
export async function heldTaps(
  where: { procfs: string; pid: number; fs: FileSystem },
): Promise<HeldTaps> {
  const { procfs, pid, fs } = where;
  const names = new Set<string>();
  let seen = 0;
  try {
    for await (const entry of Deno.readDir(`${procfs}/${pid}/fd`)) {
      if (++seen > MAX_FDS_PER_VMM) break;
      const link = await Deno.readLink(`${procfs}/${pid}/fd/${entry.name}`).catch(() => "");
      if (link !== "/dev/net/tun") continue;
      const info = await fs.readTextFile(`${procfs}/${pid}/fdinfo/${entry.name}`, {
        maxBytes: 4096,
      }).catch(() => "");
      const name = tapNameOfFdinfo(info);
      if (name !== undefined) names.add(name);
    }
  } catch (error) {
    return { known: false, why: (error as Error).message };
  }
  return { known: true, names };
}
