/**
 * `deno task bench`: what a scrape costs on synthetic debugfs trees of real
 * hosts' shape, against the floor (bench/floor.c) and, when
 * `KVM_EXPORTER_GO_BIN` names a build of it, the original Go exporter, all
 * measured interleaved in one run. Prints the ratios and writes
 * bench/RESULTS.md; `--check` instead fails when a ratio is more than 25%
 * above the committed one.
 *
 * Options: `--sizes=10x4,100x16,400x8`, `--scrapes=20`, `--warmup=3`,
 * `--rss-scrapes=1000` (RSS after that many scrapes, on trees of at most
 * 20,000 files; larger trees report RSS after the scrapes already made; and
 * RSS again 2 s later),
 * `--health=100x16,20000x1` (trees on which `/-/healthy` is probed while
 * `--health-clients=4` clients scrape `--health-scrapes=3` times each; the
 * 20,000-VM tree takes minutes to write),
 * `--check`, `--tolerance=0.25`, `--out=bench/RESULTS.md`, `--note=TEXT`.
 * `--lockdown` runs the lockdown mode instead (bench/lockdown.ts: `--sizes`, `--scrapes`,
 * `--rounds=3`, `--baseline=DIR`), which writes nothing.
 * A run with fewer sizes, scrapes or RSS scrapes than the defaults writes
 * RESULTS.md only when `--out` names a file.
 *
 * @module
 */

import { renderText } from "../src/exposition/text_format.ts";
import { buildApp } from "../tests/support/sample_exporter.ts";
import { countStatFiles, parseShape, planTree, writeTree } from "./debugfs_tree.ts";
import { compileFloor, Floor } from "./floor.ts";
import { healthUnderLoad } from "./health_load.ts";
import { RUNTIME_V8_FLAGS } from "../tools/compile.ts";
import { lockdownBench, type LockdownBenchOptions, parseLockdownArgs } from "./lockdown.ts";
import { cpuMs, freePort, median, percentile, probe, rssMb, waitUntilUp } from "./probe.ts";
import {
  type BenchRun,
  findRegressions,
  type GoMeasurements,
  type HealthResult,
  healthTable,
  measurementTable,
  parseRatios,
  ratiosOf,
  ratioTable,
  renderResults,
  type SizeResult,
} from "./results.ts";

const DEFAULT_SIZES = ["10x4", "100x16", "400x8"];
const DEFAULT_HEALTH_SIZES = ["100x16", "20000x1"];
const EXCLUDE = "^mmu_rmaps_stat$";
const RSS_MAX_FILES = 20_000;
const QUIET_WAIT_MS = 2_000;

/** The bench's options. */
export interface BenchOptions {
  sizes: string[];
  scrapes: number;
  warmup: number;
  rssScrapes: number;
  healthSizes: string[];
  healthClients: number;
  healthScrapes: number;
  check: boolean;
  tolerance: number;
  out: string | undefined;
  note: string;
}

/**
 * Parses the bench's command line.
 *
 * @param args The arguments.
 * @returns The options.
 */
export function parseBenchArgs(args: readonly string[]): BenchOptions {
  const options: BenchOptions = {
    sizes: DEFAULT_SIZES,
    scrapes: 20,
    warmup: 3,
    rssScrapes: 1000,
    healthSizes: DEFAULT_HEALTH_SIZES,
    healthClients: 4,
    healthScrapes: 3,
    check: false,
    tolerance: 0.25,
    out: undefined,
    note: "",
  };
  for (const arg of args) {
    const [name, value = ""] = arg.split(/=(.*)/s);
    if (name === "--sizes") options.sizes = value.split(",");
    else if (name === "--scrapes") options.scrapes = positive(name, value);
    else if (name === "--warmup") options.warmup = positive(name, value);
    else if (name === "--rss-scrapes") options.rssScrapes = positive(name, value);
    else if (name === "--health") options.healthSizes = value.split(",");
    else if (name === "--health-clients") options.healthClients = positive(name, value);
    else if (name === "--health-scrapes") options.healthScrapes = positive(name, value);
    else if (name === "--tolerance") options.tolerance = Number(value);
    else if (name === "--out") options.out = value;
    else if (name === "--note") options.note = value;
    else if (arg === "--check") options.check = true;
    else throw new Error(`Unknown bench option "${arg}"`);
  }
  options.sizes.forEach(parseShape);
  options.healthSizes.forEach(parseShape);
  return options;
}

function positive(name: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) {
    throw new Error(`${name} must be a positive integer, got "${value}"`);
  }
  return n;
}

/** A running exporter process and its stderr's tail. */
interface Server {
  name: string;
  port: number;
  child: Deno.ChildProcess;
  log: string[];
}

function spawnServer(name: string, command: string, args: string[], port: number): Server {
  const child = new Deno.Command(command, { args, stdout: "null", stderr: "piped" }).spawn();
  const log: string[] = [];
  (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      log.push(chunk);
      if (log.length > 50) log.shift();
    }
  })();
  return { name, port, child, log };
}

/**
 * The floor and the Go original read debugfs only: the vcpu_time collector (one schedstat per
 * vCPU) and the vm_process collector (three procfs files per VM), both on by default, are off in
 * the bench so that every ratio compares the same files.
 */
const SAME_WORK_AS_THE_FLOOR = ["--no-collector.vcpu_time", "--no-collector.vm_process"];

/**
 * Stat files past which a tree's scrape does not fit `RUNTIME_V8_FLAGS`' old-space limit (the
 * 20,000-VM tree: 1.4 million files); its exporter runs with V8's default, as docs/performance.md
 * tells such a host's operator to.
 */
const DEFAULT_HEAP_FILES = 1_000_000;

function spawnOurs(root: string, files: number): Server {
  const port = freePort();
  const heap = files > DEFAULT_HEAP_FILES ? ["--v8-flags=--max-old-space-size=0"] : [];
  const main = new URL("../main.ts", import.meta.url).pathname;
  // The demo task's permissions and V8 flags, on this tree and a loopback port.
  return spawnServer("ours", Deno.execPath(), [
    "run",
    RUNTIME_V8_FLAGS,
    ...heap,
    `--allow-read=${root}`,
    `--allow-net=127.0.0.1:${port}`,
    "--allow-env=KVM_EXPORTER_*",
    main,
    `--collector.kvmdebug.dir=${root}/kvm`,
    `--path.procfs=${root}/proc`,
    `--path.sysfs=${root}/sys`,
    `--web.listen-address=127.0.0.1:${port}`,
    ...SAME_WORK_AS_THE_FLOOR,
  ], port);
}

function spawnGo(binary: string, root: string): Server {
  const port = freePort();
  // The original needs a vm.yaml naming every VM dir, and reads every file (no exclude flag).
  return spawnServer("go", binary, [
    `--collector.kvmdebug.dir=${root}/kvm`,
    `--collector.vmmap.path=${root}/vm.yaml`,
    `--web.listen-address=127.0.0.1:${port}`,
  ], port);
}

async function stopServer(server: Server): Promise<void> {
  try {
    server.child.kill("SIGTERM");
  } catch {
    // Already gone.
  }
  await server.child.status;
}

async function scrape(server: Server, gzip = false): Promise<number> {
  const { ms, status } = await probe(server.port, "/metrics", gzip);
  if (status !== 200) {
    throw new Error(`${server.name} answered ${status} to /metrics: ${server.log.join("")}`);
  }
  return ms;
}

/** Times each server's scrapes interleaved with floor passes; CPU over the plain scrapes. */
async function interleaved(
  servers: Server[],
  floor: Floor,
  scrapes: number,
): Promise<
  { floor: number[]; walk: number[]; plain: number[][]; gzip: number[][]; cpu: number[] }
> {
  const plain = servers.map(() => [] as number[]);
  const gzip = servers.map(() => [] as number[]);
  const floorTimes: number[] = [];
  const walkTimes: number[] = [];
  const cpuBefore = servers.map((s) => cpuMs(s.child.pid));
  for (let i = 0; i < scrapes; i++) {
    floorTimes.push(await floor.pass("read"));
    const order = i % 2 === 0 ? servers.keys() : [...servers.keys()].reverse().values();
    for (const k of order) plain[k]!.push(await scrape(servers[k]!));
  }
  const cpu = servers.map((s, k) => (cpuMs(s.child.pid) - cpuBefore[k]!) / scrapes);
  for (let i = 0; i < scrapes; i++) {
    walkTimes.push(await floor.pass("walk"));
    const order = i % 2 === 0 ? servers.keys() : [...servers.keys()].reverse().values();
    for (const k of order) gzip[k]!.push(await scrape(servers[k]!, true));
  }
  return { floor: floorTimes, walk: walkTimes, plain, gzip, cpu };
}

async function inProcess(root: string, floor: Floor, options: BenchOptions): Promise<number> {
  const { exporter } = await buildApp([
    `--collector.kvmdebug.dir=${root}/kvm`,
    `--path.procfs=${root}/proc`,
    `--path.sysfs=${root}/sys`,
    ...SAME_WORK_AS_THE_FLOOR,
  ]);
  for (let i = 0; i < options.warmup; i++) renderText(await exporter.scrape());
  const times: number[] = [];
  try {
    for (let i = 0; i < options.scrapes; i++) {
      await floor.pass();
      const start = performance.now();
      renderText(await exporter.scrape());
      times.push(performance.now() - start);
    }
  } finally {
    exporter.close(); // Its reader Workers, if the tree is large enough to start them.
  }
  return median(times);
}

/** `/-/healthy` latencies while one client scrapes back to back. */
async function healthDuringScrapes(server: Server, scrapes: number): Promise<number> {
  let running = true;
  const latencies: number[] = [];
  const prober = (async () => {
    while (running) {
      latencies.push((await probe(server.port, "/-/healthy")).ms);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  })();
  for (let i = 0; i < scrapes; i++) await scrape(server);
  running = false;
  await prober;
  return percentile(latencies, 95);
}

async function benchSize(
  size: string,
  floorBinary: string,
  options: BenchOptions & { health: boolean; goBinary: string | undefined },
): Promise<SizeResult> {
  const shape = parseShape(size);
  const root = await Deno.makeTempDir({ prefix: `kvm_exporter_bench_${size}_` });
  const servers: Server[] = [];
  let floor: Floor | undefined;
  try {
    await writeTree(root, planTree(shape));
    floor = await Floor.start(floorBinary, { dir: `${root}/kvm`, depth: 2, exclude: EXCLUDE });
    for (let i = 0; i < options.warmup; i++) await floor.pass();
    log(`${size}: ${countStatFiles(shape)} stat files, ${floor.files} read per scrape`);
    const inProcessMs = await inProcess(root, floor, options);

    servers.push(spawnOurs(root, countStatFiles(shape)));
    if (options.goBinary) servers.push(spawnGo(options.goBinary, root));
    for (const s of servers) {
      await waitUntilUp(s.port, s.name === "ours" ? "/-/healthy" : "/metrics");
    }
    const idle = servers.map((s) => rssMb(s.child.pid));
    for (let i = 0; i < options.warmup; i++) for (const s of servers) await scrape(s);

    const timed = await interleaved(servers, floor, options.scrapes);
    const ours = servers[0]!;
    const healthP95Ms = options.health
      ? await healthDuringScrapes(ours, Math.min(options.scrapes, 10))
      : undefined;
    const done = options.warmup + 2 * options.scrapes +
      (options.health ? Math.min(options.scrapes, 10) : 0);
    const rssScrapes = floor.files <= RSS_MAX_FILES ? Math.max(done, options.rssScrapes) : done;
    for (let i = done; i < rssScrapes; i++) {
      for (const s of servers) await scrape(s);
      if (i % 100 === 0) log(`${size}: ${i} of ${rssScrapes} scrapes for RSS`);
    }
    const rss = servers.map((s) => rssMb(s.child.pid));
    // Past the exporter's quiet time (1 s), after which it gives the scrapes' heap back.
    await new Promise((resolve) => setTimeout(resolve, QUIET_WAIT_MS));
    const quiet = servers.map((s) => rssMb(s.child.pid));
    const result: SizeResult = {
      size,
      files: floor.files,
      floorMs: median(timed.floor),
      floorWalkMs: median(timed.walk),
      inProcessMs,
      httpMs: median(timed.plain[0]!),
      httpP95Ms: percentile(timed.plain[0]!, 95),
      gzipMs: median(timed.gzip[0]!),
      cpuMs: timed.cpu[0]!,
      rssMb: rss[0]!,
      rssScrapes,
      rssQuietMb: quiet[0]!,
      idleRssMb: idle[0]!,
      ...(healthP95Ms === undefined ? {} : { healthP95Ms }),
    };
    if (servers.length > 1) {
      result.go = { ...goMeasurements(timed, rss[1]!, idle[1]!), rssQuietMb: quiet[1]! };
    }
    return result;
  } finally {
    for (const s of servers) await stopServer(s);
    await floor?.stop();
    await Deno.remove(root, { recursive: true });
  }
}

/** `/-/healthy` while several clients scrape a tree back to back (bench/health_load.ts). */
async function benchHealth(size: string, options: BenchOptions): Promise<HealthResult> {
  const shape = parseShape(size);
  const root = await Deno.makeTempDir({ prefix: `kvm_exporter_health_${size}_` });
  let server: Server | undefined;
  try {
    log(`${size}: writing ${countStatFiles(shape)} stat files for the health run`);
    await writeTree(root, planTree(shape));
    server = spawnOurs(root, countStatFiles(shape));
    await waitUntilUp(server.port, "/-/healthy");
    const load = await healthUnderLoad(server.port, {
      clients: options.healthClients,
      scrapes: options.healthScrapes,
    });
    log(`${size}: /-/healthy p95 ${load.p95Ms.toFixed(1)} ms, max ${load.maxMs.toFixed(1)} ms`);
    return { size, files: countStatFiles(shape), clients: options.healthClients, ...load };
  } finally {
    if (server !== undefined) await stopServer(server);
    await Deno.remove(root, { recursive: true });
  }
}

function goMeasurements(
  timed: { plain: number[][]; gzip: number[][]; cpu: number[] },
  rss: number,
  idle: number,
): GoMeasurements {
  return {
    httpMs: median(timed.plain[1]!),
    httpP95Ms: percentile(timed.plain[1]!, 95),
    gzipMs: median(timed.gzip[1]!),
    cpuMs: timed.cpu[1]!,
    rssMb: rss,
    idleRssMb: idle,
  };
}

function log(line: string): void {
  console.error(`bench: ${line}`);
}

async function describeMachine(): Promise<
  Pick<BenchRun, "cores" | "cpu" | "deno" | "commit" | "date">
> {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo").catch(() => "");
  const git = async (...args: string[]): Promise<string> => {
    const out = await new Deno.Command("git", { args, stderr: "null" }).output().catch(() =>
      undefined
    );
    return out?.success ? new TextDecoder().decode(out.stdout).trim() : "";
  };
  const dirty = (await git("status", "--porcelain", "--", "src", "main.ts")) === ""
    ? ""
    : " (with uncommitted changes)";
  return {
    cores: navigator.hardwareConcurrency,
    cpu: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? "unknown CPU",
    deno: Deno.version.deno,
    commit: `${(await git("rev-parse", "--short", "HEAD")) || "unknown"}${dirty}`,
    date: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
  };
}

async function main(options: BenchOptions): Promise<number> {
  const goBinary = Deno.env.get("KVM_EXPORTER_GO_BIN") || undefined;
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_floor_" });
  const sizes: SizeResult[] = [];
  try {
    const floorBinary = await compileFloor(tmp);
    const largest = options.sizes.reduce((a, b) =>
      countStatFiles(parseShape(a)) >= countStatFiles(parseShape(b)) ? a : b
    );
    for (const size of options.sizes) {
      sizes.push(
        await benchSize(size, floorBinary, { ...options, health: size === largest, goBinary }),
      );
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
  const health: HealthResult[] = [];
  for (const size of options.healthSizes) health.push(await benchHealth(size, options));
  const run: BenchRun = {
    ...(await describeMachine()),
    scrapes: options.scrapes,
    note: options.note ||
      (goBinary
        ? "Go original measured interleaved"
        : "Go original not measured (KVM_EXPORTER_GO_BIN unset)"),
    sizes,
    health,
  };
  console.log(
    [...measurementTable(sizes), "", ...healthTable(health), "", ...ratioTable(ratiosOf(sizes))]
      .join("\n"),
  );
  const out = options.out ?? new URL("./RESULTS.md", import.meta.url).pathname;
  if (options.check) return check(out, ratiosOf(sizes), options.tolerance);
  const quick = options.sizes.join() !== DEFAULT_SIZES.join() || options.scrapes < 20 ||
    options.rssScrapes < 1000 || options.healthSizes.join() !== DEFAULT_HEALTH_SIZES.join();
  if (quick && options.out === undefined) {
    log("quick run: bench/RESULTS.md not written (name a file with --out to write one)");
  } else {
    await Deno.writeTextFile(out, renderResults(run));
    // As the gate's `deno fmt --check` wants the tables.
    await new Deno.Command(Deno.execPath(), { args: ["fmt", "--quiet", out] }).output();
    log(`wrote ${out}`);
  }
  return 0;
}

async function check(
  path: string,
  current: Map<string, number>,
  tolerance: number,
): Promise<number> {
  const committed = parseRatios(await Deno.readTextFile(path));
  const regressions = findRegressions(committed, current, tolerance);
  for (const r of regressions) {
    log(
      `${r.key}: ${r.current} is more than ${tolerance * 100}% above the committed ${r.committed}`,
    );
  }
  const compared = [...current.keys()].filter((key) => committed.has(key)).length;
  log(`${compared} ratios compared with ${path}, ${regressions.length} regressed`);
  return regressions.length === 0 ? 0 : 1;
}

if (import.meta.main && Deno.args.includes("--lockdown")) {
  // The lockdown mode (bench/lockdown.ts): refused opens and their cost, nothing else.
  let options: LockdownBenchOptions;
  try {
    options = parseLockdownArgs(Deno.args.filter((arg) => arg !== "--"));
  } catch (error) {
    console.error((error as Error).message);
    Deno.exit(2);
  }
  console.log((await lockdownBench(options)).join("\n"));
  Deno.exit(0);
}

if (import.meta.main) {
  let options: BenchOptions;
  try {
    options = parseBenchArgs(Deno.args.filter((arg) => arg !== "--"));
  } catch (error) {
    console.error((error as Error).message);
    Deno.exit(2);
  }
  Deno.exit(await main(options));
}
