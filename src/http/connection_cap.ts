/**
 * The connection cap that fits the process's open file limit: every connection is a file
 * descriptor, so a `--web.max-connections` above `ulimit -n` lets a flood reach EMFILE, where
 * nothing is accepted, not even a health check.
 *
 * @module
 */

import { parseMaxFds } from "../system/proc_pid.ts";
import { PROC_FILE_MAX_BYTES, readBoundedText } from "../system/bounded_read.ts";
import { keptFilesMax } from "../system/kept_file.ts";
import { MAX_REFUSING } from "./http_server.ts";

/**
 * Descriptors kept free of connections: the runtime's own (some 25), stat and procfs files
 * read during a scrape, QMP and libvirt sockets, the watched config files, and the
 * connections being answered 503 beyond the cap.
 */
export const FD_RESERVE: number = 64 + MAX_REFUSING;

/**
 * The connection cap to use: the flag's, lowered to leave {@linkcode FD_RESERVE} descriptors
 * and the files collectors may keep open ({@linkcode keptFilesMax}) free when the open file limit
 * is smaller.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { effectiveMaxConnections } from "./connection_cap.ts";
 * assert.equal(effectiveMaxConnections(512, 1024), 512);
 * assert.equal(effectiveMaxConnections(512, 256), 64);
 * assert.equal(effectiveMaxConnections(512, undefined), 512);
 * ```
 *
 * @param flag `--web.max-connections`.
 * @param fdLimit The soft open file limit, or undefined when unknown (or unlimited).
 * @returns The cap, at least 1.
 */
export function effectiveMaxConnections(flag: number, fdLimit: number | undefined): number {
  if (fdLimit === undefined) return flag;
  return Math.max(1, Math.min(flag, fdLimit - FD_RESERVE - keptFilesMax(fdLimit)));
}

/**
 * Reads the soft open file limit of this process from `<procfs>/self/limits`.
 *
 * @param procfs The procfs mount point (`--path.procfs`).
 * @returns The limit, or undefined when the file cannot be read or says "unlimited".
 */
export async function readFdLimit(procfs: string): Promise<number | undefined> {
  try {
    return parseMaxFds(await readBoundedText(`${procfs}/self/limits`, PROC_FILE_MAX_BYTES));
  } catch {
    return undefined;
  }
}
