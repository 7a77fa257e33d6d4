/**
 * A collector's kept-open files ({@linkcode KeptFile}), by VM dir and path, within the process's
 * budget of them: what vcpu_time does with each vCPU thread's `schedstat` and vm_process with each
 * VMM's `stat`, `status` and `io`.
 *
 * @module
 */

import type { KeptFile, KeptFileBudget } from "./kept_file.ts";

/**
 * Files kept open per VM dir. A file is kept once it has been read the ordinary way (so the
 * guarded read has vouched for it), and read again from its start on later scrapes; a read that
 * fails closes and forgets it, and the caller reads the ordinary way, which says why.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { KeptFileBudget, openKeptFile } from "./kept_file.ts";
 * import { KeptFiles } from "./kept_files.ts";
 * const kept = new KeptFiles(openKeptFile);
 * const path = `/proc/${Deno.pid}/stat`;
 * assert.equal(kept.read("vm", path, 4096), undefined);
 * kept.keep("vm", path, new KeptFileBudget(1));
 * assert.match(kept.read("vm", path, 4096) ?? "", /^\d+ /);
 * kept.close();
 * ```
 */
export class KeptFiles {
  readonly #open: (path: string) => KeptFile;
  readonly #byDir = new Map<string, Map<string, KeptFile>>();
  #budget: KeptFileBudget | undefined;
  #closed = false;

  /**
   * Creates an empty set.
   *
   * @param open Opens a file to keep (the file system seam's `openKept`).
   */
  constructor(open: (path: string) => KeptFile) {
    this.#open = open;
  }

  /** Files kept open now. */
  get size(): number {
    let n = 0;
    for (const files of this.#byDir.values()) n += files.size;
    return n;
  }

  /**
   * Reads a kept file from its start.
   *
   * @param dir The VM dir it belongs to.
   * @param path The file.
   * @param maxBytes Its size cap.
   * @returns Its text; undefined when it is not kept, or its read failed (it is then closed and
   *   forgotten: read it the ordinary way, which says why).
   */
  read(dir: string, path: string, maxBytes: number): string | undefined {
    const file = this.#byDir.get(dir)?.get(path);
    if (file === undefined) return undefined;
    try {
      return file.read(maxBytes);
    } catch {
      this.#forget(dir, path);
      return undefined;
    }
  }

  /**
   * Keeps a file open that was just read the ordinary way, if `budget` has a place left. The open
   * never waits (`O_NONBLOCK`), and a file the kernel does not make on read is not kept.
   *
   * @param dir The VM dir it belongs to.
   * @param path The file.
   * @param budget The process's budget of kept files.
   */
  keep(dir: string, path: string, budget: KeptFileBudget): void {
    if (this.#closed || !budget.take()) return;
    this.#budget = budget;
    let file: KeptFile;
    try {
      file = this.#open(path);
    } catch {
      budget.give();
      return; // Gone meanwhile, or not a file made on read: read the ordinary way.
    }
    let files = this.#byDir.get(dir);
    if (files === undefined) this.#byDir.set(dir, files = new Map());
    const earlier = files.get(path);
    files.set(path, file);
    if (earlier !== undefined) this.#close(earlier);
  }

  /**
   * Closes a VM's kept files not in `read`: a file no scrape reads any more (a thread the VM no
   * longer names) would hold a place in the budget for the VM's lifetime.
   *
   * @param dir The VM dir.
   * @param read The paths read this scrape.
   */
  forgetUnread(dir: string, read: ReadonlySet<string>): void {
    const files = this.#byDir.get(dir);
    if (files === undefined) return;
    for (const path of [...files.keys()]) if (!read.has(path)) this.#forget(dir, path);
  }

  /**
   * Closes the kept files of every VM not in `dirs`.
   *
   * @param dirs The VM dirs that exist.
   */
  retain(dirs: ReadonlySet<string>): void {
    for (const [dir, files] of this.#byDir) {
      if (dirs.has(dir)) continue;
      for (const file of files.values()) this.#close(file);
      this.#byDir.delete(dir);
    }
  }

  /** Closes every kept file; nothing is kept after this. */
  close(): void {
    this.#closed = true;
    this.retain(new Set());
  }

  #forget(dir: string, path: string): void {
    const files = this.#byDir.get(dir);
    const file = files?.get(path);
    if (file === undefined) return;
    files!.delete(path);
    if (files!.size === 0) this.#byDir.delete(dir);
    this.#close(file);
  }

  #close(file: KeptFile): void {
    file.close();
    this.#budget?.give();
  }
}
