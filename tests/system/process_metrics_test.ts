import assert from "node:assert/strict";
import { FamilySet } from "../../src/metrics/model.ts";
import { parseMaxFds } from "../../src/system/proc_pid.ts";
import { ProcessMetrics } from "../../src/system/process_metrics.ts";

/** The process metrics of one collect, by name. */
async function collectValues(metrics: ProcessMetrics): Promise<Map<string, unknown>> {
  const out = new FamilySet();
  await metrics.collect(out);
  return new Map(out.families().map((f) => [f.name, f.samples[0]?.value]));
}

/** A `stat` line with utime, stime, vsize and rss set; the other fields zero. */
function statLine(fields: { utime: number; stime: number; vsize: number; rss: number }): string {
  const rest = Array.from({ length: 50 }, () => "0");
  // Fields after `(comm)`: state is 3 (index 0), utime 14, stime 15, vsize 23, rss 24.
  rest[0] = "S";
  rest[11] = String(fields.utime);
  rest[12] = String(fields.stime);
  rest[20] = String(fields.vsize);
  rest[21] = String(fields.rss);
  return `42 (deno) ${rest.join(" ")}\n`;
}

function limits(maxFds: number): string {
  return "Limit                     Soft Limit           Hard Limit           Units\n" +
    `Max open files            ${maxFds}                 524288               files\n`;
}

async function writeSelf(
  procfs: string,
  self: { stat: string; limits: string; fds: number },
): Promise<void> {
  await Deno.mkdir(`${procfs}/self/fd`, { recursive: true });
  // Written in place (same inode), as procfs's text changes under an open file.
  await Deno.writeTextFile(`${procfs}/self/stat`, self.stat);
  await Deno.writeTextFile(`${procfs}/self/limits`, self.limits);
  for (const entry of await Array.fromAsync(Deno.readDir(`${procfs}/self/fd`))) {
    await Deno.remove(`${procfs}/self/fd/${entry.name}`);
  }
  for (let fd = 0; fd < self.fds; fd++) await Deno.writeTextFile(`${procfs}/self/fd/${fd}`, "");
}

Deno.test("ProcessMetrics reads stat and fd every scrape, limits once", async (t) => {
  const procfs = await Deno.makeTempDir();
  try {
    using metrics = new ProcessMetrics(procfs);
    const scrapes = [
      { utime: 100, stime: 50, vsize: 8192, rss: 3, maxFds: 1024, fds: 3 },
      { utime: 300, stime: 100, vsize: 16384, rss: 5, maxFds: 4096, fds: 7 },
      { utime: 301, stime: 101, vsize: 16384, rss: 4, maxFds: 8, fds: 2 },
    ];
    for (const [i, s] of scrapes.entries()) {
      await t.step(`scrape ${i + 1}`, async () => {
        await writeSelf(procfs, { stat: statLine(s), limits: limits(s.maxFds), fds: s.fds });
        const values = await collectValues(metrics);
        assert.equal(values.get("process_cpu_seconds_total"), (s.utime + s.stime) / 100);
        assert.equal(values.get("process_virtual_memory_bytes"), s.vsize);
        assert.equal(values.get("process_resident_memory_bytes"), s.rss * 4096);
        assert.equal(values.get("process_open_fds"), s.fds);
        // The exporter's limit as it started with, like the connection cap's.
        assert.equal(values.get("process_max_fds"), scrapes[0]!.maxFds);
      });
    }
  } finally {
    await Deno.remove(procfs, { recursive: true });
  }
});

Deno.test("ProcessMetrics without <procfs>/self uses the runtime's figures, and looks once", async () => {
  const procfs = await Deno.makeTempDir();
  try {
    using metrics = new ProcessMetrics(procfs);
    const first = await collectValues(metrics);
    // A self that appears later is not procfs's (procfs has it from the start): not read.
    await writeSelf(procfs, {
      stat: statLine({ utime: 1, stime: 1, vsize: 1, rss: 1 }),
      limits: limits(7),
      fds: 1,
    });
    const second = await collectValues(metrics);
    for (const values of [first, second]) {
      assert.deepEqual([...values.keys()].sort(), [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_start_time_seconds",
      ]);
      assert.ok((values.get("process_resident_memory_bytes") as number) > 4096);
    }
  } finally {
    await Deno.remove(procfs, { recursive: true });
  }
});

Deno.test("ProcessMetrics reads this process's own procfs files", async () => {
  using metrics = new ProcessMetrics("/proc");
  const cpu = (values: Map<string, unknown>) => values.get("process_cpu_seconds_total") as number;
  const before = await collectValues(metrics);
  // Spends CPU until the kept-open stat shows it (a tick is 10 ms): it must be read anew.
  let after = await collectValues(metrics);
  const deadline = Date.now() + 5_000;
  while (cpu(after) <= cpu(before) && Date.now() < deadline) after = await collectValues(metrics);
  assert.equal(
    after.get("process_max_fds"),
    parseMaxFds(await Deno.readTextFile("/proc/self/limits")),
  );
  assert.ok((after.get("process_open_fds") as number) > 0);
  assert.ok((after.get("process_virtual_memory_bytes") as number) > 0);
  assert.ok(cpu(after) > cpu(before), `CPU ${cpu(before)} s, then ${cpu(after)} s`);
});
