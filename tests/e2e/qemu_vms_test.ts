/**
 * The exporter against real QEMU VMs: discovery and names from the real
 * command lines, vCPU counts and values, VMs that exit and come back, and
 * vm.yaml reloads by SIGHUP, by file change and with a broken file.
 *
 * Each VM's VMM process (vm_process) is checked against what the test reads of it in /proc.
 *
 * The same scenario runs on both backends of tests/support/vm_backends.ts:
 * real KVM and debugfs where /dev/kvm exists, real QEMU processes under TCG
 * with a laid-out debugfs everywhere else.
 *
 * @module
 */

import { ok, strictEqual } from "node:assert/strict";
import { startExporter, waitFor } from "../support/exporter_process.ts";
import type { QemuVm } from "../support/qemu.ts";
import { kvmBackend, tcgBackend } from "../support/vm_backends.ts";
import { seriesValue } from "../support/sample_exporter.ts";

// A comma, a quote and non-ASCII letters: QEMU's ",," escaping and label escaping both matter.
const ODD_NAME = 'web,1 "q" ünï';
const ODD_LABEL = 'web,1 \\"q\\" ünï';

/** Counts the stat files under the dir that the kernel refuses to us, as the exporter should. */
/** Stat files the kernel refuses in the root and in the VM dirs `dirs` (other tests' VMs come and go). */
async function countRefused(kvm: string, dirs: ReadonlySet<string>): Promise<number> {
  let refused = 0;
  async function walk(dir: string, level: number): Promise<void> {
    for await (const e of Deno.readDir(dir)) {
      const path = `${dir}/${e.name}`;
      if (e.isDirectory) {
        if (level === 0 && dirs.has(e.name)) await walk(path, 1);
        if (level === 1 && /^vcpu\d+$/.test(e.name)) await walk(path, 2);
      } else if (e.name !== "mmu_rmaps_stat") {
        try {
          await Deno.readTextFile(path);
        } catch (error) {
          if (error instanceof Deno.errors.PermissionDenied) refused++;
        }
      }
    }
  }
  await walk(kvm, 0);
  return refused;
}

/** The exported vCPU series of one VM, checked against the files the test reads itself. */
async function checkVcpuValues(
  text: string,
  domainLabel: string,
  dir: string,
  smp: number,
): Promise<void> {
  for (let i = 0; i < smp; i++) {
    for (const file of ["pid", "tsc-offset"]) {
      const metric = `kvm_stat_vcpu_${
        file.replace("-", "_")
      }_count{domain="${domainLabel}",vcpu="${i}"}`;
      const expected = (await Deno.readTextFile(`${dir}/vcpu${i}/${file}`)).trim();
      strictEqual(seriesValue(text, metric), expected, metric);
    }
  }
  const vcpus = new Set(
    text.split("\n").filter((l) =>
      l.startsWith(`kvm_stat_vcpu_pid_count{domain="${domainLabel}",`)
    ),
  );
  strictEqual(vcpus.size, smp, `vCPU series of ${domainLabel}`);
}

/** A VMM's RSS in bytes and its thread count, as the test reads them itself. */
async function ownReading(pid: number): Promise<{ rss: number; threads: number }> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const rss = Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1]) * 1024;
  const threads = Number(/^Threads:\s+(\d+)$/m.exec(status)?.[1]);
  return { rss, threads };
}

/**
 * The VM's vm_process series are present and plausible: CPU time by mode adding up to the total,
 * RSS and threads between what the test read of the process just before and after the scrape
 * (QEMU's RSS grows while it boots: a scrape whose values fall outside is retried), and a start
 * time within the test's run.
 */
async function checkVmProcess(
  scrape: () => Promise<string>,
  vm: { domain: string; pid: number; testStart: number },
): Promise<void> {
  const labels = `domain="${vm.domain}"`;
  const value = (text: string, series: string): number => {
    const found = seriesValue(text, series);
    ok(found !== undefined, `${series} is exported`);
    return Number(found);
  };
  await waitFor(async () => {
    const before = await ownReading(vm.pid);
    const text = await scrape();
    const after = await ownReading(vm.pid);
    const user = value(text, `kvm_vm_cpu_seconds_total{${labels},mode="user"}`);
    const system = value(text, `kvm_vm_cpu_seconds_total{${labels},mode="system"}`);
    const total = value(text, `kvm_vm_cpu_time_seconds_total{${labels}}`);
    ok(user + system > 0, "QEMU has run");
    strictEqual(Math.round(total * 100), Math.round((user + system) * 100), "total is both modes");
    const start = value(text, `kvm_vm_process_start_time_seconds{${labels}}`);
    // btime is whole seconds and may differ from the wall clock by a second either way.
    ok(start >= vm.testStart - 2 && start <= Date.now() / 1000 + 2, `start time ${start}`);
    const rss = value(text, `kvm_vm_memory_resident_bytes{${labels}}`);
    const threads = value(text, `kvm_vm_process_threads{${labels}}`);
    const within = (x: number, a: number, b: number): boolean =>
      x >= Math.min(a, b) && x <= Math.max(a, b);
    if (!within(rss, before.rss, after.rss)) {
      throw new Error(`RSS ${rss} not within ${before.rss}..${after.rss}`);
    }
    if (!within(threads, before.threads, after.threads)) {
      throw new Error(`threads ${threads} not within ${before.threads}..${after.threads}`);
    }
    return true;
  }, { timeoutMs: 20_000, what: `${vm.domain}'s vm_process values to match its /proc` });
}

for (const backend of [kvmBackend, tcgBackend]) {
  if (backend.skip !== undefined) {
    console.log(`qemu_vms_test [${backend.name}]: skipped: ${backend.skip}`);
  }
  Deno.test({
    name:
      `main.ts [${backend.name}] names real QEMU VMs, follows exits, restarts and vm.yaml reloads`,
    ignore: backend.skip !== undefined,
    async fn() {
      const testStart = Date.now() / 1000;
      const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_vms_" });
      const vms: QemuVm[] = [];
      try {
        const kvm = await backend.kvmDir(tmp);
        const config = `${tmp}/vm.yaml`;
        await Deno.writeTextFile(
          config,
          "# No VMs named here: names come from the command lines.\n",
        );
        const odd = await backend.start(kvm, ODD_NAME, 2);
        vms.push(odd.vm);
        let db = await backend.start(kvm, "db", 3);
        vms.push(db.vm);

        await using exporter = await startExporter([
          "--web.listen-address=127.0.0.1:0",
          `--collector.kvmdebug.dir=${kvm}`,
          `--collector.vmmap.path=${config}`,
          "--path.procfs=/proc",
          "--web.enable-lifecycle",
        ]);
        const scrape = async (): Promise<string> =>
          await (await fetch(`${exporter.baseUrl}/metrics`)).text();

        // 1. Names from the real command lines, vCPU counts and values, success, refused stats counted.
        let text = await scrape();
        strictEqual(seriesValue(text, 'kvm_scrape_collector_success{collector="kvm_stat"}'), "1");
        const oddDir = odd.dir.split("/").at(-1);
        strictEqual(
          seriesValue(
            text,
            `kvm_vm_info{domain="${ODD_LABEL}",pid="${odd.vm.pid}",kvm_debug_dir="${oddDir}",name_source="cmdline"}`,
          ),
          "1",
        );
        await checkVcpuValues(text, ODD_LABEL, odd.dir, 2);
        await checkVcpuValues(text, "db", db.dir, 3);
        strictEqual(seriesValue(text, 'kvm_scrape_collector_success{collector="vm_process"}'), "1");
        await checkVmProcess(scrape, { domain: ODD_LABEL, pid: odd.vm.pid, testStart });
        await checkVmProcess(scrape, { domain: "db", pid: db.vm.pid, testStart });
        // Other tests' KVM VMs share the real debugfs: count the dirs this scrape saw, and scrape
        // again if one came or went in between.
        await waitFor(async () => {
          const seen = await scrape();
          const dirs = new Set([...seen.matchAll(/kvm_debug_dir="([^"]+)"/g)].map((m) => m[1]!));
          const exported = seriesValue(
            seen,
            'kvm_exporter_stat_read_errors{collector="kvm_stat",reason="permission"}',
          );
          return exported === String(await countRefused(kvm, dirs));
        }, {
          what: "the exported permission count to match the files refused in the scraped dirs",
        });

        // 2. A VM exits: gone from the next scrape, with no error.
        await backend.stop(db.vm, db.dir);
        text = await scrape();
        ok(!text.includes('domain="db"'), "the killed VM is gone");
        strictEqual(seriesValue(text, 'kvm_scrape_collector_success{collector="kvm_stat"}'), "1");

        // 3. Restarted with a new pid: back under the same name.
        db = await backend.start(kvm, "db", 3);
        vms.push(db.vm);
        text = await scrape();
        strictEqual(
          seriesValue(
            text,
            `kvm_vm_info{domain="db",pid="${db.vm.pid}",kvm_debug_dir="${
              db.dir.split("/").at(-1)
            }",name_source="cmdline"}`,
          ),
          "1",
        );

        // 4. vm.yaml renames a VM; SIGHUP reloads it.
        await Deno.writeTextFile(config, `vm_infos:\n  renamed:\n    pid: ${odd.vm.pid}\n`);
        Deno.kill(exporter.pid, "SIGHUP");
        await waitFor(async () => (await scrape()).includes('kvm_vm_info{domain="renamed"'), {
          timeoutMs: 10_000,
          what: "the SIGHUP reload to rename the VM",
        });
        // The file watch may have reloaded it too: the signal must have done so on its own.
        await waitFor(() => /msg="Loaded vm.yaml".* reason=SIGHUP/.test(exporter.stderrText()), {
          timeoutMs: 10_000,
          what: "a reload for SIGHUP in the log",
        });
        text = await scrape();
        ok(!text.includes(`domain="${ODD_LABEL}"`));
        strictEqual(seriesValue(text, "kvm_exporter_config_last_reload_successful"), "1");

        // 5. Replacing the file, as editors do, is seen without a signal.
        await Deno.writeTextFile(
          `${config}.tmp`,
          `vm_infos:\n  touched:\n    pid: ${odd.vm.pid}\n`,
        );
        await Deno.rename(`${config}.tmp`, config);
        await waitFor(async () => (await scrape()).includes('kvm_vm_info{domain="touched"'), {
          timeoutMs: 10_000,
          what: "the file watch to rename the VM",
        });

        // 6. A broken vm.yaml is rejected: the old name stays, the reload metric goes to 0.
        await Deno.writeTextFile(config, "vm_infos:\n  broken:\n    pid: [1\n");
        await waitFor(
          async () =>
            seriesValue(await scrape(), "kvm_exporter_config_last_reload_successful") === "0",
          { timeoutMs: 10_000, what: "the broken vm.yaml to be rejected" },
        );
        ok((await scrape()).includes('kvm_vm_info{domain="touched"'), "the old name stays");
        ok(
          exporter.stderrText().split("\n").some((l) =>
            l.includes("Cannot load vm.yaml; keeping the config in force") &&
            /vm\.yaml:\d+:\d+: /.test(l)
          ),
          "the error names path:line:col",
        );
        const reload = await fetch(`${exporter.baseUrl}/-/reload`, { method: "POST" });
        strictEqual(reload.status, 500);
        ok(/vm\.yaml:\d+:\d+: /.test(await reload.text()));
      } finally {
        await Promise.all(vms.map((vm) => vm.stop()));
        await Deno.remove(tmp, { recursive: true });
      }
    },
  });
}
