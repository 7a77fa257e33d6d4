/**
 * Reader "Workers" that run the reader Worker's own code on this thread and
 * read through a {@linkcode FileSystem} seam: a Worker is another isolate, so
 * a seam's faults (EPERM under lockdown, a vanishing file) cannot reach one.
 * Replies go through the event loop in order, as a Worker's do.
 *
 * @module
 */

import type { ReaderPort, StartReader } from "../../src/debugfs/reader_pool.ts";
import {
  type ReaderReply,
  type ReaderRequest,
  type ReaderScope,
  type ReadInto,
  runReaderWorker,
} from "../../src/debugfs/reader_worker.ts";
import { TooLargeError } from "../../src/system/bounded_read.ts";
import type { FileSystem } from "../../src/system/file_system.ts";

/** Reads through the seam's synchronous read, as a Worker reads through Deno's. */
function readThrough(fs: FileSystem): ReadInto {
  const encoder = new TextEncoder();
  return (path, buffer) => {
    let text: string;
    try {
      text = fs.readRegularSync(path, buffer.length - 1);
    } catch (error) {
      if (error instanceof TooLargeError) return buffer.length; // The Worker's sign of too large.
      throw error;
    }
    return encoder.encodeInto(text, buffer).written;
  };
}

/**
 * Starts readers on this thread that read through `fs`.
 *
 * @param fs The file system seam.
 * @returns What {@linkcode ReaderPool} starts its readers with.
 */
export function inThreadReaders(fs: FileSystem): StartReader {
  return () => {
    let ended = false;
    const scope: ReaderScope = {
      onmessage: null,
      postMessage: (reply: ReaderReply) =>
        setTimeout(() => {
          if (!ended) port.onmessage?.(new MessageEvent("message", { data: reply }));
        }),
    };
    const port: ReaderPort = {
      onmessage: null,
      onerror: null,
      postMessage: (request: ReaderRequest) =>
        setTimeout(() => {
          if (!ended) scope.onmessage?.(new MessageEvent("message", { data: request }));
        }),
      terminate: () => void (ended = true),
    };
    runReaderWorker(scope, readThrough(fs));
    return port;
  };
}
