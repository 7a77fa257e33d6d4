import assert from "node:assert/strict";
import { catalogTable, replaceTable, TABLE_END, TABLE_START } from "../../tools/catalog_table.ts";

/** A table's cells, whatever padding `deno fmt` gave it. */
function cells(table: string): string[][] {
  return table.trim().split("\n").map((row) =>
    row.split("|").slice(1, -1).map((cell) => cell.trim().replace(/^-+$/, "---"))
  );
}

Deno.test("catalogTable() is docs/metrics.md's catalog table (run tools/catalog_table.ts --write)", async () => {
  const readme = await Deno.readTextFile(new URL("../../docs/metrics.md", import.meta.url));
  const start = readme.indexOf(TABLE_START);
  const end = readme.indexOf(TABLE_END);
  assert.ok(start !== -1 && end > start, "docs/metrics.md has the table markers");
  const inReadme = readme.slice(start + TABLE_START.length, end);
  assert.deepEqual(cells(inReadme), cells(catalogTable()));
});

Deno.test("replaceTable() replaces what is between the markers, and refuses a page without them", () => {
  const readme = `a\n${TABLE_START}\nold\n${TABLE_END}\nb\n`;
  assert.equal(replaceTable(readme, "| x |\n"), `a\n${TABLE_START}\n\n| x |\n\n${TABLE_END}\nb\n`);
  assert.throws(() => replaceTable("no markers", "| x |\n"), SyntaxError);
});
