/**
 * Prints docs/metrics.md's table of the catalog's stats in both naming schemes,
 * or with `--write` replaces it in docs/metrics.md between its markers. A
 * test checks that the page's table is what this prints.
 *
 * Usage: `deno run --allow-read=docs/metrics.md --allow-write=docs/metrics.md tools/catalog_table.ts --write`
 *
 * @module
 */

import { compatStatFamily } from "../src/naming/compat.ts";
import { prometheusName } from "../src/naming/prometheus.ts";
import { CATALOG, type CatalogEntry, catalogType } from "../src/stats/catalog.ts";
import type { StatLevel } from "../src/stats/stat.ts";

/** The line before the table in docs/metrics.md. */
export const TABLE_START = "<!-- catalog-table:start (tools/catalog_table.ts --write) -->";
/** The line after the table in docs/metrics.md. */
export const TABLE_END = "<!-- catalog-table:end -->";

function isHistogram(entry: CatalogEntry): boolean {
  return entry.kind === "log2_hist" || entry.kind === "linear_hist";
}

/** Levels a stat is read at: debugfs sums VM stats at the root and vCPU stats up the tree. */
function levels(entry: CatalogEntry): StatLevel[] {
  if (entry.group === "debugfs") return ["vcpu"];
  if (isHistogram(entry)) return ["vcpu"]; // From QMP; debugfs's *_hist files hold one number.
  return entry.target === "vm" ? ["host", "vm"] : ["host", "vm", "vcpu"];
}

function compatNames(entry: CatalogEntry): string[] {
  // Compat exports debugfs hist files as gauges at the root and VM level, and no QMP histogram.
  const at: StatLevel[] = isHistogram(entry) ? ["host", "vm"] : levels(entry);
  const stems = new Set(at.map((l) => (l === "vcpu" ? `vcpu_${entry.name}` : entry.name)));
  return [...stems].map((stem) => compatStatFamily(stem, "").name);
}

function prometheusNames(entry: CatalogEntry): string[] {
  const type = catalogType(entry.name)!;
  if (entry.name === "pid") return ["kvm_vcpu_info{thread_id}"];
  return levels(entry).map((level) => prometheusName(level, entry.name, type));
}

function code(names: string[]): string {
  return names.map((n) => `\`${n}\``).join("<br>");
}

/**
 * The Markdown table of every catalog stat.
 *
 * @returns The table, one line per stat, ending with a newline.
 */
export function catalogTable(): string {
  const rows = [
    "| stat | kernel | kind | compat | prometheus | meaning |",
    "| --- | --- | --- | --- | --- | --- |",
  ];
  for (const entry of CATALOG) {
    const unit = entry.unit === "seconds" ? ", ns" : "";
    rows.push(
      `| \`${entry.name}\` | ${entry.group} ${entry.target} | ${entry.kind}${unit} | ${
        code(compatNames(entry))
      } | ${code(prometheusNames(entry))} | ${entry.help} |`,
    );
  }
  return `${rows.join("\n")}\n`;
}

/**
 * Replaces the table between the markers of a page.
 *
 * @param readme The page's text.
 * @param table The table.
 * @returns The new text.
 * @throws {SyntaxError} When the markers are missing.
 */
export function replaceTable(readme: string, table: string): string {
  const start = readme.indexOf(TABLE_START);
  const end = readme.indexOf(TABLE_END);
  if (start === -1 || end < start) throw new SyntaxError("Cannot find the catalog table markers");
  return `${readme.slice(0, start + TABLE_START.length)}\n\n${table}\n${readme.slice(end)}`;
}

if (import.meta.main) {
  const table = catalogTable();
  if (Deno.args.includes("--write")) {
    const path = new URL("../docs/metrics.md", import.meta.url);
    await Deno.writeTextFile(path, replaceTable(await Deno.readTextFile(path), table));
  } else {
    console.log(table);
  }
}
