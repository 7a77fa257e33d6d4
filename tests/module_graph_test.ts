/**
 * The import graph of `main.ts` (and of the Worker scripts, which are loaded
 * by URL) has no circle, and no module imports one of a higher layer.
 * The layers, lowest first, are documented in docs/design.md ("Layers"):
 * a module may import its own layer and the ones below.
 *
 * @module
 */

import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url).href;

/** The layers, lowest first: each a name and the paths (prefixes) that belong to it. */
export const LAYERS: readonly { name: string; paths: readonly string[] }[] = [
  {
    name: "base",
    paths: [
      "src/version.ts",
      "src/build_info.json",
      "src/log/",
      // debugfs's pure parsers; its reader Workers belong to the sources layer.
      "src/debugfs/stat_bytes.ts",
      "src/debugfs/stat_value.ts",
      "src/metrics/",
      "src/stats/",
      "src/cli/flag.ts",
    ],
  },
  { name: "system", paths: ["src/system/"] },
  { name: "config", paths: ["src/config/"] },
  {
    name: "sources",
    paths: ["src/debugfs/", "src/discovery/", "src/qmp/", "src/libvirt/", "src/exposition/"],
  },
  { name: "collectors", paths: ["src/collectors/"] },
  { name: "naming", paths: ["src/naming/", "src/exporter_flags.ts", "src/exporter_metrics.ts"] },
  // The app defines the interface it serves from (http/metrics_source.ts); the exporter provides
  // it. So http/ never imports the exporter, and main.ts wires the two.
  { name: "http", paths: ["src/http/"] },
  { name: "exporter", paths: ["src/exporter.ts"] },
  { name: "cli", paths: ["src/cli/flags.ts"] },
  { name: "main", paths: ["main.ts"] },
];

/**
 * The layer of a module: the one whose longest path prefix matches.
 *
 * @param path The module's path from the repository root.
 * @returns The layer's index, or undefined when no layer holds it.
 */
export function layerOf(path: string): number | undefined {
  let best: { layer: number; length: number } | undefined;
  LAYERS.forEach((layer, index) => {
    for (const prefix of layer.paths) {
      const matches = prefix.endsWith("/") ? path.startsWith(prefix) : path === prefix;
      if (matches && (best === undefined || prefix.length > best.length)) {
        best = { layer: index, length: prefix.length };
      }
    }
  });
  return best?.layer;
}

/** One module's local imports, by path from the repository root. */
type Graph = Map<string, string[]>;

interface DenoInfo {
  modules: {
    specifier: string;
    dependencies?: { code?: { specifier?: string }; type?: { specifier?: string } }[];
  }[];
}

/** The local import graph of `roots`, from `deno info --json`. */
async function moduleGraph(roots: readonly string[]): Promise<Graph> {
  const graph: Graph = new Map();
  for (const root of roots) {
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", root],
      cwd: new URL(ROOT).pathname,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(code, 0, new TextDecoder().decode(stderr));
    const info = JSON.parse(new TextDecoder().decode(stdout)) as DenoInfo;
    for (const module of info.modules) {
      if (!module.specifier.startsWith(ROOT)) continue;
      const deps = (module.dependencies ?? []).flatMap((d) =>
        [d.code?.specifier, d.type?.specifier].filter((s): s is string =>
          s?.startsWith(ROOT) ?? false
        )
      ).map((s) => s.slice(ROOT.length));
      graph.set(module.specifier.slice(ROOT.length), [...new Set(deps)]);
    }
  }
  return graph;
}

/** The Worker scripts (`*_worker.ts`) under src/: main.ts loads them by URL, not by import. */
async function workerScripts(): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for await (const entry of Deno.readDir(new URL(dir, ROOT))) {
      const path = `${dir}${entry.name}`;
      if (entry.isDirectory) await walk(`${path}/`);
      else if (entry.name.endsWith("_worker.ts")) found.push(path);
    }
  };
  await walk("src/");
  return found;
}

/**
 * The circles of a graph: each strongly connected component of more than one
 * module, or a module that imports itself (Tarjan's algorithm).
 *
 * @param graph Imports by module.
 * @returns The circles, each as its modules.
 */
export function circles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (node: string): void => {
    index.set(node, index.size);
    low.set(node, index.get(node)!);
    stack.push(node);
    onStack.add(node);
    for (const next of graph.get(node) ?? []) {
      if (!index.has(next)) {
        visit(next);
        low.set(node, Math.min(low.get(node)!, low.get(next)!));
      } else if (onStack.has(next)) {
        low.set(node, Math.min(low.get(node)!, index.get(next)!));
      }
    }
    if (low.get(node) !== index.get(node)) return;
    const component: string[] = [];
    let member: string;
    do {
      member = stack.pop()!;
      onStack.delete(member);
      component.push(member);
    } while (member !== node);
    if (component.length > 1 || (graph.get(node) ?? []).includes(node)) found.push(component);
  };
  for (const node of graph.keys()) if (!index.has(node)) visit(node);
  return found;
}

/**
 * The imports that climb: from a module to one of a higher layer.
 *
 * @param graph Imports by module.
 * @returns Each such import as `from -> to (layer -> layer)`.
 */
export function climbs(graph: ReadonlyMap<string, readonly string[]>): string[] {
  const name = (layer: number | undefined): string =>
    layer === undefined ? "none" : LAYERS[layer]!.name;
  return [...graph].flatMap(([from, deps]) =>
    deps.flatMap((to) => {
      const [a, b] = [layerOf(from), layerOf(to)];
      return a !== undefined && b !== undefined && b <= a
        ? []
        : [`${from} -> ${to} (${name(a)} -> ${name(b)})`];
    })
  );
}

Deno.test("circles() and climbs() find a circle and a climbing import", () => {
  const graph = new Map([
    ["src/exporter.ts", ["src/http/app.ts"]],
    ["src/http/app.ts", ["src/exporter.ts"]],
    ["src/log/logger.ts", []],
  ]);
  assert.deepEqual(circles(graph).map((c) => c.sort()), [["src/exporter.ts", "src/http/app.ts"]]);
  assert.deepEqual(climbs(graph), ["src/http/app.ts -> src/exporter.ts (http -> exporter)"]);
  assert.deepEqual(climbs(new Map([["src/nowhere.ts", ["src/log/logger.ts"]]])), [
    "src/nowhere.ts -> src/log/logger.ts (none -> base)",
  ]);
});

Deno.test("main.ts's module graph has no circle and no import that climbs a layer", async () => {
  const graph = await moduleGraph(["main.ts", ...await workerScripts()]);
  assert.ok(graph.size > 50, `${graph.size} modules`);
  assert.ok([...graph.keys()].some((path) => path.endsWith("_worker.ts")), "a Worker script");
  assert.deepEqual([...graph.keys()].filter((path) => layerOf(path) === undefined), []);
  assert.deepEqual(circles(graph), []);
  assert.deepEqual(climbs(graph), []);
});
