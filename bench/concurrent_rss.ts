/**
 * Peak RSS by number of concurrent scrapers: starts a fresh exporter on a synthetic tree for each
 * count, runs that many gzip'd scrapers (each scraping `--rounds` times) and reads `VmHWM`.
 * The last row adds clients that ask for plain text and never read the answer.
 *
 * `deno run -A bench/concurrent_rss.ts --size=100x16 --clients=1,2,4,10,40 --non-readers=100`
 * (wrap in `flock /tmp/realvm.lock` on a shared machine).
 *
 * @module
 */

import { LOOPBACK_ANY_PORT, startExporter, treeArgs } from "../tests/support/exporter_process.ts";
import { openNonReaders, peakRssMb, runScrapers } from "../tests/support/scrape_load.ts";
import { countStatFiles, parseShape, planTree, writeTree } from "./debugfs_tree.ts";

/** The tool's options. */
export interface ConcurrentRssOptions {
  size: string;
  clients: number[];
  nonReaders: number;
  rounds: number;
  extraArgs: string[];
}

/**
 * Parses the command line.
 *
 * @param args The arguments.
 * @returns The options.
 */
export function parseConcurrentRssArgs(args: readonly string[]): ConcurrentRssOptions {
  const options: ConcurrentRssOptions = {
    size: "100x16",
    clients: [1, 2, 4, 10, 40],
    nonReaders: 100,
    rounds: 3,
    extraArgs: [],
  };
  for (const arg of args) {
    const [name, value = ""] = arg.split(/=(.*)/s);
    if (name === "--size") options.size = value;
    else if (name === "--clients") options.clients = value.split(",").map(Number);
    else if (name === "--non-readers") options.nonReaders = Number(value);
    else if (name === "--rounds") options.rounds = Number(value);
    else options.extraArgs.push(arg);
  }
  return options;
}

async function measure(
  options: ConcurrentRssOptions & { dir: string; scrapers: number; withNonReaders: number },
): Promise<string> {
  await using exporter = await startExporter([
    ...treeArgs(options.dir),
    LOOPBACK_ANY_PORT,
    ...options.extraArgs,
  ]);
  const nonReaders = await openNonReaders(exporter.port, options.withNonReaders);
  try {
    const result = await runScrapers({
      baseUrl: exporter.baseUrl,
      scrapers: options.scrapers,
      rounds: options.rounds,
      minSamples: countStatFiles(parseShape(options.size)),
    });
    const peak = peakRssMb(exporter.pid);
    const label = options.withNonReaders > 0
      ? `${options.scrapers} + ${options.withNonReaders} non-readers`
      : `${options.scrapers}`;
    return `| ${label} | ${
      peak.toFixed(0)
    } | ${result.whole} | ${result.refused} | ${result.failures.length} |`;
  } finally {
    nonReaders.close();
  }
}

if (import.meta.main) {
  const options = parseConcurrentRssArgs(Deno.args);
  const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_rss_" });
  try {
    await writeTree(dir, planTree(parseShape(options.size)));
    console.log(`${options.size}, ${options.rounds} scrapes per scraper, gzip'd`);
    console.log("| scrapers | peak RSS (VmHWM), MiB | whole | 503 | failed |");
    console.log("| -------- | --------------------- | ----- | --- | ------ |");
    for (const scrapers of options.clients) {
      console.log(await measure({ ...options, dir, scrapers, withNonReaders: 0 }));
    }
    if (options.nonReaders > 0) {
      const scrapers = options.clients.at(-1) ?? 1;
      console.log(await measure({ ...options, dir, scrapers, withNonReaders: options.nonReaders }));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
