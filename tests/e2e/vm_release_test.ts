/**
 * The exporter never holds a VM in the kernel. An open KVM debugfs stat file takes a reference
 * on its VM (`kvm_get_kvm_safe` in `kvm_debugfs_open`): while any is open, a VMM that exits leaves
 * its VM's memory and debugfs dir behind, and a new VM that reuses the PID and fd number would
 * find the dir taken. kvm_stat opens, reads and closes each stat file within a scrape, and what
 * the exporter keeps open between scrapes (vcpu_time's `schedstat`, vm_process's procfs files)
 * holds a thread or process, not the VM. Shown on real QEMU VMs under KVM: after `kill -9` of
 * the VMM, its debugfs dir is gone within 2 s, with the exporter idle and with it scraping back to
 * back. A control run holds one stat file open the way a kept debugfs file would, and the dir
 * stays: the measurement can fail.
 *
 * Needs /dev/kvm: TCG makes no debugfs dirs, so there is nothing to release.
 *
 * @module
 */

import { ok, strictEqual } from "node:assert/strict";
import { startExporter, waitFor } from "../support/exporter_process.ts";
import type { QemuVm } from "../support/qemu.ts";
import { seriesValue } from "../support/sample_exporter.ts";
import { kvmBackend } from "../support/vm_backends.ts";

const DEBUGFS = "/sys/kernel/debug/";
/** The bound the release must meet after the VMM is killed. */
const RELEASE_MS = 2_000;

/** Where the process's open fds point. */
function openTargets(pid: number): string[] {
  const targets: string[] = [];
  for (const entry of Deno.readDirSync(`/proc/${pid}/fd`)) {
    try {
      targets.push(Deno.readLinkSync(`/proc/${pid}/fd/${entry.name}`));
    } catch {
      // Closed while listed.
    }
  }
  return targets;
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Kills the VMM with SIGKILL and returns how many ms its debugfs dir took to go (or undefined). */
async function killAndTime(vm: QemuVm, dir: string, waitMs: number): Promise<number | undefined> {
  const start = performance.now();
  await vm.stop(); // SIGKILL, then reaped: no zombie holds the VM's fds.
  while (performance.now() - start < waitMs) {
    if (!exists(dir)) return performance.now() - start;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return exists(dir) ? undefined : performance.now() - start;
}

/** A stat file of the VM dir that opens (lockdown refuses the 0644 ones). */
function openAnyStat(dir: string): Deno.FsFile {
  for (const entry of Deno.readDirSync(dir)) {
    if (!entry.isFile) continue;
    try {
      return Deno.openSync(`${dir}/${entry.name}`, { read: true });
    } catch {
      // Refused under lockdown: try the next.
    }
  }
  throw new Error(`no stat file of ${dir} opens`);
}

if (kvmBackend.skip !== undefined) {
  console.log(`vm_release_test [kvm]: skipped: ${kvmBackend.skip}`);
}

Deno.test({
  name: "main.ts [kvm] holds no VM: after kill -9 of the VMM its debugfs dir goes within 2 s",
  ignore: kvmBackend.skip !== undefined,
  async fn() {
    const kvm = await kvmBackend.kvmDir("");
    const vms: QemuVm[] = [];
    try {
      await using exporter = await startExporter([
        "--web.listen-address=127.0.0.1:0",
        `--collector.kvmdebug.dir=${kvm}`,
        "--path.procfs=/proc",
      ]);
      const scrape = async (): Promise<string> =>
        await (await fetch(`${exporter.baseUrl}/metrics`)).text();

      // 1. Idle exporter: scraped until it keeps the VMM's procfs files, then not scraped.
      const idle = await kvmBackend.start(kvm, "release-idle", 2);
      vms.push(idle.vm);
      const taskDir = `/proc/${idle.vm.pid}/task/`;
      await waitFor(async () => {
        const text = await scrape();
        return seriesValue(text, 'kvm_scrape_collector_success{collector="kvm_stat"}') === "1" &&
          openTargets(exporter.pid).filter((t) => t.startsWith(taskDir)).length >= 2;
      }, { what: "the exporter to keep the vCPU threads' schedstat files open" });
      const held = openTargets(exporter.pid).filter((t) => t.startsWith(DEBUGFS));
      strictEqual(held.length, 0, `debugfs files open between scrapes: ${held.join(", ")}`);
      const idleMs = await killAndTime(idle.vm, idle.dir, RELEASE_MS);
      ok(idleMs !== undefined, `${idle.dir} still there ${RELEASE_MS} ms after kill -9 (idle)`);
      console.log(
        `vm_release_test [kvm]: idle exporter, dir gone ${idleMs.toFixed(0)} ms after kill -9`,
      );

      // 2. Scrapes back to back while the VMM is killed.
      const busy = await kvmBackend.start(kvm, "release-busy", 2);
      vms.push(busy.vm);
      let scraping = true;
      let scrapes = 0;
      const loop = (async () => {
        while (scraping) {
          await scrape();
          scrapes++;
        }
      })();
      let busyMs: number | undefined;
      try {
        await waitFor(() => scrapes >= 3, { what: "three back-to-back scrapes" });
        busyMs = await killAndTime(busy.vm, busy.dir, RELEASE_MS);
      } finally {
        scraping = false;
        await loop;
      }
      ok(busyMs !== undefined, `${busy.dir} still there ${RELEASE_MS} ms after kill -9 (busy)`);
      console.log(
        `vm_release_test [kvm]: scraping back to back (${scrapes} scrapes), dir gone ${
          busyMs.toFixed(0)
        } ms after kill -9`,
      );
      const text = await scrape();
      strictEqual(seriesValue(text, 'kvm_scrape_collector_success{collector="kvm_stat"}'), "1");
      ok(!text.includes(busy.dir.split("/").at(-1)!), "the killed VM is gone from the scrape");

      // 3. Control: one stat file held open, as a kept debugfs file would be, keeps the dir.
      const pinned = await kvmBackend.start(kvm, "release-pinned", 1);
      vms.push(pinned.vm);
      const file = openAnyStat(pinned.dir);
      let pinnedMs: number | undefined;
      try {
        pinnedMs = await killAndTime(pinned.vm, pinned.dir, RELEASE_MS);
      } finally {
        file.close();
      }
      strictEqual(pinnedMs, undefined, "an open stat file keeps its VM's dir after kill -9");
      await waitFor(() => !exists(pinned.dir), {
        timeoutMs: RELEASE_MS,
        what: `${pinned.dir} to go once the stat file is closed`,
      });
    } finally {
      for (const vm of vms) await vm.stop();
    }
  },
});
