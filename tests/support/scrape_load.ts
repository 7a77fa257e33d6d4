/**
 * Concurrent load on a running exporter, for the memory tests and `bench/concurrent_rss.ts`:
 * scrapers that fetch `/metrics` over and over and check every answer is whole
 * ({@linkcode runScrapers}), clients that send a request and never read the answer
 * ({@linkcode openNonReaders}), and the peak RSS of a process ({@linkcode peakRssMb}).
 *
 * @module
 */

import { gunzipSync } from "node:zlib";

/** Options of {@linkcode runScrapers}. */
export interface ScraperOptions {
  /** `http://127.0.0.1:PORT`. */
  baseUrl: string;
  /** Scrapers running at once. */
  scrapers: number;
  /** Scrapes each scraper makes, one after another. */
  rounds: number;
  /** Samples a whole answer has at least (a truncated one has fewer, or no final newline). */
  minSamples: number;
  /** Ask for gzip, as Prometheus does. Default true. */
  gzip?: boolean;
  /** Per-scrape deadline. Default 60 000 ms. */
  timeoutMs?: number;
}

/** What the scrapers saw. */
export interface ScraperResult {
  /** Whole 200 answers. */
  whole: number;
  /** 503 answers (too many scrapes in flight). */
  refused: number;
  /** Anything else, one line each: a status, a short body, a failed fetch. */
  failures: string[];
}

/**
 * Runs `scrapers` clients at once, each scraping `rounds` times, and checks every 200 answer:
 * its body decodes, ends in a newline, and has at least `minSamples` sample lines.
 *
 * @param options The target and the load.
 * @returns Counts of whole and refused answers, and the failures.
 */
export async function runScrapers(options: ScraperOptions): Promise<ScraperResult> {
  const result: ScraperResult = { whole: 0, refused: 0, failures: [] };
  const scraper = async () => {
    for (let i = 0; i < options.rounds; i++) await scrapeOnce(options, result);
  };
  await Promise.all(Array.from({ length: options.scrapers }, scraper));
  return result;
}

async function scrapeOnce(options: ScraperOptions, result: ScraperResult): Promise<void> {
  const gzip = options.gzip ?? true;
  try {
    const response = await fetch(`${options.baseUrl}/metrics`, {
      headers: { "Accept-Encoding": gzip ? "gzip" : "identity" },
      signal: AbortSignal.timeout(options.timeoutMs ?? 60_000),
    });
    const bytes = new Uint8Array(await response.arrayBuffer());
    if (response.status === 503) {
      result.refused++;
      return;
    }
    if (response.status !== 200) {
      result.failures.push(`status ${response.status}`);
      return;
    }
    // Deno's fetch gunzips (and fails on a truncated member) even when asked by hand; a plain
    // body's length is checked against Content-Length here.
    const zipped = bytes[0] === 0x1f && bytes[1] === 0x8b;
    const declared = Number(response.headers.get("content-length"));
    const plain = response.headers.get("content-encoding") === null;
    const text = new TextDecoder().decode(zipped ? gunzipSync(bytes) : bytes);
    const problem = wholeProblem(text, options.minSamples);
    if (plain && declared !== bytes.length) {
      result.failures.push(`${bytes.length} of ${declared} bytes`);
    } else if (problem !== undefined) result.failures.push(problem);
    else result.whole++;
  } catch (error) {
    result.failures.push(`fetch failed: ${(error as Error).message}`);
  }
}

/** Why a body is not a whole exposition, or undefined when it is. */
function wholeProblem(text: string, minSamples: number): string | undefined {
  if (!text.endsWith("\n")) return `no final newline after ${text.length} chars`;
  let samples = 0;
  for (const line of text.split("\n")) if (line !== "" && !line.startsWith("#")) samples++;
  return samples >= minSamples ? undefined : `${samples} samples, expected ${minSamples}+`;
}

/** Clients that asked for `/metrics` and never read; close them all with `close()`. */
export interface NonReaders {
  /** The open connections. */
  readonly conns: readonly Deno.Conn[];
  /** Closes every connection. */
  close(): void;
}

/**
 * Opens `count` loopback connections that each send one plain-text `GET /metrics` and never
 * read the answer.
 *
 * @param port The exporter's port on 127.0.0.1.
 * @param count How many.
 * @returns The connections.
 */
export async function openNonReaders(port: number, count: number): Promise<NonReaders> {
  const request = new TextEncoder().encode("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  const conns: Deno.Conn[] = [];
  const close = () => {
    for (const conn of conns) {
      try {
        conn.close();
      } catch {
        // Closed by the server already.
      }
    }
  };
  try {
    for (let i = 0; i < count; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conns.push(conn);
      await conn.write(request);
    }
  } catch (error) {
    close();
    throw error;
  }
  return { conns, close };
}

/**
 * The peak resident set size of a process so far (`VmHWM` of `/proc/PID/status`).
 *
 * @param pid The process.
 * @returns MiB.
 */
export function peakRssMb(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN) / 1024;
}
