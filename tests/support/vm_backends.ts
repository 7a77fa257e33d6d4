/**
 * Two ways to run real QEMU VMs for the end-to-end tests. "kvm" boots them
 * under KVM and the kernel makes their debugfs dirs (needs /dev/kvm). "tcg"
 * runs real QEMU processes without KVM and lays out each VM's debugfs dir
 * under its real pid, so everything but the kernel's own numbers runs on
 * machines without /dev/kvm.
 *
 * @module
 */

import { waitFor } from "./exporter_process.ts";
import { kvmUnavailable, qemuUnavailable, type QemuVm, startQemu } from "./qemu.ts";

const DEBUGFS_KVM = "/sys/kernel/debug/kvm";

/** Starts a VM and returns its debugfs dir once it is complete. */
export interface Backend {
  name: string;
  skip: string | undefined;
  /** The debugfs KVM dir the exporter reads. */
  kvmDir(tmp: string): Promise<string>;
  start(
    kvm: string,
    name: string,
    smp: number,
    qmpSocket?: string,
    extraArgs?: readonly string[],
  ): Promise<{ vm: QemuVm; dir: string }>;
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

export const kvmBackend: Backend = {
  name: "kvm",
  skip: kvmSkipReason(),
  kvmDir: () => Promise.resolve(DEBUGFS_KVM),
  async start(kvm, name, smp, qmpSocket, extraArgs = []) {
    const vm = await startQemu({
      name,
      smp,
      accel: "kvm",
      extraArgs,
      ...(qmpSocket ? { qmpSocket } : {}),
    });
    let dir = "";
    await waitFor(async () => {
      for await (const e of Deno.readDir(kvm)) {
        if (e.name.startsWith(`${vm.pid}-`)) dir = `${kvm}/${e.name}`;
      }
      return dir !== "" && await vcpuDirs(dir) === smp;
    }, { timeoutMs: 15_000, what: `the debugfs dir of ${name} with ${smp} vCPUs` });
    return { vm, dir };
  },
  async stop(vm, dir) {
    await vm.stop();
    await waitFor(async () => !(await exists(dir)), { timeoutMs: 15_000, what: `${dir} to go` });
  },
};

let nextFd = 10;
export const tcgBackend: Backend = {
  name: "tcg",
  skip: qemuUnavailable(),
  async kvmDir(tmp) {
    const kvm = `${tmp}/kvm`;
    await Deno.mkdir(kvm);
    await Deno.writeTextFile(`${kvm}/pages_4k`, "1\n");
    return kvm;
  },
  async start(kvm, name, smp, qmpSocket, extraArgs = []) {
    const vm = await startQemu({
      name,
      smp,
      accel: "tcg",
      extraArgs,
      ...(qmpSocket ? { qmpSocket } : {}),
    });
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

/**
 * The flags of an exporter that reads only a test's own VMs (others may run on this host at the
 * same time): the debugfs dir, the test's vm.yaml with `only-listed`, the real procfs, QMP on.
 *
 * @param where The debugfs KVM dir and the test's vm.yaml.
 * @returns The flags, listening on a free loopback port.
 */
export function ownVmsExporterArgs(where: { kvmDir: string; vmYaml: string }): string[] {
  return [
    "--web.listen-address=127.0.0.1:0",
    `--collector.kvmdebug.dir=${where.kvmDir}`,
    `--collector.vmmap.path=${where.vmYaml}`,
    "--collector.vmmap.only-listed",
    "--path.procfs=/proc",
    "--collector.qmp",
  ];
}
