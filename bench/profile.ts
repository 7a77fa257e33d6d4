/**
 * Where a scrape's time and allocations go.
 *
 * - `deno run -A bench/profile.ts [100x16] [SCRAPES]` writes a tree, runs
 *   in-process scrapes under V8's CPU profiler (in a child
 *   `deno run -A --cpu-prof`), and prints the phases (collect vs render) and
 *   the functions and modules with the most self time.
 * - `deno run -A bench/profile.ts 10x4 [SCRAPES] --http` runs the exporter
 *   as the bench does (`main.ts` with the documented permissions:
 *   `--allow-read=TREE --allow-net=127.0.0.1:PORT --allow-env=KVM_EXPORTER_*`,
 *   plus `--inspect` on loopback), warms it up, then profiles SCRAPES full
 *   HTTP scrapes through the inspector: CPU self time, then (in a second
 *   run of SCRAPES scrapes) the sampling heap profiler's allocations,
 *   collected objects included. Warm-up and start are not in the profiles.
 *
 * A function's line is the line of the JavaScript Deno runs (types stripped), not of the
 * TypeScript source.
 *
 * @module
 */

import { renderText } from "../src/exposition/text_format.ts";
import { buildApp } from "../tests/support/sample_exporter.ts";
import { parseShape, planTree, writeTree } from "./debugfs_tree.ts";
import { freePort, median, probe, waitUntilUp } from "./probe.ts";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** A node of V8's sampling heap profile. */
interface HeapNode {
  callFrame: CallFrame;
  selfSize: number;
  children: HeapNode[];
}

/**
 * Time per module of ours (`src/`), callees included: each sample counts once
 * for every module of ours on its stack. Shows which stage the time is spent
 * under, natives (opens, reads) included.
 *
 * @param profile The parsed `.cpuprofile`.
 * @returns Milliseconds by module, largest first.
 */
export function totalTimes(profile: CpuProfile): [string, number][] {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parents = new Map<number, number>();
  for (const node of profile.nodes) for (const c of node.children ?? []) parents.set(c, node.id);
  const modules = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const ms = (profile.timeDeltas[i] ?? 0) / 1000;
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parents.get(at)) {
      const module = moduleOf(byId.get(at)?.callFrame);
      if (module.startsWith("src/")) seen.add(module);
    }
    for (const module of seen) modules.set(module, (modules.get(module) ?? 0) + ms);
  });
  return [...modules].sort((a, b) => b[1] - a[1]);
}

/** What a profile's costs are, largest first: by `function (module:line)` and by module. */
export interface SelfCosts {
  /** Cost by function. */
  functions: [string, number][];
  /** Cost by module. */
  modules: [string, number][];
}

/** The module of a frame, relative to the repo or the package, or `(native)`. */
function moduleOf(frame: CallFrame | undefined): string {
  return frame?.url.replace(/^.*\/(src|bench|tests|hono@[^/]+)\//, "$1/") || "(native)";
}

function functionOf(frame: CallFrame | undefined): string {
  return `${frame?.functionName || "(anonymous)"} (${moduleOf(frame)}:${
    (frame?.lineNumber ?? 0) + 1
  })`;
}

function sortedCosts(
  functions: Map<string, number>,
  modules: Map<string, number>,
): SelfCosts {
  const sorted = (m: Map<string, number>): [string, number][] => [...m].sort((a, b) => b[1] - a[1]);
  return { functions: sorted(functions), modules: sorted(modules) };
}

/**
 * Self time per function and per module of a V8 CPU profile.
 *
 * @param profile The parsed `.cpuprofile`.
 * @returns Milliseconds by `function (module:line)` and by module, largest first.
 */
export function selfTimes(profile: CpuProfile): SelfCosts {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const functions = new Map<string, number>();
  const modules = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const frame = byId.get(id)?.callFrame;
    const ms = (profile.timeDeltas[i] ?? 0) / 1000;
    const name = functionOf(frame);
    const module = moduleOf(frame);
    functions.set(name, (functions.get(name) ?? 0) + ms);
    modules.set(module, (modules.get(module) ?? 0) + ms);
  });
  return sortedCosts(functions, modules);
}

/**
 * Bytes allocated per function and per module (self size) of a V8 sampling
 * heap profile. A builtin's allocations (`filter`, `then`, `subarray`) are
 * named with the function of ours or the runtime's that called it, and
 * counted to that function's module.
 *
 * @param head The profile's root node.
 * @returns Bytes by `function (module:line)` and by module, largest first.
 */
export function selfAllocations(head: HeapNode): SelfCosts {
  const functions = new Map<string, number>();
  const modules = new Map<string, number>();
  const stack: { node: HeapNode; caller: CallFrame | undefined }[] = [{
    node: head,
    caller: undefined,
  }];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const { node, caller } = item;
    const native = node.callFrame.url === "";
    const frame = native ? caller : node.callFrame;
    for (const child of node.children) stack.push({ node: child, caller: frame });
    if (node.selfSize === 0) continue;
    const name = native && caller !== undefined
      ? `${node.callFrame.functionName || "(anonymous)"} <- ${functionOf(caller)}`
      : functionOf(node.callFrame);
    const module = moduleOf(frame);
    functions.set(name, (functions.get(name) ?? 0) + node.selfSize);
    modules.set(module, (modules.get(module) ?? 0) + node.selfSize);
  }
  return sortedCosts(functions, modules);
}

function printCosts(
  title: string,
  costs: SelfCosts,
  format: { per: number; unit: string; scale: number; digits: number },
): void {
  const total = costs.modules.reduce((sum, [, v]) => sum + v, 0);
  const show = (v: number): string =>
    (v / format.per / format.scale).toFixed(format.digits).padStart(8);
  console.log(`\n${title} (total ${show(total).trim()} ${format.unit}), by module:`);
  for (const [name, v] of costs.modules.slice(0, 25)) {
    console.log(`${show(v)} ${format.unit}  ${name}`);
  }
  console.log("\nby function:");
  for (const [name, v] of costs.functions.slice(0, 30)) {
    console.log(`${show(v)} ${format.unit}  ${name}`);
  }
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

async function inProcess(root: string, size: string, scrapes: number): Promise<void> {
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
  printCosts(`self time per in-process scrape (${size})`, selfTimes(profile), {
    per: scrapes,
    unit: "ms",
    scale: 1,
    digits: 1,
  });
}

/** A Chrome DevTools Protocol session on a WebSocket: one call at a time. */
class Inspector {
  #socket: WebSocket;
  #next = 1;
  #waiting = new Map<number, (message: { result?: unknown; error?: unknown }) => void>();

  private constructor(socket: WebSocket) {
    this.#socket = socket;
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      this.#waiting.get(message.id)?.(message);
      this.#waiting.delete(message.id);
    };
  }

  static async connect(port: number): Promise<Inspector> {
    const [target] = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
    const socket = new WebSocket(target.webSocketDebuggerUrl);
    await new Promise((resolve, reject) => {
      socket.onopen = resolve;
      socket.onerror = reject;
    });
    return new Inspector(socket);
  }

  call<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const id = this.#next++;
    this.#socket.send(JSON.stringify({ id, method, params }));
    return new Promise((resolve, reject) => {
      this.#waiting.set(id, (message) => {
        if (message.error !== undefined) reject(new Error(JSON.stringify(message.error)));
        else resolve(message.result as T);
      });
    });
  }

  close(): void {
    this.#socket.close();
  }
}

async function scrapeTimes(port: number, scrapes: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < scrapes; i++) {
    const { ms, status } = await probe(port, "/metrics");
    if (status !== 200) throw new Error(`/metrics answered ${status}`);
    times.push(ms);
  }
  return times;
}

async function overHttp(root: string, size: string, scrapes: number): Promise<void> {
  const port = freePort();
  const inspectPort = freePort();
  const server = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      // The documented permissions, as bench/bench.ts runs the exporter.
      `--allow-read=${root}`,
      `--allow-net=127.0.0.1:${port}`,
      "--allow-env=KVM_EXPORTER_*",
      `--inspect=127.0.0.1:${inspectPort}`,
      new URL("../main.ts", import.meta.url).pathname,
      `--collector.kvmdebug.dir=${root}/kvm`,
      `--path.procfs=${root}/proc`,
      `--path.sysfs=${root}/sys`,
      `--web.listen-address=127.0.0.1:${port}`,
      // As the bench runs it: the same files as the floor and the Go original.
      "--no-collector.vcpu_time",
      "--no-collector.vm_process",
      "--log.level=warn",
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    await waitUntilUp(port, "/-/healthy");
    await scrapeTimes(port, 30);
    const inspector = await Inspector.connect(inspectPort);
    await inspector.call("Profiler.enable");
    await inspector.call("Profiler.setSamplingInterval", { interval: 100 });
    await inspector.call("Profiler.start");
    const times = await scrapeTimes(port, scrapes);
    const { profile } = await inspector.call<{ profile: CpuProfile }>("Profiler.stop");
    console.log(`median of ${scrapes} HTTP scrapes: ${median(times).toFixed(1)} ms`);
    printCosts(`self time per HTTP scrape (${size}, main thread)`, selfTimes(profile), {
      per: scrapes,
      unit: "ms",
      scale: 1,
      digits: 2,
    });
    console.log("\ntime per HTTP scrape under each module of ours, callees included:");
    for (const [name, ms] of totalTimes(profile).slice(0, 25)) {
      console.log(`${(ms / scrapes).toFixed(2).padStart(8)} ms  ${name}`);
    }
    await inspector.call("HeapProfiler.enable");
    await inspector.call("HeapProfiler.startSampling", {
      samplingInterval: 4096,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
    await scrapeTimes(port, scrapes);
    const heap = await inspector.call<{ profile: { head: HeapNode } }>(
      "HeapProfiler.stopSampling",
    );
    printCosts(
      `allocated per HTTP scrape (${size}, main thread, sampled)`,
      selfAllocations(heap.profile.head),
      { per: scrapes, unit: "kB", scale: 1000, digits: 1 },
    );
    inspector.close();
  } finally {
    server.kill("SIGTERM");
    await server.status;
  }
}

async function parent(args: string[]): Promise<void> {
  const http = args.includes("--http");
  const [size = "100x16", scrapes = "20"] = args.filter((a) => a !== "--http");
  const root = await Deno.makeTempDir({ prefix: "kvm_exporter_profile_" });
  try {
    await writeTree(root, planTree(parseShape(size)));
    if (http) await overHttp(root, size, Number(scrapes));
    else await inProcess(root, size, Number(scrapes));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

if (import.meta.main) {
  if (Deno.args[0] === "--child") await child(Deno.args[1]!, Number(Deno.args[2]));
  else await parent(Deno.args);
}
