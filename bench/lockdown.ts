/**
 * The bench's lockdown mode (`deno task bench --lockdown`): what a scrape costs when the kernel
 * refuses every 0644 debugfs file, as it does on a host booted with Secure Boot. EPERM cannot be
 * made on a tmpfs tree, so the exporter reads a bench tree through
 * {@linkcode refusingFileSystem}, in process, in a child run with the documented permissions
 * (`--allow-read` of the tree: every open pays Deno's path check, as in production). It reports,
 * per tree, the opens and refused opens of the first scrape and of a steady one, and the median
 * time of a steady scrape (collect and render), for this checkout locked down and not, and for
 * `--baseline=DIR` (another checkout of the exporter, e.g. main's) locked down: interleaved,
 * so the ratios are of one run. kvm_stat reads on the main thread (`readers=0`): reader Workers
 * cannot read through an in-process seam.
 *
 * @module
 */

import { parseShape, planTree, writeTree } from "./debugfs_tree.ts";
import { median } from "./probe.ts";
import { refusingFileSystem } from "./refusing_file_system.ts";

/** What one child measured. */
export interface LockdownSample {
  /** Debugfs opens of the first scrape, and how many were refused. */
  first: { opens: number; refused: number };
  /** Debugfs opens of each steady scrape, on average, and how many were refused. */
  steady: { opens: number; refused: number };
  /** Each steady scrape's milliseconds. */
  times: number[];
}

/** The options of the lockdown mode. */
export interface LockdownBenchOptions {
  /** Tree sizes, `VMSxVCPUS`. */
  sizes: readonly string[];
  /** Steady scrapes per child. */
  scrapes: number;
  /** Scrapes before the steady ones (after the first). */
  warmup: number;
  /** Children per variant, interleaved. */
  rounds: number;
  /** Another checkout of the exporter to compare with, if any. */
  baseline: string | undefined;
}

const HERE = new URL(".", import.meta.url).pathname.replace(/\/$/, "");
const OURS = HERE.replace(/\/bench$/, "");

/** Runs in the child: scrapes the tree with the exporter of `code`. */
async function child(
  options: { code: string; tree: string; locked: boolean; scrapes: number; warmup: number },
): Promise<LockdownSample> {
  const { code, tree } = options;
  // The checkout's own modules, so that a baseline checkout is measured with its own code.
  const { parseFlags } = await import(
    `${code}/src/cli/flags.ts`
  ) as typeof import("../src/cli/flags.ts");
  const { ConfigStore } = await import(
    `${code}/src/config/config_store.ts`
  ) as typeof import("../src/config/config_store.ts");
  const { createExporter } = await import(
    `${code}/src/exporter.ts`
  ) as typeof import("../src/exporter.ts");
  const { createLogger } = await import(
    `${code}/src/log/logger.ts`
  ) as typeof import("../src/log/logger.ts");
  const { renderText } = await import(
    `${code}/src/exposition/text_format.ts`
  ) as typeof import("../src/exposition/text_format.ts");
  const command = parseFlags([
    `--collector.kvmdebug.dir=${tree}/kvm`,
    `--collector.vmmap.path=${tree}/vm.yaml`,
    `--path.procfs=${tree}/proc`,
    `--path.sysfs=${tree}/sys`,
    "--collector.kvm_stat.readers=0",
    // The same work as the floor's and the Go original's: debugfs only.
    "--no-collector.vcpu_time",
    "--no-collector.vm_process",
  ], () => undefined);
  if (command.kind !== "run") throw new Error("not a run command");
  const logger = createLogger({ level: "info", write: () => {} }); // Production's level.
  const configStore = new ConfigStore({
    path: command.options.vmmapPath,
    explicit: command.options.vmmapPathExplicit,
    logger,
  });
  await configStore.loadInitial();
  // Unlocked: the same counting, nothing refused.
  const counting = refusingFileSystem({ kvmdebugDir: `${tree}/kvm`, refuse: options.locked });
  const refuses = options.locked;
  const kvm = `${tree}/kvm/`;
  const count = (): { opens: number; refused: number } => {
    let opens = 0;
    for (const [path, n] of counting.opens) if (path.startsWith(kvm)) opens += n;
    return { opens, refused: refuses ? counting.refused.count : 0 };
  };
  const exporter = createExporter({
    options: command.options,
    configStore,
    logger,
    lockdown: refuses ? "integrity" : "none",
    processMetrics: false,
    fs: counting.fs,
  });
  try {
    renderText(await exporter.scrape());
    const first = count();
    for (let i = 0; i < options.warmup; i++) renderText(await exporter.scrape());
    counting.reset();
    const times: number[] = [];
    for (let i = 0; i < options.scrapes; i++) {
      const start = performance.now();
      renderText(await exporter.scrape());
      times.push(performance.now() - start);
    }
    const steady = count();
    return {
      first,
      steady: { opens: steady.opens / options.scrapes, refused: steady.refused / options.scrapes },
      times,
    };
  } finally {
    exporter.close();
  }
}

/** One variant measured: whose code, locked down or not. */
interface Variant {
  name: string;
  code: string;
  locked: boolean;
}

async function runChild(
  variant: Variant,
  tree: string,
  options: LockdownBenchOptions,
): Promise<LockdownSample> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      `--allow-read=${tree},${OURS},${variant.code}`,
      `${HERE}/lockdown.ts`,
      "--child",
      `--code=${variant.code}`,
      `--tree=${tree}`,
      `--locked=${variant.locked}`,
      `--scrapes=${options.scrapes}`,
      `--warmup=${options.warmup}`,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!output.success) throw new Error(`${variant.name}: the child failed`);
  return JSON.parse(new TextDecoder().decode(output.stdout)) as LockdownSample;
}

/**
 * Runs the lockdown mode: prints a table per tree of opens, refused opens and median time per
 * scrape, and the ratios of one run.
 *
 * @param options The trees, scrapes, rounds and the baseline checkout.
 * @returns The table's lines.
 */
export async function lockdownBench(options: LockdownBenchOptions): Promise<string[]> {
  const variants: Variant[] = [
    { name: "this checkout, locked down", code: OURS, locked: true },
    { name: "this checkout, not locked down", code: OURS, locked: false },
  ];
  if (options.baseline !== undefined) {
    variants.push({
      name: `baseline (${options.baseline}), locked down`,
      code: options.baseline,
      locked: true,
    });
  }
  const lines = [
    "| tree | variant | opens, first scrape (refused) | opens per steady scrape (refused) | median ms per scrape | ÷ this checkout locked down |",
    "| --- | --- | --- | --- | --- | --- |",
  ];
  for (const size of options.sizes) {
    const tree = await Deno.makeTempDir({ prefix: "kvm_exporter_lockdown_" });
    try {
      await writeTree(tree, planTree(parseShape(size)));
      const samples = variants.map(() => [] as LockdownSample[]);
      for (let round = 0; round < options.rounds; round++) {
        const order = round % 2 === 0 ? variants.keys() : [...variants.keys()].reverse().values();
        for (const k of order) samples[k]!.push(await runChild(variants[k]!, tree, options));
      }
      const medians = samples.map((s) => median(s.flatMap((x) => x.times)));
      variants.forEach((variant, k) => {
        const { first, steady } = samples[k]![0]!;
        lines.push(
          `| ${size} | ${variant.name} | ${first.opens} (${first.refused}) | ${steady.opens} (${steady.refused}) | ${
            medians[k]!.toFixed(2)
          } | ${(medians[k]! / medians[0]!).toFixed(2)} |`,
        );
      });
    } finally {
      await Deno.remove(tree, { recursive: true });
    }
  }
  return lines;
}

/**
 * Parses the lockdown mode's options (the bench's `--sizes` and `--scrapes` among them).
 *
 * @param args The arguments, `--lockdown` among them.
 * @returns The options.
 */
export function parseLockdownArgs(args: readonly string[]): LockdownBenchOptions {
  const options: LockdownBenchOptions = {
    sizes: ["10x4", "100x16"],
    scrapes: 20,
    warmup: 3,
    rounds: 3,
    baseline: undefined,
  };
  for (const arg of args) {
    const [name, value = ""] = arg.split(/=(.*)/s);
    if (arg === "--lockdown") continue;
    if (name === "--sizes") options.sizes = value.split(",");
    else if (name === "--scrapes") options.scrapes = Number(value);
    else if (name === "--warmup") options.warmup = Number(value);
    else if (name === "--rounds") options.rounds = Number(value);
    else if (name === "--baseline") options.baseline = value.replace(/\/$/, "");
    else throw new Error(`Unknown lockdown bench option "${arg}"`);
  }
  options.sizes.forEach(parseShape);
  for (const n of [options.scrapes, options.warmup, options.rounds]) {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`Not a positive integer: ${n}`);
  }
  return options;
}

if (import.meta.main) {
  const args = Deno.args.filter((arg) => arg !== "--");
  if (args.includes("--child")) {
    const get = (name: string): string =>
      args.find((a) => a.startsWith(`--${name}=`))!.slice(name.length + 3);
    const sample = await child({
      code: get("code"),
      tree: get("tree"),
      locked: get("locked") === "true",
      scrapes: Number(get("scrapes")),
      warmup: Number(get("warmup")),
    });
    console.log(JSON.stringify(sample));
  } else {
    console.log((await lockdownBench(parseLockdownArgs(args))).join("\n"));
  }
}
