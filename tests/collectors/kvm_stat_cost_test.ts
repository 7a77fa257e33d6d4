/**
 * The cost of a kvm_stat scrape is linear in the stat files, shown without
 * timing anything: a counting FileSystem seam (wrapping the real one) counts
 * the file operations of a steady-state scrape on trees of three sizes.
 *
 * @module
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { countStatFiles, parseShape, planTree, writeTree } from "../../bench/debugfs_tree.ts";
import type { StatReads } from "../../src/debugfs/stat_reader.ts";
import { denoFileSystem, type FileSystem } from "../../src/system/file_system.ts";
import { buildApp, scrapeText, seriesValue } from "../support/sample_exporter.ts";

interface Counts {
  dirs: number;
  syncReads: number;
  asyncReads: number;
}

function countingFileSystem(counts: Counts): FileSystem {
  return {
    readDir: (path) => {
      counts.dirs++;
      return denoFileSystem.readDir(path);
    },
    readDirSync: (path) => {
      counts.dirs++;
      return denoFileSystem.readDirSync(path);
    },
    readTextFile: (path, options) => {
      counts.asyncReads++;
      return denoFileSystem.readTextFile(path, options);
    },
    readRegularSync: (path, maxBytes) => {
      counts.syncReads++;
      return denoFileSystem.readRegularSync(path, maxBytes);
    },
    mode: denoFileSystem.mode,
    readLink: denoFileSystem.readLink,
    identitySync: denoFileSystem.identitySync,
    openKept: denoFileSystem.openKept,
  };
}

/** The operations of the second scrape of a tree, and the stat files it holds. */
async function steadyScrape(
  size: string,
  // kvm_stat's own cost by default: vcpu_time and vm_process read procfs, not debugfs.
  collectors = ["--no-collector.vcpu_time", "--no-collector.vm_process"],
  reads: StatReads["kind"] = "sync",
): Promise<{ counts: Counts; files: number; vms: number; readers: number }> {
  const shape = parseShape(size);
  const root = await Deno.makeTempDir({ prefix: "kvm_exporter_cost_" });
  try {
    await writeTree(root, planTree(shape));
    const counts: Counts = { dirs: 0, syncReads: 0, asyncReads: 0 };
    const { app, readers } = await buildApp([
      `--collector.kvmdebug.dir=${root}/kvm`,
      `--path.procfs=${root}/proc`,
      "--collector.kvm_stat.files-exclude=^mmu_rmaps_stat$",
      ...collectors,
    ], { fs: countingFileSystem(counts), reads });
    await scrapeText(app); // Lists every dir once.
    counts.dirs = counts.syncReads = counts.asyncReads = 0;
    const text = await scrapeText(app);
    strictEqual(seriesValue(text, 'kvm_scrape_collector_success{collector="kvm_stat"}'), "1");
    // One mmu_rmaps_stat per VM is excluded.
    return {
      counts,
      files: countStatFiles(shape) - shape.vms,
      vms: shape.vms,
      readers: readers.started,
    };
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("kvm_stat costs one synchronous read per stat file and one listing per VM dir, at every size", async () => {
  for (const size of ["1x1", "4x2", "10x4"]) {
    const { counts, files, vms } = await steadyScrape(size);
    // The root (by discovery) and each VM dir; no vCPU dir is listed again while its VM lives. Discovery reads
    // each VMM's command line once per VM lifetime, so the steady scrape reads nothing async.
    deepStrictEqual(counts, { dirs: 1 + vms, syncReads: files, asyncReads: 0 }, size);
  }
});

Deno.test("kvm_stat reads each stat file once through the file system seam, under each read strategy", async () => {
  // The in-thread reader Workers read through the seam's synchronous read.
  const expected = { sync: "syncReads", async: "asyncReads", workers: "syncReads" } as const;
  for (const reads of ["sync", "async", "workers"] as const) {
    const { counts, files, vms, readers } = await steadyScrape("4x2", undefined, reads);
    const other = expected[reads] === "syncReads" ? "asyncReads" : "syncReads";
    deepStrictEqual(counts, { dirs: 1 + vms, [expected[reads]]: files, [other]: 0 }, reads);
    strictEqual(readers > 0, reads === "workers", `${reads}: ${readers} readers started`);
  }
});

Deno.test("kvm_stat and vcpu_time share one listing of each VM dir per scrape", async () => {
  for (const size of ["1x1", "4x2"]) {
    const { counts, vms } = await steadyScrape(size, []);
    strictEqual(counts.dirs, 1 + vms, size);
  }
});

Deno.test("kvm_stat sees a vCPU hot-plugged after its VM's listing was kept, and forgets an unplugged one", async () => {
  const root = await Deno.makeTempDir({ prefix: "kvm_exporter_hotplug_" });
  try {
    await writeTree(root, planTree(parseShape("1x1")));
    const [vm] = (await Array.fromAsync(Deno.readDir(`${root}/kvm`))).filter((e) => e.isDirectory);
    const { app } = await buildApp([
      `--collector.kvmdebug.dir=${root}/kvm`,
      `--path.procfs=${root}/proc`,
    ]);
    const first = await scrapeText(app);
    const domain = /kvm_stat_vcpu_tsc_offset_count\{domain="([^"]+)",vcpu="0"\}/.exec(first)?.[1];
    const series = (vcpu: number): string =>
      `kvm_stat_vcpu_tsc_offset_count{domain="${domain}",vcpu="${vcpu}"}`;
    ok(domain !== undefined, "vCPU 0 exported");
    strictEqual(seriesValue(first, series(1)), undefined);
    await Deno.mkdir(`${root}/kvm/${vm!.name}/vcpu1`);
    await Deno.writeTextFile(`${root}/kvm/${vm!.name}/vcpu1/tsc-offset`, "42\n");
    strictEqual(seriesValue(await scrapeText(app), series(1)), "42");
    await Deno.writeTextFile(`${root}/kvm/${vm!.name}/vcpu1/tsc-offset`, "43\n");
    strictEqual(seriesValue(await scrapeText(app), series(1)), "43", "values are read fresh");
    await Deno.remove(`${root}/kvm/${vm!.name}/vcpu1`, { recursive: true });
    strictEqual(seriesValue(await scrapeText(app), series(1)), undefined);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
