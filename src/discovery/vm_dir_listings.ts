/**
 * One scrape's listings of the VM dirs: each `PID-FD` dir is listed once per
 * scrape, whichever collector asks first (kvm_stat for its stat files,
 * vcpu_time for the vCPU dirs), and the others get the same entries.
 *
 * @module
 */

import { type FileSystem, listDir } from "../system/file_system.ts";

/**
 * The entries of VM dirs, listed on first request and kept for the scrape. A
 * listing that failed (the VM exited after discovery) fails again for every
 * caller, without another look.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { denoFileSystem } from "../system/file_system.ts";
 * import { VmDirListings } from "./vm_dir_listings.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.mkdir(`${dir}/vcpu0`);
 * const listings = new VmDirListings(denoFileSystem);
 * assert.equal((await listings.entries(dir)).length, 1);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class VmDirListings {
  readonly #fs: FileSystem;
  readonly #sync: boolean;
  readonly #listed = new Map<string, Deno.DirEntry[] | Promise<Deno.DirEntry[]> | Error>();

  /**
   * Starts a scrape's listings.
   *
   * @param fs The file system.
   * @param options `sync`: list synchronously (default; debugfs dirs are made from memory and
   *   never block), else through the async op.
   */
  constructor(fs: FileSystem, options: { sync: boolean } = { sync: true }) {
    this.#fs = fs;
    this.#sync = options.sync;
  }

  /**
   * A VM dir's entries, listed once per scrape.
   *
   * @param path The VM dir.
   * @returns Its entries (synchronously when listed synchronously).
   * @throws {Error} What the listing threw, to every caller.
   */
  entries(path: string): Deno.DirEntry[] | Promise<Deno.DirEntry[]> {
    const known = this.#listed.get(path);
    if (known instanceof Error) throw known;
    if (known !== undefined) return known;
    if (!this.#sync) {
      const listing = listDir(this.#fs, path);
      this.#listed.set(path, listing);
      return listing;
    }
    try {
      const listing = Array.from(this.#fs.readDirSync(path));
      this.#listed.set(path, listing);
      return listing;
    } catch (error) {
      this.#listed.set(path, error as Error);
      throw error;
    }
  }
}
