/**
 * kvm_stat collector failure modes that a real host produces only by chance:
 * kernel lockdown (EPERM on 0644 files), a VM that exits between listing and
 * reading, a debugfs root that cannot be listed. The FileSystem seam wraps
 * Deno's real calls on a fixture copy; nothing of ours is mocked.
 *
 * @module
 */

import { ok, strictEqual } from "node:assert/strict";
import { denoFileSystem, type FileSystem } from "../../src/system/file_system.ts";
import { buildApp, fixtureArgs, scrapeText, seriesValue } from "../support/sample_exporter.ts";

// Cumulative and peak stats: mode 0644 in debugfs, refused under lockdown.
const INSTANT = new Set([
  "blocking",
  "guest_mode",
  "mmu_unsync",
  "nx_lpage_splits",
  "pages_4k",
  "pages_2m",
  "pages_1g",
]);

function lockedDown(): FileSystem {
  return {
    readDir: denoFileSystem.readDir,
    readTextFile: (path) => {
      const name = path.split("/").at(-1)!;
      const inDebugfs = path.includes("/sample/kvm/");
      const inVcpuDir = /\/vcpu\d+\//.test(path);
      if (inDebugfs && !inVcpuDir && !INSTANT.has(name)) {
        return Promise.reject(
          new Deno.errors.PermissionDenied(
            `Operation not permitted (os error 1): readfile '${path}'`,
          ),
        );
      }
      return denoFileSystem.readTextFile(path);
    },
  };
}

Deno.test("kvm_stat under lockdown exports instant and vCPU stats, counts the rest, stays successful", async () => {
  const { app, logs } = await buildApp(fixtureArgs("sample"), { fs: lockedDown() });
  const text = await scrapeText(app);
  strictEqual(seriesValue(text, 'kvm_scrape_collector_success{collector="kvm_stat"}'), "1");
  strictEqual(seriesValue(text, 'kvm_stat_exits_count{domain="global"}'), undefined);
  ok(seriesValue(text, 'kvm_stat_pages_4k_count{domain="target_vm"}') !== undefined);
  ok(seriesValue(text, 'kvm_stat_vcpu_tsc_offset_count{domain="web-01",vcpu="1"}') !== undefined);
  // 60 stat files at the root and in each of 3 VM dirs, 7 of them instant.
  const refused = (60 - INSTANT.size) * 4;
  strictEqual(
    seriesValue(text, 'kvm_exporter_stat_read_errors{collector="kvm_stat",reason="permission"}'),
    String(refused),
  );
  const warnsAfterFirst = logs.filter((l) => l.includes("level=warn")).length;
  strictEqual(warnsAfterFirst, refused, "each refused path is logged once at warn");
  await scrapeText(app);
  strictEqual(
    logs.filter((l) => l.includes("level=warn")).length,
    warnsAfterFirst,
    "a second scrape logs no new warnings",
  );
});

Deno.test("kvm_stat skips a VM dir that vanishes between listing and reading", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const src = new URL("../fixtures/sample/", import.meta.url).pathname;
    await new Deno.Command("cp", { args: ["-r", `${src}kvm`, `${src}vm.yaml`, dir] }).output();
    let removed = false;
    const fs: FileSystem = {
      readDir: (path) => {
        if (!removed && path.endsWith("/20431-12")) {
          removed = true;
          Deno.removeSync(path, { recursive: true }); // The VM exits right after discovery saw it.
        }
        return denoFileSystem.readDir(path);
      },
      readTextFile: denoFileSystem.readTextFile,
    };
    const { app } = await buildApp([
      `--collector.kvmdebug.dir=${dir}/kvm`,
      `--collector.vmmap.path=${dir}/vm.yaml`,
      `--path.procfs=${src}proc`,
    ], { fs });
    const text = await scrapeText(app);
    ok(removed);
    strictEqual(seriesValue(text, 'kvm_scrape_collector_success{collector="kvm_stat"}'), "1");
    strictEqual(seriesValue(text, 'kvm_stat_exits_count{domain="web-01"}'), undefined);
    ok(seriesValue(text, 'kvm_stat_exits_count{domain="target_vm"}') !== undefined);
    ok(seriesValue(text, 'kvm_stat_exits_count{domain="global"}') !== undefined);
    // Gone from the next scrape's discovery too, without any error.
    const again = await scrapeText(app);
    ok(!again.includes('domain="web-01"'));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("kvm_stat reports success 0 with a 200 when the debugfs root cannot be listed", async () => {
  const { app, logs } = await buildApp([
    "--collector.kvmdebug.dir=/nonexistent/kvm/",
    `--collector.vmmap.path=${new URL("../fixtures/sample/vm.yaml", import.meta.url).pathname}`,
  ]);
  const response = await app.request("/metrics");
  strictEqual(response.status, 200);
  const text = await response.text();
  strictEqual(seriesValue(text, 'kvm_scrape_collector_success{collector="kvm_stat"}'), "0");
  ok(logs.some((l) => l.includes("level=error") && l.includes("/nonexistent/kvm")));
});

Deno.test("kvm_stat holds no debugfs file open after a scrape", async () => {
  const { app } = await buildApp(fixtureArgs("sample"));
  await scrapeText(app);
  const fixture = new URL("../fixtures/sample/", import.meta.url).pathname;
  for await (const fd of Deno.readDir(`/proc/${Deno.pid}/fd`)) {
    let target = "";
    try {
      target = await Deno.readLink(`/proc/${Deno.pid}/fd/${fd.name}`);
    } catch {
      continue; // Closed while we listed.
    }
    ok(!target.startsWith(fixture), `fd ${fd.name} still open on ${target}`);
  }
});

Deno.test("kvm_stat types stats the catalog lacks by their file mode, stat()ing each such name once", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_mode_" });
  try {
    const kvm = `${tmp}/kvm`;
    await Deno.mkdir(`${kvm}/100-1`, { recursive: true });
    const files: [name: string, mode: number][] = [
      ["exits", 0o444], // In the catalog: a counter, whatever the mode says.
      ["new_counter", 0o644],
      ["new_gauge", 0o444],
      ["max_new_peak", 0o644],
    ];
    for (const [name, mode] of files) {
      await Deno.writeTextFile(`${kvm}/100-1/${name}`, "3\n", { mode });
      await Deno.chmod(`${kvm}/100-1/${name}`, mode);
    }
    await Deno.writeTextFile(`${tmp}/vm.yaml`, "vm_infos:\n  a: {kvm_debug_dir: 100-1}\n");
    const statted: string[] = [];
    const fs: FileSystem = {
      ...denoFileSystem,
      mode: (path) => {
        statted.push(path.split("/").at(-1)!);
        return denoFileSystem.mode!(path);
      },
    };
    const { app } = await buildApp([
      `--collector.kvmdebug.dir=${kvm}`,
      `--collector.vmmap.path=${tmp}/vm.yaml`,
      `--path.procfs=${tmp}/proc`,
      "--metrics.naming=prometheus",
    ], { fs });
    await scrapeText(app);
    const text = await scrapeText(app);
    for (
      const line of [
        "# TYPE kvm_vm_exits_total counter",
        "# TYPE kvm_vm_new_counter_total counter",
        "# TYPE kvm_vm_new_gauge gauge",
        "# TYPE kvm_vm_max_new_peak gauge",
      ]
    ) ok(text.includes(`${line}\n`), line);
    strictEqual(JSON.stringify(statted.sort()), '["max_new_peak","new_counter","new_gauge"]');
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
