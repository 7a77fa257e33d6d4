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
import type { Limiter } from "../system/limiter.ts";

/** The most fds of one VMM looked at; QEMU opens its taps early, among its first fds. */
export const MAX_FDS_PER_VMM = 1024;

/** What a VMM's fds say of its taps. */
export type HeldTaps =
  | { known: true; names: ReadonlySet<string> }
  | { known: false; why: string; retry?: true };

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
 * The taps a VMM holds: the `iff:` of each of its fds that links to `/dev/net/tun`. A VMM with
 * more than {@linkcode MAX_FDS_PER_VMM} fds is not scanned to the end: what it holds then cannot
 * be known (a tap among the fds not looked at would be called not held).
 *
 * @param where procfs, the VMM's pid, and file access for the fd links and fdinfo reads.
 * @returns The names, or why they cannot be known (the fds are not ours to read, the VMM went, or
 *   it has too many fds); `retry` when a later scan may know (too many fds now).
 */
export async function heldTaps(
  where: { procfs: string; pid: number; fs: FileSystem },
): Promise<HeldTaps> {
  const { procfs, pid, fs } = where;
  const names = new Set<string>();
  let seen = 0;
  try {
    for await (const entry of fs.readDir(`${procfs}/${pid}/fd`)) {
      if (++seen > MAX_FDS_PER_VMM) {
        return {
          known: false,
          why: `More than ${MAX_FDS_PER_VMM} fds: the scan stopped there`,
          retry: true,
        };
      }
      const link = await fs.readLink(`${procfs}/${pid}/fd/${entry.name}`).catch(() => "");
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

/**
 * Scans of a VMM's fds that missed a tap its command line names, repeated at the next scrapes:
 * QEMU opens its taps a moment after its VM shows in debugfs.
 */
export const HELD_TAPS_QUICK_RETRIES = 3;

/**
 * After the quick retries, the least time between two scans of a VMM's fds that keep missing a
 * tap (a NIC hot-unplugged stays on the command line for the VM's life), or that stop at
 * {@linkcode MAX_FDS_PER_VMM}: up to 1,024 reads each, not every scrape.
 */
export const HELD_TAPS_RETRY_MS = 60_000;

interface HeldScan {
  held: HeldTaps;
  /** When it was made (`now()`). */
  at: number;
  /** Scans of this VM made so far. */
  scans: number;
}

/**
 * Each VM's scan of its fds, by VM dir (a VMM's for its life). A scan that holds every tap named,
 * or that cannot be made (the fds are not ours to read), is kept; one that misses a tap or stops
 * at the fd cap is made again at the next {@linkcode HELD_TAPS_QUICK_RETRIES} scrapes, then at
 * most once every {@linkcode HELD_TAPS_RETRY_MS}, the last scan's answer standing in between.
 */
export class HeldTapsCache {
  readonly #options: {
    procfs: string;
    fs: FileSystem;
    limiter: Limiter | undefined;
    now: () => number;
  };
  readonly #scans = new Map<string, HeldScan>();

  /**
   * Creates an empty cache.
   *
   * @param options procfs, file access, a limiter for the scans, and a clock in ms (default
   *   `performance.now`).
   */
  constructor(
    options: { procfs: string; fs: FileSystem; limiter?: Limiter; now?: () => number },
  ) {
    this.#options = {
      procfs: options.procfs,
      fs: options.fs,
      limiter: options.limiter,
      now: options.now ?? (() => performance.now()),
    };
  }

  /**
   * What a VM's fds say of its taps: the kept scan, or a new one when it is due.
   *
   * @param vm The VM's dir and VMM pid.
   * @param names The taps its command line names.
   * @returns What its fds hold.
   */
  async of(vm: { dir: string; pid: number }, names: readonly string[]): Promise<HeldTaps> {
    const { procfs, fs, limiter, now } = this.#options;
    const last = this.#scans.get(vm.dir);
    if (last !== undefined && !this.#due(last, names)) return last.held;
    const scan = () => heldTaps({ procfs, pid: vm.pid, fs });
    const held = await (limiter === undefined ? scan() : limiter.run(scan));
    this.#scans.set(vm.dir, { held, at: now(), scans: (last?.scans ?? 0) + 1 });
    return held;
  }

  /**
   * Forgets the VMs not in `dirs`.
   *
   * @param dirs The VM dirs present.
   */
  keepOnly(dirs: ReadonlySet<string>): void {
    for (const dir of this.#scans.keys()) if (!dirs.has(dir)) this.#scans.delete(dir);
  }

  #due(last: HeldScan, names: readonly string[]): boolean {
    const { held } = last;
    const complete = held.known ? names.every((name) => held.names.has(name)) : held.retry !== true;
    if (complete) return false;
    if (last.scans <= HELD_TAPS_QUICK_RETRIES) return true;
    return this.#options.now() - last.at >= HELD_TAPS_RETRY_MS;
  }
}
