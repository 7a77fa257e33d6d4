/**
 * vcpu_time keeps each vCPU thread's schedstat open and reads it again from its start, and lets
 * go once the thread is gone: shown on a real process's procfs (a child `sleep` stands for a
 * vCPU thread), counting the seam's opens, and the budget that bounds the files kept.
 *
 * @module
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { denoFileSystem, type FileSystem } from "../../src/system/file_system.ts";
import { KeptFileBudget, keptFilesMax } from "../../src/system/kept_file.ts";
import { fdsOn, reapChild } from "../support/kept_fds.ts";
import { buildApp, scrapeText, seriesValue } from "../support/sample_exporter.ts";
import { waitFor } from "../support/exporter_process.ts";

Deno.test("vcpu_time keeps a vCPU thread's schedstat open, re-reads it, and closes it once the thread exits", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_vcpu_kept_" });
  const child = new Deno.Command("sleep", { args: ["600"], stdout: "null", stderr: "null" })
    .spawn();
  try {
    const pid = child.pid;
    await Deno.mkdir(`${tmp}/kvm/${pid}-7/vcpu0`, { recursive: true });
    await Deno.writeTextFile(`${tmp}/kvm/${pid}-7/vcpu0/pid`, `${pid}\n`);
    const schedstat = `/proc/${pid}/task/${pid}/schedstat`;
    const counts = { guarded: 0, kept: 0 };
    const fs: FileSystem = {
      ...denoFileSystem,
      readTextFile: (path, options) => {
        if (path === schedstat) counts.guarded++;
        return denoFileSystem.readTextFile(path, options);
      },
      openKept: (path) => {
        if (path === schedstat) counts.kept++;
        return denoFileSystem.openKept(path);
      },
    };
    const { app, exporter } = await buildApp([
      `--collector.kvmdebug.dir=${tmp}/kvm`,
      "--path.procfs=/proc",
      "--no-collector.vm_process",
    ], { fs });
    try {
      const series = `kvm_vcpu_cpu_seconds_total{domain="${pid}-7",vcpu="0"}`;
      ok(seriesValue(await scrapeText(app), series) !== undefined);
      deepStrictEqual(counts, { guarded: 1, kept: 1 }, "read the guarded way, then kept");
      strictEqual(fdsOn(schedstat), 1);
      for (let i = 0; i < 3; i++) ok(seriesValue(await scrapeText(app), series) !== undefined);
      deepStrictEqual(counts, { guarded: 1, kept: 1 }, "read through the kept file since");
      strictEqual(fdsOn(schedstat), 1);

      child.kill("SIGKILL");
      await child.status;
      const text = await scrapeText(app);
      strictEqual(seriesValue(text, series), undefined, "a gone thread is not reported");
      strictEqual(fdsOn(schedstat), 0, "its kept file is closed");
    } finally {
      exporter.close();
    }
  } finally {
    await reapChild(child);
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("vcpu_time closes a kept schedstat its VM no longer names while the thread lives", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_vcpu_kept_" });
  // A process of two threads: vCPU 0 first names the main one, then the other.
  const child = new Deno.Command("python3", {
    args: [
      "-c",
      "import threading,time\nthreading.Thread(target=time.sleep,args=(600,)).start()\ntime.sleep(600)",
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    const pid = child.pid;
    let other = "";
    await waitFor(async () => {
      const tids = (await Array.fromAsync(Deno.readDir(`/proc/${pid}/task`))).map((e) => e.name);
      other = tids.find((t) => t !== String(pid)) ?? "";
      return other !== "";
    }, { what: "the second thread" });
    const vm = `${tmp}/kvm/${pid}-7`;
    await Deno.mkdir(`${vm}/vcpu0`, { recursive: true });
    await Deno.writeTextFile(`${vm}/vcpu0/pid`, `${pid}\n`);
    const { app, exporter } = await buildApp([
      `--collector.kvmdebug.dir=${tmp}/kvm`,
      "--path.procfs=/proc",
      "--no-collector.vm_process",
    ]);
    try {
      const first = `/proc/${pid}/task/${pid}/schedstat`;
      await scrapeText(app);
      strictEqual(fdsOn(first), 1);
      // A vCPU comes (the vCPU count changes, so the pid files are read again) and vCPU 0 now
      // names the other thread: the first thread lives on, but no vCPU reads its file.
      await Deno.writeTextFile(`${vm}/vcpu0/pid`, `${other}\n`);
      await Deno.mkdir(`${vm}/vcpu1`);
      await Deno.writeTextFile(`${vm}/vcpu1/pid`, `${other}\n`);
      const text = await scrapeText(app);
      ok(seriesValue(text, `kvm_vcpu_cpu_seconds_total{domain="${pid}-7",vcpu="1"}`) !== undefined);
      strictEqual(fdsOn(first), 0, "the unread file is closed");
      strictEqual(fdsOn(`/proc/${pid}/task/${other}/schedstat`), 1, "the one read is kept, once");
    } finally {
      exporter.close();
    }
  } finally {
    await reapChild(child);
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("keptFilesMax() is a quarter of the soft open file limit, of 1024 when unknown", () => {
  const cases: [number | undefined, number][] = [[1024, 256], [65536, 16384], [undefined, 256], [
    3,
    0,
  ]];
  for (const [limit, want] of cases) strictEqual(keptFilesMax(limit), want, String(limit));
});

Deno.test("KeptFileBudget takes places up to its maximum and gets them back", () => {
  const budget = new KeptFileBudget(2);
  deepStrictEqual([budget.take(), budget.take(), budget.take()], [true, true, false]);
  strictEqual(budget.used, 2);
  budget.give();
  deepStrictEqual([budget.take(), budget.take()], [true, false]);
  budget.give();
  budget.give();
  budget.give(); // One too many: never below zero.
  strictEqual(budget.used, 0);
});
