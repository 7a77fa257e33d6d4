/**
 * `deno run -A tools/bench_scrape.ts [VMS] [SCRAPES]`: what one scrape costs
 * on a large synthetic debugfs tree (VMS VMs with 4 vCPUs each), compared in
 * the same run with the bare minimum: listing and reading every file once.
 * Reports ratios, since absolute times vary from machine to machine.
 *
 * @module
 */

import { renderText } from "../src/exposition/text_format.ts";
import { buildApp } from "../tests/support/sample_exporter.ts";

const STATS = 60;

async function layOut(dir: string, vms: number): Promise<number> {
  let files = 0;
  const write = async (path: string, value: number): Promise<void> => {
    await Deno.writeTextFile(path, `${value}\n`);
    files++;
  };
  for (let s = 0; s < STATS; s++) await write(`${dir}/stat_${s}`, s * 1000);
  for (let v = 0; v < vms; v++) {
    const vm = `${dir}/${10000 + v}-${v}`;
    await Deno.mkdir(vm);
    for (let s = 0; s < STATS; s++) await write(`${vm}/stat_${s}`, v * s);
    for (let c = 0; c < 4; c++) {
      await Deno.mkdir(`${vm}/vcpu${c}`);
      for (const f of ["guest_mode", "lapic_timer_advance_ns", "pid", "tsc-offset"]) {
        await write(`${vm}/vcpu${c}/${f}`, c);
      }
    }
  }
  return files;
}

async function readAll(dir: string): Promise<number> {
  let n = 0;
  for await (const e of Deno.readDir(dir)) {
    if (e.isDirectory) n += await readAll(`${dir}/${e.name}`);
    else n += (await Deno.readTextFile(`${dir}/${e.name}`)).length;
  }
  return n;
}

async function time(label: string, runs: number, fn: () => Promise<unknown>): Promise<number> {
  await fn(); // Warm up.
  const start = performance.now();
  for (let i = 0; i < runs; i++) await fn();
  const ms = (performance.now() - start) / runs;
  console.log(`${label}: ${ms.toFixed(2)} ms`);
  return ms;
}

if (import.meta.main) {
  const vms = Number(Deno.args[0] ?? 100);
  const runs = Number(Deno.args[1] ?? 20);
  const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_bench_" });
  try {
    const files = await layOut(dir, vms);
    const { exporter } = await buildApp([
      `--collector.kvmdebug.dir=${dir}`,
      `--path.procfs=${dir}/proc`,
    ]);
    console.log(`${vms} VMs, ${files} files, ${runs} runs each`);
    const bare = await time("list and read every file, sequentially", runs, () => readAll(dir));
    let bytes = 0;
    const scrape = await time("full scrape and render", runs, async () => {
      bytes = renderText(await exporter.scrape()).length;
    });
    console.log(`exposition: ${bytes} bytes; scrape / bare read = ${(scrape / bare).toFixed(2)}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
