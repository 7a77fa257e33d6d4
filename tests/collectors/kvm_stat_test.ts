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
import { treeArgs, waitFor } from "../support/exporter_process.ts";
import { startFakeLibvirt } from "../support/fake_libvirt.ts";
import { SAMPLE_LIBVIRT } from "../support/fake_libvirt_sample.ts";
import { startFakeQmp } from "../support/fake_qmp.ts";
import { copyTree, mkfifo } from "../support/fifo.ts";
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

/** Every way kvm_stat can read: each fake file system below is tried under each. */
const STRATEGIES = ["sync", "async", "workers"] as const;

/** Refuses, as lockdown does, every file under `kvm` but the instant stats and vCPU files. */
function lockedDown(kvm = "/sample/kvm/"): FileSystem {
  const refusal = (path: string): Error | undefined => {
    const name = path.split("/").at(-1)!;
    const inDebugfs = path.includes(kvm);
    const inVcpuDir = /\/vcpu\d+\//.test(path);
    if (!inDebugfs || inVcpuDir || INSTANT.has(name)) return undefined;
    return new Deno.errors.PermissionDenied(
      `Operation not permitted (os error 1): readfile '${path}'`,
    );
  };
  return {
    ...denoFileSystem,
    readTextFile: (path, options) => {
      const refused = refusal(path);
      if (refused !== undefined) return Promise.reject(refused);
      return denoFileSystem.readTextFile(path, options);
    },
    readRegularSync: (path, maxBytes) => {
      const refused = refusal(path);
      if (refused !== undefined) throw refused;
      return denoFileSystem.readRegularSync(path, maxBytes);
    },
  };
}

for (const reads of STRATEGIES) {
  Deno.test(`kvm_stat [${reads}] under lockdown exports instant and vCPU stats, counts the rest, stays successful`, async () => {
    await underLockdown(reads);
  });
}

async function underLockdown(reads: typeof STRATEGIES[number]): Promise<void> {
  const { app, logs, readers } = await buildApp(fixtureArgs("sample"), {
    fs: lockedDown(),
    reads,
  });
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
  const warns = logs.filter((l) => l.includes("level=warn"));
  strictEqual(warns.length, 1, "one warning for the collector");
  ok(warns[0]!.includes("stats_per_vm=53 "), warns[0]);
  strictEqual(
    logs.filter((l) => l.includes("level=debug") && l.includes("reason=permission")).length,
    refused,
  );
  strictEqual(readers.started > 0, reads === "workers", `${readers.started} readers started`);
}

for (const reads of STRATEGIES) {
  Deno.test(`kvm_stat [${reads}] skips a VM dir that vanishes between listing and reading`, async () => {
    await vanishingVmDir(reads);
  });
}

async function vanishingVmDir(reads: typeof STRATEGIES[number]): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    const src = new URL("../fixtures/sample/", import.meta.url).pathname;
    await new Deno.Command("cp", { args: ["-r", `${src}kvm`, `${src}vm.yaml`, dir] }).output();
    let removed = false;
    const vanish = (path: string): void => {
      if (!removed && path.endsWith("/20431-12")) {
        removed = true;
        Deno.removeSync(path, { recursive: true }); // The VM exits right after discovery saw it.
      }
    };
    const fs: FileSystem = {
      ...denoFileSystem,
      readDir: (path) => {
        vanish(path);
        return denoFileSystem.readDir(path);
      },
      readDirSync: (path) => {
        vanish(path);
        return denoFileSystem.readDirSync(path);
      },
    };
    const { app } = await buildApp([
      `--collector.kvmdebug.dir=${dir}/kvm`,
      `--collector.vmmap.path=${dir}/vm.yaml`,
      `--path.procfs=${src}proc`,
    ], { fs, reads });
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
}

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
  // Its debugfs tree: vcpu_time keeps the procfs schedstat files open, by design.
  const fixture = new URL("../fixtures/sample/kvm/", import.meta.url).pathname;
  // Waited for, not looked at once: under load an earlier test's app may still be listing the
  // fixture's dirs. A file held open for good still fails here, at the deadline.
  let open: string[] = [];
  await waitFor(async () => (open = await fdsUnder(fixture)).length === 0, {
    timeoutMs: 5_000,
    what: "no fd on the fixture",
  }).catch(() => ok(false, `still open: ${open.join(", ")}`));
});

/** This process's fds whose targets are under `dir`, as `fd -> target`. */
async function fdsUnder(dir: string): Promise<string[]> {
  const open: string[] = [];
  for await (const fd of Deno.readDir(`/proc/${Deno.pid}/fd`)) {
    let target = "";
    try {
      target = await Deno.readLink(`/proc/${Deno.pid}/fd/${fd.name}`);
    } catch {
      continue; // Closed while we listed.
    }
    if (target.startsWith(dir)) open.push(`${fd.name} -> ${target}`);
  }
  return open;
}

/** A copy of tests/fixtures/sample in a temp dir, with flags pointing at it. */
async function sampleCopy(): Promise<{ dir: string; args: string[] }> {
  const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_kvm_stat_" });
  await copyTree(new URL("../fixtures/sample", import.meta.url).pathname, dir);
  return {
    dir,
    args: treeArgs(dir),
  };
}

const SUCCESS = 'kvm_scrape_collector_success{collector="kvm_stat"}';
const readErrors = (reason: string): string =>
  `kvm_exporter_stat_read_errors{collector="kvm_stat",reason="${reason}"}`;

Deno.test("kvm_stat under lockdown logs one warning for 2 VMs over 3 scrapes and infers the mode", async () => {
  const { dir, args } = await sampleCopy();
  try {
    await Deno.remove(`${dir}/kvm/31007-9`, { recursive: true });
    // securityfs says nothing; procfs says this process is root.
    await Deno.mkdir(`${dir}/proc/self`);
    await Deno.writeTextFile(`${dir}/proc/self/status`, "Name:\tkvm_exporter\nUid:\t0\t0\t0\t0\n");
    const { app, logs } = await buildApp(args, {
      fs: lockedDown(`${dir}/kvm/`),
      lockdown: "unknown",
    });
    let text = "";
    for (let i = 0; i < 3; i++) text = await scrapeText(app);
    // Before: one warning per refused path, 53 for the host totals and 53 per VM (159).
    const warns = logs.filter((l) => l.includes("level=warn"));
    strictEqual(warns.length, 1, warns.join(""));
    ok(warns[0]!.includes("53 per VM and 53 host totals are not exported"), warns[0]);
    ok(warns[0]!.includes("--collector.qmp"), warns[0]);
    ok(warns[0]!.includes("host_stats=53"), warns[0]);
    strictEqual(
      logs.filter((l) => l.includes("level=debug") && l.includes(dir)).length,
      53 * 3 * 3,
    );
    strictEqual(
      seriesValue(text, 'kvm_exporter_kernel_lockdown{mode="integrity",source="debugfs"}'),
      "1",
    );
    const page = await (await app.request("/")).text();
    ok(page.includes("Kernel lockdown: integrity (inferred from EPERM on debugfs)"), page);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("kvm_stat under lockdown logs nothing at warn for stats the qmp collector supplies", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_kvm_stat_" });
  const qmp = startFakeQmp(`${tmp}/good.sock`, { behaviour: "qemu" });
  try {
    for (const dir of [`${tmp}/kvm`, `${tmp}/kvm/1001-1`]) {
      await Deno.mkdir(dir, { recursive: true });
      await Deno.writeTextFile(`${dir}/exits`, "5\n");
      await Deno.writeTextFile(`${dir}/pages_4k`, "100\n");
    }
    await Deno.writeTextFile(
      `${tmp}/vm.yaml`,
      `vm_infos:\n  good: {kvm_debug_dir: "1001-1", qmp_socket: "${tmp}/good.sock"}\n`,
    );
    const { app, logs } = await buildApp([
      `--collector.kvmdebug.dir=${tmp}/kvm`,
      `--collector.vmmap.path=${tmp}/vm.yaml`,
      `--path.procfs=${tmp}/proc`,
      "--collector.qmp",
    ], { fs: lockedDown(`${tmp}/kvm/`) });
    const text = await scrapeText(app);
    strictEqual(seriesValue(text, 'kvm_stat_exits_count{domain="good"}'), "2001", "from QMP");
    strictEqual(seriesValue(text, readErrors("permission")), "2");
    strictEqual(logs.filter((l) => l.includes("level=warn")).length, 0, logs.join(""));
    ok(
      logs.some((l) =>
        l.includes("level=info") && l.includes("stats_per_vm_from_other_collectors=1")
      ),
    );
  } finally {
    await qmp.close();
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("kvm_stat logs a missing debugfs dir once, and its return once", async () => {
  const { dir, args } = await sampleCopy();
  try {
    await Deno.rename(`${dir}/kvm`, `${dir}/kvm.away`);
    const { app, logs } = await buildApp(args);
    for (let i = 0; i < 3; i++) {
      strictEqual(seriesValue(await scrapeText(app), SUCCESS), "0");
    }
    // Before: one error per scrape.
    strictEqual(logs.filter((l) => l.includes("level=error")).length, 1);
    await Deno.rename(`${dir}/kvm.away`, `${dir}/kvm`);
    for (let i = 0; i < 2; i++) {
      strictEqual(seriesValue(await scrapeText(app), SUCCESS), "1");
    }
    strictEqual(logs.filter((l) => l.includes('msg="Collector recovered"')).length, 1);
    strictEqual(logs.filter((l) => l.includes("level=error")).length, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Hostile stat files in place of target_vm's `exits`, and what each must give. */
const HOSTILE_STATS: { name: string; make: (path: string) => Promise<void>; reason: string }[] = [
  {
    name: "a symlink to /dev/zero",
    make: (path) => Deno.symlink("/dev/zero", path),
    reason: "not_regular",
  },
  {
    name: "a 10 MB file of digits",
    make: (path) => Deno.writeTextFile(path, "7".repeat(10 * 1024 * 1024)),
    reason: "too_large",
  },
  {
    name: "a 400-digit integer",
    make: (path) => Deno.writeTextFile(path, `${"9".repeat(400)}\n`),
    reason: "malformed",
  },
  { name: "a directory symlink", make: (path) => Deno.symlink("..", path), reason: "not_regular" },
];

for (const { name, make, reason } of HOSTILE_STATS) {
  Deno.test(`kvm_stat skips ${name} as ${reason}, exports the rest`, async () => {
    const { dir, args } = await sampleCopy();
    try {
      await Deno.remove(`${dir}/kvm/10620-10/exits`);
      await make(`${dir}/kvm/10620-10/exits`);
      const { app } = await buildApp(args);
      const text = await scrapeText(app);
      strictEqual(seriesValue(text, 'kvm_stat_exits_count{domain="target_vm"}'), undefined);
      ok(seriesValue(text, 'kvm_stat_exits_count{domain="web-01"}') !== undefined);
      strictEqual(seriesValue(text, SUCCESS), "1");
      strictEqual(seriesValue(text, readErrors(reason)), "1");
      ok(!/ \d{21,}$/m.test(text), "no value past u64");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("kvm_stat counts a stat file that is a FIFO as not_regular at once, without waiting for a writer", async () => {
  const { dir, args } = await sampleCopy();
  const fifo = `${dir}/kvm/10620-10/exits`;
  try {
    await Deno.remove(fifo);
    await mkfifo(fifo);
    const { app } = await buildApp(args);
    // Before: the open waited for a writer until the deadline (success 0), and later scrapes
    // counted the path as blocked.
    const headers = { "X-Prometheus-Scrape-Timeout-Seconds": "10" };
    for (let i = 0; i < 2; i++) {
      const text = await (await app.request("/metrics", { headers })).text();
      strictEqual(seriesValue(text, SUCCESS), "1");
      strictEqual(seriesValue(text, readErrors("not_regular")), "1");
      strictEqual(seriesValue(text, readErrors("blocked")), "0");
      strictEqual(seriesValue(text, "kvm_exporter_blocked_reads"), "0");
      strictEqual(seriesValue(text, "kvm_exporter_scrape_timeouts_total"), "0");
      ok(seriesValue(text, 'kvm_stat_exits_count{domain="web-01"}') !== undefined, "the rest");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

for (const reads of STRATEGIES) {
  Deno.test(`kvm_stat [${reads}] answers by the deadline when a stat file's read blocks, and reads it only once`, async () => {
    const { dir, args } = await sampleCopy();
    // A symlink is read the guarded async way; the read hangs until released (a hung file system:
    // since the open is non-blocking, no file here can make it wait).
    const path = `${dir}/kvm/10620-10/exits`;
    const release = Promise.withResolvers<void>();
    try {
      await Deno.rename(path, `${path}.target`);
      await Deno.symlink(`${path}.target`, path);
      const opened: string[] = [];
      const fs: FileSystem = {
        ...denoFileSystem,
        readTextFile: async (p, options) => {
          if (p === path) {
            opened.push(p);
            await release.promise;
            return "42\n";
          }
          return denoFileSystem.readTextFile(p, options);
        },
      };
      const { app } = await buildApp(args, { fs, reads });
      // Prometheus's timeout of 2.5s minus the 0.5s offset: a 2s deadline.
      const headers = { "X-Prometheus-Scrape-Timeout-Seconds": "2.5" };
      const response = await app.request("/metrics", { headers });
      strictEqual(response.status, 200);
      const text = await response.text();
      strictEqual(seriesValue(text, 'kvm_stat_exits_count{domain="target_vm"}'), undefined);
      ok(seriesValue(text, 'kvm_stat_exits_count{domain="web-01"}') !== undefined, "the rest");
      ok(seriesValue(text, 'kvm_stat_pages_4k_count{domain="target_vm"}') !== undefined);
      strictEqual(seriesValue(text, SUCCESS), "0");
      strictEqual(seriesValue(text, "kvm_exporter_scrape_timeouts_total"), "1");
      strictEqual(seriesValue(text, "kvm_exporter_blocked_reads"), "1");

      // The blocked path is not read again while its read is blocked: skipped, counted, no wait.
      const again = await scrapeText(app);
      strictEqual(opened.length, 1);
      strictEqual(seriesValue(again, SUCCESS), "1");
      strictEqual(seriesValue(again, readErrors("blocked")), "1");
      strictEqual(seriesValue(again, "kvm_exporter_scrape_timeouts_total"), "1");
      strictEqual(seriesValue(again, "kvm_exporter_blocked_reads"), "1");

      // Once the read returns, the gauge drops and the path is read again.
      release.resolve();
      await waitFor(
        async () => seriesValue(await scrapeText(app), "kvm_exporter_blocked_reads") === "0",
        { what: "the blocked read to return" },
      );
      strictEqual(
        seriesValue(await scrapeText(app), 'kvm_stat_exits_count{domain="target_vm"}'),
        "42",
      );
    } finally {
      release.resolve();
      await Deno.remove(dir, { recursive: true });
    }
  });
}

const REAL_DEBUGFS = "/sys/kernel/debug/kvm";

/** Why the real-debugfs test cannot run here, or undefined. */
function realDebugfsMissing(): string | undefined {
  try {
    Deno.statSync(`${REAL_DEBUGFS}/exits`);
  } catch (error) {
    return `${REAL_DEBUGFS}/exits cannot be seen (${(error as Error).name}): no KVM debugfs here`;
  }
  const status = Deno.readTextFileSync("/proc/self/status");
  if (!/^Uid:\s+\d+\s+0\s/m.test(status)) return "not running as root: debugfs is root's only";
  return undefined;
}

const realMissing = realDebugfsMissing();
if (realMissing !== undefined) {
  console.log(`skipping the real-debugfs lockdown test: ${realMissing}`);
}

Deno.test({
  name: "kvm_stat infers lockdown from the real debugfs only when it refuses a 0644 file to root",
  ignore: realMissing !== undefined,
  fn: async () => {
    let refused = false;
    try {
      await Deno.readTextFile(`${REAL_DEBUGFS}/exits`); // Mode 0644: refused under lockdown only.
    } catch (error) {
      refused = error instanceof Deno.errors.PermissionDenied;
    }
    const { app, logs } = await buildApp([
      `--collector.kvmdebug.dir=${REAL_DEBUGFS}`,
      "--path.procfs=/proc",
      "--collector.dir.depth=0",
    ], { lockdown: "unknown" });
    const text = await scrapeText(app);
    const series = refused
      ? 'kvm_exporter_kernel_lockdown{mode="integrity",source="debugfs"}'
      : 'kvm_exporter_kernel_lockdown{mode="unknown",source="unknown"}';
    strictEqual(seriesValue(text, series), "1", text);
    strictEqual(seriesValue(text, SUCCESS), "1");
    if (refused) {
      strictEqual(logs.filter((l) => l.includes("level=warn")).length, 1, logs.join(""));
      ok(seriesValue(text, 'kvm_stat_pages_4k_count{domain="global"}') !== undefined, "0444 read");
    }
  },
});

for (const reads of STRATEGIES) {
  Deno.test(`kvm_stat [${reads}] types stats the catalog lacks by their file mode, stat()ing each such name once`, async () => {
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
          return denoFileSystem.mode(path);
        },
      };
      const { app } = await buildApp([
        `--collector.kvmdebug.dir=${kvm}`,
        `--collector.vmmap.path=${tmp}/vm.yaml`,
        `--path.procfs=${tmp}/proc`,
        "--metrics.naming=prometheus",
      ], { fs, reads });
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
}

Deno.test("kvm_stat under lockdown counts the VMs libvirt supplies and names libvirt in its advice", async () => {
  const { dir, args } = await sampleCopy();
  const libvirt = startFakeLibvirt(`${dir}/libvirt.sock`, "libvirt", SAMPLE_LIBVIRT);
  try {
    const line = async (extra: string[]): Promise<string> => {
      const { app, logs } = await buildApp([...args, ...extra], {
        fs: lockedDown(`${dir}/kvm/`),
        lockdown: "unknown",
      });
      await scrapeText(app);
      const warns = logs.filter((l) => l.includes("level=warn") && l.includes("kernel refuses"));
      strictEqual(warns.length, 1, logs.join(""));
      return warns[0]!;
    };
    // Neither collector on: both are named.
    const without = await line([]);
    ok(without.includes("--collector.qmp") && without.includes("--collector.libvirt"), without);
    // libvirt supplies target_vm (matched by its -uuid): counted as supplied, the others not.
    const withLibvirt = await line([
      "--collector.libvirt",
      `--collector.libvirt.socket=${libvirt.path}`,
    ]);
    ok(withLibvirt.includes("stats_per_vm_from_other_collectors=53"), withLibvirt);
    ok(withLibvirt.includes("run it under libvirt"), withLibvirt);
  } finally {
    await libvirt.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
