/**
 * vm_process keeps each VMM's `stat` and `status` (and `io`, where the kernel lets it be read)
 * open, reads them again from their start, and lets go once the process is gone: shown on a real
 * child process (a `sleep` stands for the VMM), counting the seam's opens.
 *
 * @module
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { denoFileSystem, type FileSystem } from "../../src/system/file_system.ts";
import { fdsOn, reapChild } from "../support/kept_fds.ts";
import { buildApp, scrapeText, seriesValue } from "../support/sample_exporter.ts";

Deno.test("vm_process keeps a VMM's stat and status open, re-reads them, and closes them once it exits", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_vmproc_kept_" });
  const child = new Deno.Command("sleep", { args: ["600"], stdout: "null", stderr: "null" })
    .spawn();
  try {
    const pid = child.pid;
    await Deno.mkdir(`${tmp}/kvm/${pid}-7`, { recursive: true });
    const files = ["stat", "status"].map((name) => `/proc/${pid}/${name}`);
    const guarded = new Map<string, number>();
    const kept = new Map<string, number>();
    const count = (map: Map<string, number>, path: string) => {
      if (path.startsWith(`/proc/${pid}/`)) map.set(path, (map.get(path) ?? 0) + 1);
    };
    const fs: FileSystem = {
      ...denoFileSystem,
      readTextFile: (path, options) => {
        count(guarded, path);
        return denoFileSystem.readTextFile(path, options);
      },
      openKept: (path) => {
        count(kept, path);
        return denoFileSystem.openKept(path);
      },
    };
    const { app, exporter } = await buildApp([
      `--collector.kvmdebug.dir=${tmp}/kvm`,
      "--path.procfs=/proc",
      "--no-collector.vcpu_time",
    ], { fs });
    try {
      const threads = `kvm_vm_process_threads{domain="${pid}-7"}`;
      strictEqual(seriesValue(await scrapeText(app), threads), "1");
      for (const path of files) {
        strictEqual(guarded.get(path), 1, `${path} read the guarded way once`);
        strictEqual(kept.get(path), 1, `${path} then kept`);
        strictEqual(fdsOn(path), 1, path);
      }
      for (let i = 0; i < 3; i++) strictEqual(seriesValue(await scrapeText(app), threads), "1");
      for (const path of files) {
        deepStrictEqual([guarded.get(path), kept.get(path)], [1, 1], `${path} read kept since`);
        strictEqual(fdsOn(path), 1, path);
      }

      child.kill("SIGKILL");
      await child.status;
      const text = await scrapeText(app);
      strictEqual(seriesValue(text, threads), undefined, "a gone VMM is not reported");
      for (const path of files) strictEqual(fdsOn(path), 0, `${path} is closed`);
      ok(Number(seriesValue(text, 'kvm_exporter_vm_process_errors{reason="vanished"}')) > 0);
    } finally {
      exporter.close();
    }
  } finally {
    await reapChild(child);
    await Deno.remove(tmp, { recursive: true });
  }
});
