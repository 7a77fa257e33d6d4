/**
 * kvm_stat with reader Workers reads exactly what the main thread reads: the
 * same stats, values, read errors and log lines, on a generated bench tree,
 * on hostile stat files and on the real (locked-down) debugfs. And a Worker
 * stuck on a FIFO swapped in after listing costs only its files: the scrape
 * answers by its deadline and later scrapes do not wait.
 *
 * @module
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { parseShape, planTree, writeTree } from "../../bench/debugfs_tree.ts";
import type { BuiltApp } from "../support/sample_exporter.ts";
import { buildApp, fixtureArgs, scrapeText, seriesValue } from "../support/sample_exporter.ts";
import { startExporter, treeArgs, waitFor } from "../support/exporter_process.ts";
import { blockedOnFifo, copyTree, mkfifo, unblockFifo } from "../support/fifo.ts";
import { kvmBackend } from "../support/vm_backends.ts";
import type { QemuVm } from "../support/qemu.ts";

/** Lines that differ between two runs whatever they read: timings and load times. */
const TIMING = /^kvm_scrape_collector_duration_seconds|^kvm_exporter_config_last_reload/;

function comparable(text: string): string {
  return text.split("\n").filter((line) => !TIMING.test(line)).join("\n");
}

/**
 * Log lines without their timestamps, sorted: files that may block are read asynchronously either
 * way, and log as their reads return.
 */
function comparableLogs(logs: readonly string[]): string[] {
  return logs.join("").split("\n").map((line) => line.replace(/^ts=\S+ /, "")).sort();
}

/** Two exporters on the same tree: one reads on the main thread, one in reader Workers only. */
async function pair(args: string[]): Promise<{ main: BuiltApp; workers: BuiltApp }> {
  const main = await buildApp([...args, "--collector.kvm_stat.readers=0"]);
  const workers = await buildApp([...args, "--collector.kvm_stat.readers=2"], {
    readerMinFiles: 0,
  });
  return { main, workers };
}

/** Scrapes both and checks they exported, logged and counted the same. */
async function sameScrape(both: { main: BuiltApp; workers: BuiltApp }, what: string) {
  const main = await scrapeText(both.main.app);
  const workers = await scrapeText(both.workers.app);
  strictEqual(comparable(workers), comparable(main), what);
  deepStrictEqual(
    both.workers.exporter.lastScrape?.vms,
    both.main.exporter.lastScrape?.vms,
    `${what}: read errors per VM`,
  );
  deepStrictEqual(comparableLogs(both.workers.logs), comparableLogs(both.main.logs), what);
  return { main, workers };
}

/** Worker threads of this process (Deno names them `worker-N`); reader Workers are its only ones. */
async function readerThreads(): Promise<number> {
  let n = 0;
  for await (const task of Deno.readDir("/proc/self/task")) {
    const comm = await Deno.readTextFile(`/proc/self/task/${task.name}/comm`).catch(() => "");
    if (comm.startsWith("worker-")) n++;
  }
  return n;
}

Deno.test("kvm_stat reads a bench tree the same in reader Workers as on the main thread, across VM churn", async () => {
  const root = await Deno.makeTempDir({ prefix: "kvm_exporter_readers_" });
  const both = await pair([
    `--collector.kvmdebug.dir=${root}/kvm`,
    `--path.procfs=${root}/proc`,
    "--no-collector.vcpu_time",
  ]);
  try {
    const plan = planTree(parseShape("12x3"));
    await writeTree(root, plan);
    const { workers } = await sameScrape(both, "first scrape");
    strictEqual(seriesValue(workers, 'kvm_scrape_collector_success{collector="kvm_stat"}'), "1");
    ok(workers.includes("kvm_stat_vcpu_"), "vCPU stats read");
    await sameScrape(both, "steady scrape");
    // A VM goes, and a vCPU dir of another loses its files (it vanishes mid-life): each exporter
    // must forget the one and count the other's files as vanished.
    const vms = (await Array.fromAsync(Deno.readDir(`${root}/kvm`)))
      .filter((e) => e.isDirectory).map((e) => e.name).sort();
    await Deno.remove(`${root}/kvm/${vms[0]}`, { recursive: true });
    for await (const e of Deno.readDir(`${root}/kvm/${vms[1]}/vcpu0`)) {
      await Deno.remove(`${root}/kvm/${vms[1]}/vcpu0/${e.name}`);
    }
    const { main } = await sameScrape(both, "after churn");
    ok(
      Number(
        seriesValue(main, 'kvm_exporter_stat_read_errors{collector="kvm_stat",reason="vanished"}'),
      ) > 0,
    );
  } finally {
    both.main.exporter.close();
    both.workers.exporter.close();
    await Deno.remove(root, { recursive: true });
  }
});

/** Hostile contents for stat files, each at VM and vCPU level. */
const HOSTILE: Record<string, (path: string) => Promise<void>> = {
  u64_max: (p) => Deno.writeTextFile(p, "18446744073709551615\n"),
  u64_over: (p) => Deno.writeTextFile(p, "18446744073709551616\n"),
  s64_min: (p) => Deno.writeTextFile(p, "-9223372036854775808\n"),
  s64_under: (p) => Deno.writeTextFile(p, "-9223372036854775809\n"),
  past_2_53: (p) => Deno.writeTextFile(p, "9007199254740993\n"),
  at_2_53: (p) => Deno.writeTextFile(p, "9007199254740991\n"),
  minus_zero: (p) => Deno.writeTextFile(p, "-0\n"),
  zeros: (p) => Deno.writeTextFile(p, "0000000000000000000042\n"),
  zeros_23: (p) => Deno.writeTextFile(p, "00000000000000000000042\n"),
  no_newline: (p) => Deno.writeTextFile(p, "17"),
  bom: (p) => Deno.writeFile(p, new Uint8Array([0xef, 0xbb, 0xbf, 0x35, 0x0a])),
  empty: (p) => Deno.writeTextFile(p, ""),
  newline: (p) => Deno.writeTextFile(p, "\n"),
  minus: (p) => Deno.writeTextFile(p, "-\n"),
  spaces: (p) => Deno.writeTextFile(p, " 12\n"),
  two_lines: (p) => Deno.writeTextFile(p, "1\n2\n"),
  digits_400: (p) => Deno.writeTextFile(p, `${"9".repeat(400)}\n`),
  invalid_utf8: (p) => Deno.writeFile(p, new Uint8Array(60).fill(0xc3)),
  accents: (p) => Deno.writeTextFile(p, "é".repeat(50)),
  at_cap: (p) => Deno.writeTextFile(p, "1".repeat(4096)),
  over_cap: (p) => Deno.writeTextFile(p, "7".repeat(4097)),
  ten_mb: (p) => Deno.writeTextFile(p, "7".repeat(10 * 1024 * 1024)),
  to_dev_zero: (p) => Deno.symlink("/dev/zero", p),
  dangling: (p) => Deno.symlink("nowhere", p),
  dir_link: (p) => Deno.symlink("..", p),
};

Deno.test("kvm_stat reads hostile stat files the same in reader Workers as on the main thread", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_readers_hostile_" });
  try {
    await copyTree(new URL("../fixtures/sample", import.meta.url).pathname, dir);
    for (const at of ["kvm", "kvm/10620-10", "kvm/10620-10/vcpu0"]) {
      for (const [name, make] of Object.entries(HOSTILE)) await make(`${dir}/${at}/${name}`);
    }
    const both = await pair(treeArgs(dir));
    try {
      const { main } = await sameScrape(both, "hostile files");
      for (const reason of ["malformed", "too_large", "not_regular", "vanished"]) {
        ok(
          Number(
            seriesValue(
              main,
              `kvm_exporter_stat_read_errors{collector="kvm_stat",reason="${reason}"}`,
            ),
          ) > 0,
          reason,
        );
      }
      ok(main.includes(" 18446744073709551615\n") && main.includes(" -9223372036854775808\n"));
      await sameScrape(both, "hostile files again");
      ok(await readerThreads() > 0, "the Workers read");
    } finally {
      both.main.exporter.close();
      both.workers.exporter.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("kvm_stat reads the edge fixture the same in reader Workers as on the main thread", async () => {
  const both = await pair(fixtureArgs("edge"));
  try {
    await sameScrape(both, "edge fixture");
  } finally {
    both.main.exporter.close();
    both.workers.exporter.close();
  }
});

const SUCCESS = 'kvm_scrape_collector_success{collector="kvm_stat"}';

/** What a test gets from {@linkcode withSwappedFifo}. */
interface SwappedFifo {
  app: Awaited<ReturnType<typeof buildApp>>["app"];
  fifo: string;
  /** The scrape before the swap. */
  before: string;
  /** Opens the FIFO for writing, so the Worker stuck on it returns. */
  release(): Promise<void>;
}

/**
 * Runs `body` on a copy of the sample tree read by one reader Worker, after one scrape (which
 * lists the vCPU dirs for good) and a stat file swapped for a FIFO; cleans up even on failure.
 */
async function withSwappedFifo(body: (t: SwappedFifo) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_readers_fifo_" });
  await copyTree(new URL("../fixtures/sample", import.meta.url).pathname, dir);
  const fifo = `${dir}/kvm/10620-10/vcpu0/tsc-offset`;
  const { app, exporter } = await buildApp(
    [...treeArgs(dir), "--collector.kvm_stat.readers=1"],
    { readerMinFiles: 0 },
  );
  let released = false;
  try {
    const before = await scrapeText(app); // vCPU dirs are listed once: the swap goes unseen.
    await Deno.remove(fifo);
    await mkfifo(fifo);
    await body({
      app,
      fifo,
      before,
      release: () => unblockFifo(fifo).then(() => void (released = true)),
    });
  } finally {
    if (!released) await unblockFifo(fifo).catch(() => {});
    exporter.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("kvm_stat answers by the deadline when a reader Worker is stuck on a FIFO swapped in after listing, and replaces it", async () => {
  await withSwappedFifo(async ({ app, fifo, before, release }) => {
    const headers = { "X-Prometheus-Scrape-Timeout-Seconds": "2.5" };
    const stuck = await (await app.request("/metrics", { headers })).text();
    strictEqual(seriesValue(stuck, SUCCESS), "0");
    strictEqual(seriesValue(stuck, "kvm_exporter_blocked_reads"), "1");
    ok(seriesValue(stuck, 'kvm_stat_exits_count{domain="global"}') !== undefined, "root files");

    // The next scrape does not wait: a new Worker reads the rest, the stuck path is skipped.
    const again = await scrapeText(app);
    strictEqual(seriesValue(again, SUCCESS), "1");
    strictEqual(
      seriesValue(again, 'kvm_exporter_stat_read_errors{collector="kvm_stat",reason="blocked"}'),
      "1",
    );
    strictEqual(seriesValue(again, "kvm_exporter_blocked_reads"), "1");
    strictEqual(
      seriesValue(again, 'kvm_stat_vcpu_pid_count{domain="target_vm",vcpu="0"}'),
      seriesValue(before, 'kvm_stat_vcpu_pid_count{domain="target_vm",vcpu="0"}'),
    );
    ok(
      seriesValue(again, 'kvm_stat_vcpu_tsc_offset_count{domain="web-01",vcpu="0"}') !== undefined,
    );

    // A writer comes: the abandoned Worker returns and ends, the gauge drops; the path, now a
    // regular file, is read through the guarded async path.
    await release();
    await Deno.remove(fifo);
    await Deno.writeTextFile(fifo, "-42\n");
    await waitFor(
      async () => seriesValue(await scrapeText(app), "kvm_exporter_blocked_reads") === "0",
      { what: "the abandoned Worker to return" },
    );
    strictEqual(
      seriesValue(
        await scrapeText(app),
        'kvm_stat_vcpu_tsc_offset_count{domain="target_vm",vcpu="0"}',
      ),
      "-42",
    );
  });
});

Deno.test("kvm_stat: a scrape beside one whose reader Worker is stuck still reads every other file", async () => {
  await withSwappedFifo(async ({ app, before, release }) => {
    const scrape = async (timeout: string): Promise<string> => {
      const headers = { "X-Prometheus-Scrape-Timeout-Seconds": timeout };
      return await (await app.request("/metrics", { headers })).text();
    };
    // A long deadline (another Prometheus), stuck on the FIFO; then one with a shorter deadline.
    const stuck = scrape("120");
    await waitFor(() => blockedOnFifo(Deno.pid), { what: "the Worker blocked on the FIFO" });
    const beside = await scrape("4");
    const global = 'kvm_stat_exits_count{domain="global"}';
    const other = 'kvm_stat_vcpu_pid_count{domain="web-01",vcpu="0"}';
    ok(seriesValue(before, global) !== undefined && seriesValue(before, other) !== undefined);
    strictEqual(seriesValue(beside, global), seriesValue(before, global), "root files");
    strictEqual(seriesValue(beside, other), seriesValue(before, other), "another VM's files");
    await release();
    strictEqual(seriesValue(await stuck, SUCCESS), "1");
  });
});

Deno.test("kvm_stat stops its reader Workers after 4 are stuck, and reads the guarded async way", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_readers_cap_" });
  await copyTree(new URL("../fixtures/sample", import.meta.url).pathname, dir);
  const vcpu = `${dir}/kvm/10620-10/vcpu1`;
  const { app, exporter } = await buildApp(
    [...treeArgs(dir), "--collector.kvm_stat.readers=1"],
    { readerMinFiles: 0 },
  );
  const fifos: string[] = [];
  try {
    const before = await scrapeText(app);
    const names = (await Array.fromAsync(Deno.readDir(vcpu))).map((e) => e.name).sort();
    // Not `pid`: vcpu_time reads it too, and would count a blocked read of its own.
    for (const name of names.filter((n) => n !== "pid").slice(0, 4)) {
      fifos.push(`${vcpu}/${name}`);
      await Deno.remove(`${vcpu}/${name}`);
      await mkfifo(`${vcpu}/${name}`);
    }
    // Each scrape strands one Worker on the next FIFO (a 250 ms deadline: 0.5s halved).
    const headers = { "X-Prometheus-Scrape-Timeout-Seconds": "0.5" };
    for (let i = 1; i <= 4; i++) {
      const text = await (await app.request("/metrics", { headers })).text();
      strictEqual(seriesValue(text, "kvm_exporter_blocked_reads"), String(i));
    }
    // Past the cap nothing is read synchronously; the FIFOs are skipped, the rest is read.
    const text = await scrapeText(app);
    strictEqual(seriesValue(text, SUCCESS), "1");
    strictEqual(
      seriesValue(text, 'kvm_exporter_stat_read_errors{collector="kvm_stat",reason="blocked"}'),
      "4",
    );
    const unchanged = (t: string): string[] =>
      t.split("\n").filter((l) => l.startsWith("kvm_stat_") && !l.includes('vcpu="1"'));
    deepStrictEqual(unchanged(text), unchanged(before));
    // Waited for: an earlier test's terminated Workers may still be exiting on a loaded machine
    // (seen twice in full runs: 6 threads); a fifth Worker kept alive still fails at the deadline.
    let threads = 0;
    await waitFor(async () => (threads = await readerThreads()) === 4, {
      timeoutMs: 5_000,
      what: "only the 4 stuck Workers to be left",
    }).catch(() => strictEqual(threads, 4, "only the 4 stuck Workers are left"));
    for (const fifo of fifos.splice(0)) await unblockFifo(fifo);
    await waitFor(async () => await readerThreads() === 0, { what: "the stuck Workers to end" });
  } finally {
    for (const fifo of fifos) await unblockFifo(fifo).catch(() => {});
    exporter.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("kvm_stat holds no debugfs file open after a scrape in reader Workers", async () => {
  // A copy of its own: other test files may list the shared fixture in this process meanwhile.
  const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_readers_fds_" });
  await copyTree(new URL("../fixtures/sample", import.meta.url).pathname, dir);
  const { app, exporter } = await buildApp(
    [...treeArgs(dir), "--collector.kvm_stat.readers=2"],
    { readerMinFiles: 0 },
  );
  try {
    await scrapeText(app);
    ok(await readerThreads() > 0, "the Workers read");
    for await (const fd of Deno.readDir(`/proc/${Deno.pid}/fd`)) {
      const target = await Deno.readLink(`/proc/${Deno.pid}/fd/${fd.name}`).catch(() => "");
      ok(!target.startsWith(dir), `fd ${fd.name} still open on ${target}`);
    }
  } finally {
    exporter.close();
    await Deno.remove(dir, { recursive: true });
  }
});

/** Worker threads of process `pid`. */
async function workerThreadsOf(pid: number): Promise<number> {
  let n = 0;
  for await (const task of Deno.readDir(`/proc/${pid}/task`)) {
    const comm = await Deno.readTextFile(`/proc/${pid}/task/${task.name}/comm`).catch(() => "");
    if (comm.startsWith("worker-")) n++;
  }
  return n;
}

Deno.test("main.ts starts reader Workers past the default threshold with only --allow-read on the tree", async () => {
  const root = await Deno.makeTempDir({ prefix: "kvm_exporter_readers_main_" });
  try {
    await writeTree(root, planTree(parseShape("30x4"))); // 2,703 files: past the 2,000 threshold.
    const args = [
      "--web.listen-address=127.0.0.1:0",
      ...treeArgs(root),
      "--no-collector.vcpu_time",
    ];
    const permissions = [`--allow-read=${root}`, "--allow-net=127.0.0.1"];
    await using workers = await startExporter([...args, "--collector.kvm_stat.readers=2"], {
      permissions,
    });
    await using main = await startExporter([...args, "--collector.kvm_stat.readers=0"], {
      permissions,
    });
    strictEqual(await workerThreadsOf(workers.pid), 0, "no Worker before a scrape");
    // The KVM stats and read errors; process metrics differ between two processes.
    const scrape = async (p: { baseUrl: string }): Promise<string> =>
      (await (await fetch(`${p.baseUrl}/metrics`)).text()).split("\n")
        .filter((l) => /^kvm_(stat_|exporter_stat_read_errors|scrape_collector_success)/.test(l))
        .join("\n");
    const text = await scrape(workers);
    strictEqual(seriesValue(text, SUCCESS), "1", workers.stderrText());
    strictEqual(text, await scrape(main));
    strictEqual(await workerThreadsOf(workers.pid), 2);
    strictEqual(await workerThreadsOf(main.pid), 0);
    strictEqual((await workers.stop()).code, 0, "Workers end on SIGTERM");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

if (kvmBackend.skip !== undefined) {
  console.log(`kvm_stat_readers_test [kvm]: skipped: ${kvmBackend.skip}`);
}

Deno.test({
  name: "kvm_stat [kvm] reads the real debugfs the same in reader Workers: EPERM is permission",
  ignore: kvmBackend.skip !== undefined,
  async fn() {
    const kvm = await kvmBackend.kvmDir("");
    let vm: QemuVm | undefined;
    let vmDir = "";
    const both = await pair([
      `--collector.kvmdebug.dir=${kvm}`,
      "--path.procfs=/proc",
      "--no-collector.vcpu_time",
    ]);
    try {
      const started = await kvmBackend.start(kvm, "readers", 2);
      vm = started.vm;
      vmDir = started.dir;
      const series = (text: string): string[] =>
        text.split("\n").filter((l) => l.includes('domain="readers"')).map((l) =>
          l.replace(/ \S+$/, "")
        );
      const refused = (text: string): string | undefined =>
        seriesValue(
          text,
          'kvm_exporter_stat_read_errors{collector="kvm_stat",reason="permission"}',
        );
      // Other tests' VMs come and go on the same debugfs: compare the scrapes of one moment.
      await waitFor(async () => {
        const main = await scrapeText(both.main.app);
        const workers = await scrapeText(both.workers.app);
        return refused(main) === refused(workers) &&
          series(main).join() === series(workers).join();
      }, { what: "both exporters to see the same real debugfs" });
      const workers = await scrapeText(both.workers.app);
      const lockedDown = await Deno.readTextFile(`${kvm}/exits`).then(() => false, () => true);
      if (lockedDown) ok(Number(refused(workers)) > 0, "EPERM files counted as permission");
      ok(series(workers).some((l) => l.startsWith("kvm_stat_vcpu_pid_count")), "vCPU files read");
      strictEqual(seriesValue(workers, SUCCESS), "1");
      ok(await readerThreads() > 0, "the Workers read");
    } finally {
      both.main.exporter.close();
      both.workers.exporter.close();
      if (vm !== undefined) await kvmBackend.stop(vm, vmDir);
    }
  },
});
