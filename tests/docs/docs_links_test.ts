/**
 * The README stays an operator's front page, every page of `docs/` is found from it, no
 * relative link in them points at a file or heading that is not there, and the module map of
 * docs/design.md names the folders `src/` has.
 *
 * @module
 */

import { deepStrictEqual, ok } from "node:assert/strict";

const root = new URL("../../", import.meta.url).pathname;
const read = (path: string): Promise<string> => Deno.readTextFile(`${root}${path}`);

/** The README's length at most, in lines (node_exporter's is about 400). */
const README_MAX_LINES = 400;

/** The Markdown files whose links are checked: the README and every page of docs/. */
async function markdownFiles(): Promise<string[]> {
  const pages: string[] = [];
  for await (const entry of Deno.readDir(`${root}docs`)) {
    if (entry.isFile && entry.name.endsWith(".md")) pages.push(`docs/${entry.name}`);
  }
  return ["README.md", ...pages.sort()];
}

/** The text outside fenced code blocks, with inline code spans blanked. */
function prose(markdown: string): string {
  let fenced = false;
  const lines: string[] = [];
  for (const line of markdown.split("\n")) {
    if (line.startsWith("```")) fenced = !fenced;
    else if (!fenced) lines.push(line);
  }
  return lines.join("\n").replace(/`[^`\n]*`/g, "code");
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces as dashes. */
function slug(heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\p{M}\s_-]/gu, "").replace(/\s/g, "-");
}

/** The anchors of a page's headings, repeats numbered as GitHub numbers them. */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const result = new Set<string>();
  let fenced = false;
  for (const line of markdown.split("\n")) {
    if (line.startsWith("```")) fenced = !fenced;
    const heading = fenced ? null : /^#{1,6} (.*)$/.exec(line);
    if (heading === null) continue;
    const base = slug(heading[1]!);
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    result.add(count === 0 ? base : `${base}-${count}`);
  }
  return result;
}

/** The relative link targets of a page (web links and mail addresses left out). */
function relativeLinks(markdown: string): string[] {
  return [...prose(markdown).matchAll(/\]\(([^)\s]+)\)/g)]
    .map((match) => match[1]!)
    .filter((target) => !/^[a-z]+:/.test(target));
}

Deno.test("slug() makes GitHub's heading anchors", () => {
  const cases: [string, string][] = [
    ["Permissions: why the bind mounts", "permissions-why-the-bind-mounts"],
    ["From source, with `deno run`", "from-source-with-deno-run"],
    ["Kubernetes (KubeVirt)", "kubernetes-kubevirt"],
    ["kvm_stat (debugfs)", "kvm_stat-debugfs"],
    ["Naming schemes: `--metrics.naming`", "naming-schemes---metricsnaming"],
    ["What a scrape costs (measured)", "what-a-scrape-costs-measured"],
  ];
  for (const [heading, anchor] of cases) deepStrictEqual(slug(heading), anchor, heading);
});

Deno.test("relativeLinks() skips code, web links and mail addresses", () => {
  const page = "[a](docs/a.md) [b](https://x/y) `[c](c.md)`\n```\n[d](d.md)\n```\n[e](#e)\n";
  deepStrictEqual(relativeLinks(page), ["docs/a.md", "#e"]);
});

Deno.test(`the README has at most ${README_MAX_LINES} lines`, async () => {
  const lines = (await read("README.md")).trimEnd().split("\n").length;
  ok(lines <= README_MAX_LINES, `README.md has ${lines} lines`);
});

Deno.test("the README links every page of docs/", async () => {
  const links = new Set(relativeLinks(await read("README.md")).map((link) => link.split("#")[0]));
  for (const page of (await markdownFiles()).slice(1)) {
    ok(links.has(page), `README.md does not link ${page}`);
  }
});

Deno.test("every relative link of the README and docs/ names a file, and a heading there", async () => {
  const problems: string[] = [];
  for (const file of await markdownFiles()) {
    const dir = file.includes("/") ? file.slice(0, file.lastIndexOf("/") + 1) : "";
    for (const link of relativeLinks(await read(file))) {
      const [path, anchor] = link.split("#") as [string, string | undefined];
      const target = path === "" ? file : new URL(path, `file://${root}${dir}`).pathname;
      const relative = target.startsWith(root) ? target.slice(root.length) : target;
      let text: string;
      try {
        text = await read(relative);
      } catch {
        problems.push(`${file}: ${link}: no file ${relative}`);
        continue;
      }
      if (anchor !== undefined && !anchors(text).has(anchor)) {
        problems.push(`${file}: ${link}: no heading #${anchor} in ${relative}`);
      }
    }
  }
  deepStrictEqual(problems, []);
});

Deno.test("docs/design.md's module map names every folder of src/, and no other", async () => {
  const design = await read("docs/design.md");
  const map = /## The code, one folder per step\n\n```\n([^`]*)```/.exec(design)?.[1];
  ok(map !== undefined, "docs/design.md has the module map");
  const named = [...map.matchAll(/^(src\/[a-z_]+)\//gm)].map((match) => match[1]!).sort();
  const folders: string[] = [];
  for await (const entry of Deno.readDir(`${root}src`)) {
    if (entry.isDirectory) folders.push(`src/${entry.name}`);
  }
  deepStrictEqual(named, folders.sort());
});
