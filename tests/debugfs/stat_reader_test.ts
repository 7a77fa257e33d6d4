import { strictEqual } from "node:assert/strict";
import { ReaderPool } from "../../src/debugfs/reader_pool.ts";
import { emptyListing, type ScrapeFiles, type StatFile } from "../../src/debugfs/stat_listing.ts";
import { readMode, type StatReads } from "../../src/debugfs/stat_reader.ts";
import { denoFileSystem } from "../../src/system/file_system.ts";
import { inThreadReaders } from "../support/in_thread_readers.ts";

/** A scrape of `count` root files (readMode only counts them). */
function scrapeOf(count: number): ScrapeFiles {
  const root = Array.from({ length: count }, () => ({}) as StatFile);
  return { root, rootListing: emptyListing(""), vms: [], vcpuCounts: new Map() };
}

Deno.test("readMode() follows the strategy it is given, and the pool's state for workers", () => {
  const pool = (): ReaderPool =>
    new ReaderPool({ size: 1, maxBytes: 64, start: inThreadReaders(denoFileSystem) });
  const closed = pool();
  closed.close();
  const cases: [what: string, reads: StatReads, files: number, mode: string][] = [
    ["sync", { kind: "sync" }, 5000, "sync"],
    ["async", { kind: "async" }, 5000, "async"],
    ["workers below the threshold", { kind: "workers", pool: pool(), minFiles: 10 }, 9, "sync"],
    ["workers at the threshold", { kind: "workers", pool: pool(), minFiles: 10 }, 10, "workers"],
    ["workers, pool unusable", { kind: "workers", pool: closed, minFiles: 0 }, 10, "guarded"],
  ];
  for (const [what, reads, files, mode] of cases) {
    strictEqual(readMode(reads, scrapeOf(files)), mode, what);
  }
});
