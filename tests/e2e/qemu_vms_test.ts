/**
 * The exporter against real QEMU VMs: discovery and names from the real
 * command lines, vCPU counts and values, VMs that exit and come back, and
 * vm.yaml reloads by SIGHUP, by file change and with a broken file.
 *
 * Two backends run the same scenario. "kvm" boots VMs under KVM and reads the
 * kernel's real debugfs (needs /dev/kvm). "tcg" runs real QEMU processes
 * without KVM and lays out each VM's debugfs dir under its real pid, so the
 * rest of the scenario runs on machines without /dev/kvm.
 *
 * @module
 */

import { ok, strictEqual } from "node:assert/strict";
import { startExporter } from "../support/exporter_process.ts";
import {
  kvmUnavailable,
  qemuUnavailable,
  type QemuVm,
  startQemu,
  waitUntil,
} from "../support/qemu.ts";
import { seriesValue } from "../support/sample_exporter.ts";

const DEBUGFS_KVM = "/sys/kernel/debug/kvm";

/** Starts a VM and returns its debugfs dir once it is complete. */
interface Backend {
  name: string;
  skip: string | undefined;
  /** The debugfs KVM dir the exporter reads. */
  kvmDir(tmp: string): Promise<string>;
  start(kvm: string, name: string, smp: number): Promise<{ vm: QemuVm; dir: string }>;
  /** Waits until the VM's dir is gone (the kernel removes it; the tcg backend does). */
  stop(vm: QemuVm, dir: string): Promise<void>;
}

async function vcpuDirs(dir: string): Promise<number> {
  let n = 0;
  try {
    for await (const e of Deno.readDir(dir)) if (/^vcpu\d+$/.test(e.name)) n++;
  } catch {
    return -1;
  }
  return n;
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

function kvmSkipReason(): string | undefined {
  const reason = kvmUnavailable();
  if (reason !== undefined) return reason;
  try {
    Deno.statSync(DEBUGFS_KVM);
    return undefined;
  } catch {
    return `${DEBUGFS_KVM} is missing (mount -t debugfs none /sys/kernel/debug)`;
  }
}

const kvmBackend: Backend = {
  name: "kvm",
  skip: kvmSkipReason(),
  kvmDir: () => Promise.resolve(DEBUGFS_KVM),
  async start(kvm, name, smp) {
    const vm = await startQemu({ name, smp, accel: "kvm" });
    let dir = "";
    await waitUntil(async () => {
      for await (const e of Deno.readDir(kvm)) {
        if (e.name.startsWith(`${vm.pid}-`)) dir = `${kvm}/${e.name}`;
      }
      return dir !== "" && await vcpuDirs(dir) === smp;
    }, { timeoutMs: 15_000, what: `the debugfs dir of ${name} with ${smp} vCPUs` });
    return { vm, dir };
  },
  async stop(vm, dir) {
    await vm.stop();
    await waitUntil(async () => !(await exists(dir)), { timeoutMs: 15_000, what: `${dir} to go` });
  },
};

let nextFd = 10;
const tcgBackend: Backend = {
  name: "tcg",
  skip: qemuUnavailable(),
  async kvmDir(tmp) {
    const kvm = `${tmp}/kvm`;
    await Deno.mkdir(kvm);
    await Deno.writeTextFile(`${kvm}/pages_4k`, "1\n");
    return kvm;
  },
  async start(kvm, name, smp) {
    const vm = await startQemu({ name, smp, accel: "tcg" });
    const dir = `${kvm}/${vm.pid}-${nextFd++}`;
    await Deno.mkdir(dir);
    await Deno.writeTextFile(`${dir}/pages_4k`, "512\n");
    for (let i = 0; i < smp; i++) {
      await Deno.mkdir(`${dir}/vcpu${i}`);
      await Deno.writeTextFile(`${dir}/vcpu${i}/guest_mode`, "0\n");
      await Deno.writeTextFile(`${dir}/vcpu${i}/pid`, `${vm.pid + 1 + i}\n`);
      await Deno.writeTextFile(`${dir}/vcpu${i}/tsc-offset`, `-${vm.pid}000${i}\n`);
    }
    return { vm, dir };
  },
  async stop(vm, dir) {
    await vm.stop();
    await Deno.remove(dir, { recursive: true });
  },
};

// A comma, a quote and non-ASCII letters: QEMU's ",," escaping and label escaping both matter.
const ODD_NAME = 'web,1 "q" ünï';
const ODD_LABEL = 'web,1 \\"q\\" ünï';

/** Counts the stat files under the dir that the kernel refuses to us, as the exporter should. */
async function countRefused(kvm: string): Promise<number> {
  let refused = 0;
  async function walk(dir: string, level: number): Promise<void> {
    for await (const e of Deno.readDir(dir)) {
      const path = `${dir}/${e.name}`;
      if (e.isDirectory) {
        if (level === 0 && /^\d+-/.test(e.name)) await walk(path, 1);
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

for (const backend of [kvmBackend, tcgBackend]) {
  if (backend.skip !== undefined) {
    console.log(`qemu_vms_test [${backend.name}]: skipped: ${backend.skip}`);
  }
  Deno.test({
    name:
      `main.ts [${backend.name}] names real QEMU VMs, follows exits, restarts and vm.yaml reloads`,
    ignore: backend.skip !== undefined,
    async fn() {
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
        strictEqual(
          seriesValue(
            text,
            'kvm_exporter_stat_read_errors{collector="kvm_stat",reason="permission"}',
          ),
          String(await countRefused(kvm)),
        );

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
        await waitUntil(async () => (await scrape()).includes('kvm_vm_info{domain="renamed"'), {
          timeoutMs: 10_000,
          what: "the SIGHUP reload to rename the VM",
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
        await waitUntil(async () => (await scrape()).includes('kvm_vm_info{domain="touched"'), {
          timeoutMs: 10_000,
          what: "the file watch to rename the VM",
        });

        // 6. A broken vm.yaml is rejected: the old name stays, the reload metric goes to 0.
        await Deno.writeTextFile(config, "vm_infos:\n  broken:\n    pid: [1\n");
        await waitUntil(
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
