/**
 * Under kernel lockdown a steady scrape opens no stat file the kernel already refused for that
 * VM, under every read strategy, and still counts each refusal under its reason; a VM made again
 * under the same `PID-FD` dir is tried afresh. Shown with a refusing, counting file system (the
 * seam wraps Deno's real calls on a bench tree whose files have debugfs's modes) and nothing
 * timed.
 *
 * @module
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { parseShape, planTree, RMAPS_STAT, writeTree } from "../../bench/debugfs_tree.ts";
import { refusingFileSystem } from "../../bench/refusing_file_system.ts";
import type { StatReads } from "../../src/debugfs/stat_reader.ts";
import { buildApp, scrapeText, seriesValue } from "../support/sample_exporter.ts";
import { copyTree } from "../support/fifo.ts";

const PERMISSION = 'kvm_exporter_stat_read_errors{collector="kvm_stat",reason="permission"}';
const SUCCESS = 'kvm_scrape_collector_success{collector="kvm_stat"}';
const LOCKDOWN = 'kvm_exporter_kernel_lockdown{mode="integrity",source="debugfs"}';

/** A 2×2 tree with debugfs's modes, and the 0644 stat files kvm_stat reads (refused). */
async function lockedTree(): Promise<{ root: string; refusable: string[]; vmDirs: string[] }> {
  const root = await Deno.makeTempDir({ prefix: "kvm_exporter_refusals_" });
  const plan = planTree(parseShape("2x2"));
  await writeTree(root, plan);
  // securityfs says nothing; procfs says this process is root: lockdown is inferred from EPERM.
  await Deno.mkdir(`${root}/proc/self`, { recursive: true });
  await Deno.writeTextFile(`${root}/proc/self/status`, "Name:\tkvm_exporter\nUid:\t0\t0\t0\t0\n");
  const refusable = plan.files.filter((f) =>
    f.path.startsWith("kvm/") && f.mode === 0o644 && !f.path.endsWith(`/${RMAPS_STAT}`)
  ).map((f) => `${root}/${f.path}`);
  return { root, refusable, vmDirs: plan.vms.map((vm) => vm.dir) };
}

/** The opens of refused paths in `opens`, by path. */
function refusedOpens(opens: Map<string, number>, refused: Iterable<string>): Map<string, number> {
  const seen = new Map<string, number>();
  for (const path of refused) {
    const n = opens.get(path);
    if (n !== undefined) seen.set(path, n);
  }
  return seen;
}

const STRATEGIES: readonly StatReads["kind"][] = ["sync", "async", "workers"];

for (const reads of STRATEGIES) {
  Deno.test(`kvm_stat [${reads}] under lockdown opens a refused stat file once per VM lifetime and counts it every scrape`, async () => {
    const { root, refusable, vmDirs } = await lockedTree();
    try {
      const locked = refusingFileSystem({ kvmdebugDir: `${root}/kvm` });
      const { app, exporter, readers } = await buildApp([
        `--collector.kvmdebug.dir=${root}/kvm`,
        `--path.procfs=${root}/proc`,
        `--path.sysfs=${root}/sys`,
        "--no-collector.vcpu_time",
        "--no-collector.vm_process",
      ], { fs: locked.fs, reads, lockdown: "unknown" });
      try {
        const first = await scrapeText(app);
        strictEqual(seriesValue(first, SUCCESS), "1");
        deepStrictEqual([...locked.refusedPaths].sort(), refusable.slice().sort());
        strictEqual(seriesValue(first, PERMISSION), String(refusable.length));
        // Debugfs only: discovery reads each VMM's command line once per VM lifetime.
        const debugfsOpens = (): string[] =>
          [...locked.opens.keys()].filter((p) => p.startsWith(`${root}/kvm/`)).sort();
        const readable = debugfsOpens().filter((p) => !locked.refusedPaths.has(p));

        for (let scrape = 2; scrape <= 3; scrape++) {
          locked.reset();
          const text = await scrapeText(app);
          deepStrictEqual(refusedOpens(locked.opens, refusable), new Map(), `scrape ${scrape}`);
          strictEqual(locked.refused.count, 0);
          // Everything else is still read every scrape, once.
          deepStrictEqual(debugfsOpens(), readable);
          ok([...locked.opens.values()].every((n) => n === 1));
          // Still counted under their reason, and lockdown still said.
          strictEqual(seriesValue(text, PERMISSION), String(refusable.length), `scrape ${scrape}`);
          strictEqual(seriesValue(text, SUCCESS), "1");
          strictEqual(seriesValue(text, LOCKDOWN), "1");
        }
        const page = await (await app.request("/")).text();
        ok(page.includes("Kernel lockdown: integrity (inferred from EPERM on debugfs)"), page);

        // The first VM is made again under the same PID-FD name: a new dir, so a new inode (the
        // copy is made before the old dir goes, so its number cannot be the old one's).
        const [again, kept] = vmDirs as [string, string];
        await copyTree(`${root}/kvm/${again}`, `${root}/kvm/${again}.new`);
        await Deno.remove(`${root}/kvm/${again}`, { recursive: true });
        await Deno.rename(`${root}/kvm/${again}.new`, `${root}/kvm/${again}`);
        locked.reset();
        const remade = await scrapeText(app);
        const retried = refusedOpens(locked.opens, refusable);
        const againFiles = refusable.filter((p) => p.startsWith(`${root}/kvm/${again}/`));
        deepStrictEqual(
          [...retried.keys()].sort(),
          againFiles.slice().sort(),
          "only the remade VM's refused files are tried again",
        );
        ok([...retried.values()].every((n) => n === 1));
        ok(againFiles.length > 0 && !againFiles.some((p) => p.includes(`/${kept}/`)));
        strictEqual(seriesValue(remade, PERMISSION), String(refusable.length));

        locked.reset();
        const after = await scrapeText(app);
        deepStrictEqual(refusedOpens(locked.opens, refusable), new Map(), "then remembered again");
        strictEqual(seriesValue(after, PERMISSION), String(refusable.length));
        strictEqual(readers.started > 0, reads === "workers", `${readers.started} readers`);
      } finally {
        exporter.close();
      }
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  });
}

Deno.test("kvm_stat under lockdown counts the same read errors and logs the same lines with refusals remembered", async () => {
  const { root } = await lockedTree();
  try {
    const locked = refusingFileSystem({ kvmdebugDir: `${root}/kvm` });
    const { app, exporter, logs } = await buildApp([
      `--collector.kvmdebug.dir=${root}/kvm`,
      `--path.procfs=${root}/proc`,
      `--path.sysfs=${root}/sys`,
      "--no-collector.vcpu_time",
      "--no-collector.vm_process",
    ], { fs: locked.fs, lockdown: "unknown" });
    try {
      const lines = (from: number): string[] =>
        logs.slice(from).filter((l) => l.includes("reason=permission")).map((l) =>
          l.replace(/^ts=\S+ /, "")
        ).sort();
      const start = logs.length;
      const first = await scrapeText(app);
      const firstLines = lines(start);
      const next = logs.length;
      const second = await scrapeText(app);
      ok(firstLines.length > 0);
      deepStrictEqual(lines(next), firstLines, "one debug line per refused path, every scrape");
      const errors = (text: string): string[] =>
        text.split("\n").filter((l) => l.startsWith("kvm_exporter_stat_read_errors"));
      deepStrictEqual(errors(second), errors(first));
    } finally {
      exporter.close();
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("kvm_stat keeps no EACCES: an LSM's refusal (a policy reload may lift it) is tried every scrape", async () => {
  const { root, refusable } = await lockedTree();
  try {
    const denied = refusingFileSystem({ kvmdebugDir: `${root}/kvm`, errno: 13 });
    const { app, exporter } = await buildApp([
      `--collector.kvmdebug.dir=${root}/kvm`,
      `--path.procfs=${root}/proc`,
      `--path.sysfs=${root}/sys`,
      "--no-collector.vcpu_time",
      "--no-collector.vm_process",
    ], { fs: denied.fs, reads: "sync", lockdown: "unknown" });
    try {
      for (let scrape = 1; scrape <= 2; scrape++) {
        denied.reset();
        const text = await scrapeText(app);
        strictEqual(seriesValue(text, PERMISSION), String(refusable.length), `scrape ${scrape}`);
        deepStrictEqual(
          [...refusedOpens(denied.opens, refusable).keys()].sort(),
          refusable.slice().sort(),
          `scrape ${scrape} opens every refused file`,
        );
      }
    } finally {
      exporter.close();
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
