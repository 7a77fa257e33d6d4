/**
 * Real reader Workers whose open waits, as the exporter's own did before they opened with
 * `O_NONBLOCK`. A FIFO then stands for a read that blocks (a stat path on a hung network or FUSE
 * mount), which the reader pool must survive; the exporter's own Workers never wait on a FIFO.
 *
 * @module
 */

import type { StartReader } from "../../src/debugfs/reader_pool.ts";
import { readerWorkerSource } from "../../src/debugfs/reader_worker.ts";

/** How the reader Worker's source calls its read: the call swapped for a blocking one. */
const READ_CALL = "runReaderWorker(self, (path, buffer) => readStatInto(fs, path, buffer));";

/** Open, one read, close, through Deno's file API: the open of a FIFO waits for a writer. */
const BLOCKING_READ = `runReaderWorker(self, (path, buffer) => {
  const file = Deno.openSync(path, { read: true });
  try {
    return file.readSync(buffer) ?? 0;
  } finally {
    file.close();
  }
});`;

let source: string | undefined;

/**
 * Starts reader Workers whose reads block on a FIFO.
 *
 * @example Usage
 * ```ts ignore
 * import { ReaderPool } from "../../src/debugfs/reader_pool.ts";
 * import { blockingReaders } from "./blocking_readers.ts";
 * const pool = new ReaderPool({ size: 1, maxBytes: 4096, start: blockingReaders });
 * ```
 *
 * @param name The Worker's name.
 * @returns The Worker.
 */
export const blockingReaders: StartReader = (name) => {
  if (source === undefined) {
    const text = readerWorkerSource();
    if (!text.includes(READ_CALL)) throw new Error("the reader Worker's source changed its read");
    source = URL.createObjectURL(
      new Blob([text.replace(READ_CALL, BLOCKING_READ)], { type: "application/javascript" }),
    );
  }
  return new Worker(source, { type: "module", name });
};
