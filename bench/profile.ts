/**
 * Where a scrape's time goes: `deno run -A bench/profile.ts [100x16] [SCRAPES]`
 * writes a tree, runs in-process scrapes under V8's CPU profiler (in a child
 * `deno run --cpu-prof`), and prints the phases (collect vs render) and the
 * functions and modules with the most self time.
 *
 * @module
 */

import { renderText } from "../src/exposition/text_format.ts";
import { buildApp } from "../tests/support/sample_exporter.ts";
import { parseShape, planTree, writeTree } from "./debugfs_tree.ts";
import { median } from "./probe.ts";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/**
 * Self time per function and per module of a V8 CPU profile.
 *
 * @param profile The parsed `.cpuprofile`.
 * @returns Milliseconds by `function (module:line)` and by module, largest first.
 */
export function selfTimes(
  profile: CpuProfile,
): { functions: [string, number][]; modules: [string, number][] } {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const functions = new Map<string, number>();
  const modules = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const frame = byId.get(id)?.callFrame;
    const ms = (profile.timeDeltas[i] ?? 0) / 1000;
    const module = frame?.url.replace(/^.*\/(src|bench|tests|hono@[^/]+)\//, "$1/") || "(native)";
    const name = `${frame?.functionName || "(anonymous)"} (${module}:${
      (frame?.lineNumber ?? 0) + 1
    })`;
    functions.set(name, (functions.get(name) ?? 0) + ms);
    modules.set(module, (modules.get(module) ?? 0) + ms);
  });
  const sorted = (m: Map<string, number>): [string, number][] => [...m].sort((a, b) => b[1] - a[1]);
  return { functions: sorted(functions), modules: sorted(modules) };
}

async function child(root: string, scrapes: number): Promise<void> {
  const { exporter } = await buildApp([
    `--collector.kvmdebug.dir=${root}/kvm`,
    `--path.procfs=${root}/proc`,
    `--path.sysfs=${root}/sys`,
  ]);
  const collect: number[] = [];
  const render: number[] = [];
  for (let i = 0; i < scrapes; i++) {
    const start = performance.now();
    const families = await exporter.scrape();
    const mid = performance.now();
    renderText(families);
    collect.push(mid - start);
    render.push(performance.now() - mid);
  }
  exporter.close();
  console.log(
    `median of ${scrapes} in-process scrapes: collect ${median(collect).toFixed(1)} ms, render ${
      median(render).toFixed(1)
    } ms`,
  );
}

async function parent(size: string, scrapes: number): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "kvm_exporter_profile_" });
  try {
    await writeTree(root, planTree(parseShape(size)));
    const { success } = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--cpu-prof",
        `--cpu-prof-dir=${root}/prof`,
        new URL(import.meta.url).pathname,
        "--child",
        root,
        String(scrapes),
      ],
    }).spawn().status;
    if (!success) throw new Error("The profiled child failed");
    const [file] = await Array.fromAsync(Deno.readDir(`${root}/prof`));
    const profile = JSON.parse(await Deno.readTextFile(`${root}/prof/${file!.name}`));
    const { functions, modules } = selfTimes(profile);
    const total = modules.reduce((sum, [, ms]) => sum + ms, 0);
    console.log(
      `\nself time per scrape by module (${size}, total ${(total / scrapes).toFixed(1)} ms):`,
    );
    for (const [name, ms] of modules.slice(0, 15)) {
      console.log(`${(ms / scrapes).toFixed(1).padStart(8)} ms  ${name}`);
    }
    console.log("\nby function:");
    for (const [name, ms] of functions.slice(0, 30)) {
      console.log(`${(ms / scrapes).toFixed(1).padStart(8)} ms  ${name}`);
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

if (import.meta.main) {
  if (Deno.args[0] === "--child") await child(Deno.args[1]!, Number(Deno.args[2]));
  else await parent(Deno.args[0] ?? "100x16", Number(Deno.args[1] ?? 20));
}
