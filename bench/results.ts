/**
 * bench/RESULTS.md: the measurements of one bench run and the ratios derived
 * from them, written as Markdown and read back for `deno task bench -- --check`.
 * Ratios, not times, are compared: they hold across machines and loads.
 *
 * @module
 */

import type { HealthLoad } from "./health_load.ts";

/** The Go original's measurements on one tree. */
export interface GoMeasurements {
  /** Median full HTTP scrape, ms. */
  httpMs: number;
  /** p95 full HTTP scrape, ms. */
  httpP95Ms: number;
  /** Median gzip'd scrape, ms. */
  gzipMs: number;
  /** CPU per scrape, ms. */
  cpuMs: number;
  /** RSS after the scrapes, MB. */
  rssMb: number;
  /** RSS 2 s after the last scrape, MB. */
  rssQuietMb?: number;
  /** RSS before the first scrape, MB. */
  idleRssMb: number;
}

/** Our measurements on one tree, and the floor's. */
export interface SizeResult {
  /** `VMSxVCPUS`. */
  size: string;
  /** Stat files the exporter (and the floor) reads per scrape. */
  files: number;
  /** Median floor pass (open, read, close each file), ms. */
  floorMs: number;
  /** Median floor pass that also lists every dir, ms. */
  floorWalkMs: number;
  /** Median in-process collect and render, ms. */
  inProcessMs: number;
  /** Median full HTTP scrape, ms. */
  httpMs: number;
  /** p95 full HTTP scrape, ms. */
  httpP95Ms: number;
  /** Median gzip'd scrape, ms. */
  gzipMs: number;
  /** CPU per scrape, ms. */
  cpuMs: number;
  /** RSS after {@linkcode SizeResult.rssScrapes} scrapes, MB. */
  rssMb: number;
  /** Scrapes before the RSS reading. */
  rssScrapes: number;
  /**
   * RSS 2 s after the last of those scrapes, MB: what a host sees between scrapes, once the
   * exporter has given the heap back (docs/performance.md).
   */
  rssQuietMb?: number;
  /** RSS before the first scrape, MB. */
  idleRssMb: number;
  /** `/-/healthy` p95 while scrapes run back to back, ms (measured on the largest tree only). */
  healthP95Ms?: number;
  /** The Go original's, when it was measured. */
  go?: GoMeasurements;
}

/** `/-/healthy` on one tree while several clients scrape it back to back. */
export interface HealthResult extends HealthLoad {
  /** `VMSxVCPUS`. */
  size: string;
  /** Stat files in the tree. */
  files: number;
  /** Clients scraping at once. */
  clients: number;
}

/**
 * The health table: absolute figures against the goals (p95 within 50 ms on 100×16, every
 * check within the liveness timeout at 20,000 VMs), not ratios.
 *
 * @param health One row per tree.
 * @returns Markdown lines.
 */
export function healthTable(health: readonly HealthResult[]): string[] {
  if (health.length === 0) return [];
  return [
    "| tree | files | clients | median scrape | checks | health p50 | health p95 | health max | not 200 |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ...health.map((h) =>
      `| ${h.size} | ${h.files} | ${h.clients} | ${fixed(h.scrapeMs)} | ${h.checks} | ${
        fixed(h.p50Ms)
      } | ${fixed(h.p95Ms)} | ${fixed(h.maxMs)} | ${h.failed} |`
    ),
  ];
}

/** A whole run. */
export interface BenchRun {
  /** ISO date. */
  date: string;
  /** Cores the machine has. */
  cores: number;
  /** CPU model. */
  cpu: string;
  /** Deno version. */
  deno: string;
  /** Commit measured. */
  commit: string;
  /** Full HTTP scrapes timed per tree. */
  scrapes: number;
  /** Anything worth knowing about the run (load, other processes). */
  note: string;
  /** One per tree. */
  sizes: SizeResult[];
  /** `/-/healthy` under several scraping clients, one per health tree. */
  health?: HealthResult[];
}

/** Ratios of one run, keyed `SIZE ratio_name`; lower is better for all. */
export type Ratios = Map<string, number>;

/**
 * The ratios of a run: ours against the floor, and against the Go original.
 *
 * @param sizes The measurements.
 * @returns The ratios, rounded to 2 decimals.
 */
export function ratiosOf(sizes: readonly SizeResult[]): Ratios {
  const ratios: Ratios = new Map();
  const put = (size: string, name: string, value: number): void => {
    if (Number.isFinite(value)) ratios.set(`${size} ${name}`, Math.round(value * 100) / 100);
  };
  for (const s of sizes) {
    put(s.size, "in_process_vs_floor", s.inProcessMs / s.floorMs);
    put(s.size, "http_vs_floor", s.httpMs / s.floorMs);
    put(s.size, "http_p95_vs_floor", s.httpP95Ms / s.floorMs);
    put(s.size, "gzip_vs_floor", s.gzipMs / s.floorMs);
    put(s.size, "cpu_vs_floor", s.cpuMs / s.floorMs);
    if (s.healthP95Ms !== undefined) put(s.size, "health_p95_vs_floor", s.healthP95Ms / s.floorMs);
    if (s.go === undefined) continue;
    put(s.size, "http_vs_go", s.httpMs / s.go.httpMs);
    put(s.size, "gzip_vs_go", s.gzipMs / s.go.gzipMs);
    put(s.size, "cpu_vs_go", s.cpuMs / s.go.cpuMs);
    put(s.size, "rss_vs_go", s.rssMb / s.go.rssMb);
    if (s.rssQuietMb !== undefined && s.go.rssQuietMb !== undefined) {
      put(s.size, "rss_quiet_vs_go", s.rssQuietMb / s.go.rssQuietMb);
    }
  }
  return ratios;
}

function fixed(value: number | undefined, digits = 1): string {
  return value === undefined || !Number.isFinite(value) ? "–" : value.toFixed(digits);
}

/**
 * The measurements as a Markdown table (ms and MB).
 *
 * @param sizes The measurements.
 * @returns The table's lines.
 */
export function measurementTable(sizes: readonly SizeResult[]): string[] {
  const lines = [
    "| tree | files | floor | floor + listing | in process | HTTP median | HTTP p95 | gzip | CPU / scrape | RSS after N scrapes | RSS 2 s later | idle RSS | health p95 | Go HTTP | Go gzip | Go CPU / scrape | Go RSS | Go RSS 2 s later | Go idle RSS |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const s of sizes) {
    lines.push(
      `| ${s.size} | ${s.files} | ${fixed(s.floorMs)} | ${fixed(s.floorWalkMs)} | ${
        fixed(s.inProcessMs)
      } | ${fixed(s.httpMs)} | ${fixed(s.httpP95Ms)} | ${fixed(s.gzipMs)} | ${fixed(s.cpuMs)} | ${
        fixed(s.rssMb)
      } (N=${s.rssScrapes}) | ${fixed(s.rssQuietMb)} | ${fixed(s.idleRssMb)} | ${
        fixed(s.healthP95Ms)
      } | ${fixed(s.go?.httpMs)} | ${fixed(s.go?.gzipMs)} | ${fixed(s.go?.cpuMs)} | ${
        fixed(s.go?.rssMb)
      } | ${fixed(s.go?.rssQuietMb)} | ${fixed(s.go?.idleRssMb)} |`,
    );
  }
  return lines;
}

/**
 * The ratios as a Markdown table, one per line, as {@linkcode parseRatios} reads them.
 *
 * @param ratios The ratios.
 * @returns The table's lines.
 */
export function ratioTable(ratios: Ratios): string[] {
  const lines = ["| tree | ratio | value |", "|---|---|---|"];
  for (const [key, value] of ratios) {
    const [size, name] = key.split(" ");
    lines.push(`| ${size} | ${name} | ${value.toFixed(2)} |`);
  }
  return lines;
}

/**
 * Renders bench/RESULTS.md.
 *
 * @param run The run.
 * @returns The Markdown.
 */
export function renderResults(run: BenchRun): string {
  return [
    "# Benchmark results",
    "",
    "Written by `deno task bench` (see docs/performance.md); `deno task bench -- --check` fails",
    "when a ratio below is more than 25% above its value here. Times in ms, sizes in MB (10^6 bytes).",
    "",
    `- Machine: ${run.cores} cores, ${run.cpu}`,
    `- Date: ${run.date}`,
    `- Deno: ${run.deno}`,
    `- Commit: ${run.commit}`,
    `- HTTP scrapes timed per tree: ${run.scrapes} (medians and p95 after warm-up)`,
    `- Note: ${run.note}`,
    "- Trees: `bench/debugfs_tree.ts` files on the temp dir's file system (not debugfs, where files",
    "  can't be created); the floor and both exporters read the same files. The Go original also",
    "  reads `mmu_rmaps_stat` (empty, one file per VM more), having no exclude flag.",
    "",
    "## Measurements",
    "",
    ...measurementTable(run.sizes),
    "",
    ...(run.health?.length
      ? [
        "## `/-/healthy` while several clients scrape back to back",
        "",
        ...healthTable(run.health),
        "",
      ]
      : []),
    "## Ratios (lower is better)",
    "",
    ...ratioTable(ratiosOf(run.sizes)),
    "",
  ].join("\n");
}

/**
 * Reads the ratios back from bench/RESULTS.md.
 *
 * @param markdown The file's text.
 * @returns The ratios.
 */
export function parseRatios(markdown: string): Ratios {
  const ratios: Ratios = new Map();
  for (const line of markdown.split("\n")) {
    const match = /^\|\s*(\d+x\d+)\s*\|\s*([a-z0-9_]+)\s*\|\s*(\d+(?:\.\d+)?)\s*\|$/.exec(line);
    if (match) ratios.set(`${match[1]} ${match[2]}`, Number(match[3]));
  }
  return ratios;
}

/** A ratio that got worse than allowed. */
export interface Regression {
  /** `SIZE ratio_name`. */
  key: string;
  /** The committed value. */
  committed: number;
  /** This run's value. */
  current: number;
}

/**
 * Compares a run's ratios with the committed ones. Ratios present on one side only are skipped.
 *
 * @param committed The committed ratios.
 * @param current This run's.
 * @param tolerance How much worse a ratio may get (0.25: 25% above the committed one).
 * @returns The ratios more than `tolerance` above their committed value.
 */
export function findRegressions(
  committed: Ratios,
  current: Ratios,
  tolerance = 0.25,
): Regression[] {
  const regressions: Regression[] = [];
  for (const [key, value] of current) {
    const before = committed.get(key);
    if (before !== undefined && value > before * (1 + tolerance)) {
      regressions.push({ key, committed: before, current: value });
    }
  }
  return regressions;
}
