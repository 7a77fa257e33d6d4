/**
 * Kernel lockdown made in process: a {@linkcode FileSystem} that refuses (EPERM, as the kernel
 * does) every 0644 file under a debugfs dir and counts each open by path. Lockdown cannot be made
 * on a tmpfs tree, and a locked-down host cannot be unlocked without a reboot, so the bench's
 * lockdown mode and the tests of refusals read a {@linkcode writeTree} tree through this.
 *
 * @module
 */

import { denoFileSystem, type FileSystem } from "../src/system/file_system.ts";

/** A refusing file system and what it counted. */
export interface RefusingFileSystem {
  /** The file system to read through. */
  fs: FileSystem;
  /** Opens of each path (refused ones included), by path, since the last reset. */
  opens: Map<string, number>;
  /** Opens the file system refused since the last reset. */
  refused: { count: number };
  /** Paths it has refused at least once, ever. */
  refusedPaths: Set<string>;
  /** Starts counting afresh (not `refusedPaths`). */
  reset(): void;
}

/**
 * Wraps `base` so that it refuses every file under `kvmdebugDir` whose mode is 0644, as
 * debugfs does under lockdown (`debugfs_locked_down`: a file with a write bit is refused to
 * everyone); 0444 files (instant stats, every vCPU file) are read. The mode is looked up once per
 * path: a file's mode never changes while its VM lives.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { refusingFileSystem } from "./refusing_file_system.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/exits`, "1\n", { mode: 0o644 });
 * await Deno.chmod(`${dir}/exits`, 0o644);
 * const locked = refusingFileSystem({ kvmdebugDir: dir });
 * assert.throws(() => locked.fs.readRegularSync(`${dir}/exits`, 64), Deno.errors.PermissionDenied);
 * assert.equal(locked.opens.get(`${dir}/exits`), 1);
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @param options The debugfs dir refused under, the file system read through (the real one by
 *   default), whether to refuse at all (default true; false only counts, for comparison), and the
 *   errno refused with (default 1, EPERM, as lockdown does; 13 is EACCES, as an LSM does).
 * @returns The file system and its counts.
 */
export function refusingFileSystem(
  options: { kvmdebugDir: string; base?: FileSystem; refuse?: boolean; errno?: 1 | 13 },
): RefusingFileSystem {
  const base = options.base ?? denoFileSystem;
  const root = `${options.kvmdebugDir}/`;
  const opens = new Map<string, number>();
  const refused = { count: 0 };
  const refusedPaths = new Set<string>();
  const modes = new Map<string, boolean>();
  const refusal = (path: string): Error | undefined => {
    opens.set(path, (opens.get(path) ?? 0) + 1);
    if (options.refuse === false || !path.startsWith(root)) return undefined;
    let refuse = modes.get(path);
    if (refuse === undefined) {
      try {
        refuse = ((Deno.lstatSync(path).mode ?? 0) & 0o777) === 0o644;
      } catch {
        refuse = false; // Gone: the read that follows says so.
      }
      modes.set(path, refuse);
    }
    if (!refuse) return undefined;
    refused.count++;
    refusedPaths.add(path);
    const errno = options.errno ?? 1;
    const what = errno === 1 ? "Operation not permitted" : "Permission denied";
    return new Deno.errors.PermissionDenied(`${what} (os error ${errno}): '${path}'`);
  };
  const fs: FileSystem = {
    ...base,
    // A refused file is still opened, and read, before it is refused: the kernel's EPERM costs
    // an open's path walk and Deno's checks of the path, so a refusal is not free here either.
    readTextFile: async (path, readOptions) => {
      const error = refusal(path);
      const text = await base.readTextFile(path, readOptions);
      if (error !== undefined) throw error;
      return text;
    },
    readRegularSync: (path, maxBytes) => {
      const error = refusal(path);
      const text = base.readRegularSync(path, maxBytes);
      if (error !== undefined) throw error;
      return text;
    },
  };
  return {
    fs,
    opens,
    refused,
    refusedPaths,
    reset: () => {
      opens.clear();
      refused.count = 0;
    },
  };
}
