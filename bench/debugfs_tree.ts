/**
 * Synthetic KVM debugfs trees shaped like a real x86 host's, with a matching
 * procfs, for benchmarks: `deno run -A bench/debugfs_tree.ts DIR 100x16`.
 *
 * File names and modes are those of Linux 6.18's `/sys/kernel/debug/kvm` on
 * an Intel host (root and `PID-FD` dirs: 63 stats, the VM dir adds
 * `mmu_rmaps_stat`; `vcpuN` dirs: 4 files, plus the 2 TSC-scaling files on
 * hosts with TSC scaling, which every current Intel and AMD server has).
 * Instant stats are 0444, cumulative, peak and histogram stats 0644, as the
 * kernel makes them. Values are one integer and a newline, as debugfs prints
 * them (a histogram file shows its first bucket); root values are the sums of
 * the VMs'; `mmu_rmaps_stat` reads empty, as it does under the TDP MMU.
 *
 * @module
 */

/** Stats whose debugfs file is 0444 (KVM_STATS_TYPE_INSTANT); every other stat is 0644. */
export const INSTANT_STATS: ReadonlySet<string> = new Set([
  "blocking",
  "guest_mode",
  "mmu_unsync",
  "nx_lpage_splits",
  "pages_1g",
  "pages_2m",
  "pages_4k",
]);

/** The stat files of the debugfs root, as listed on a Linux 6.18 x86 host. */
export const ROOT_STATS: readonly string[] = [
  "blocking",
  "directed_yield_attempted",
  "directed_yield_successful",
  "exits",
  "fpu_reload",
  "guest_mode",
  "halt_attempted_poll",
  "halt_exits",
  "halt_poll_fail_hist",
  "halt_poll_fail_ns",
  "halt_poll_invalid",
  "halt_poll_success_hist",
  "halt_poll_success_ns",
  "halt_successful_poll",
  "halt_wait_hist",
  "halt_wait_ns",
  "halt_wakeup",
  "host_state_reload",
  "hypercalls",
  "insn_emulation",
  "insn_emulation_fail",
  "invlpg",
  "io_exits",
  "irq_exits",
  "irq_injections",
  "irq_window_exits",
  "l1d_flush",
  "max_mmu_page_hash_collisions",
  "max_mmu_rmap_size",
  "mmio_exits",
  "mmu_cache_miss",
  "mmu_flooded",
  "mmu_kicks_spared",
  "mmu_pde_zapped",
  "mmu_pte_write",
  "mmu_recycled",
  "mmu_shadow_zapped",
  "mmu_unsync",
  "nested_run",
  "nmi_injections",
  "nmi_window_exits",
  "notify_window_exits",
  "nx_lpage_splits",
  "pages_1g",
  "pages_2m",
  "pages_4k",
  "pf_emulate",
  "pf_fast",
  "pf_fixed",
  "pf_guest",
  "pf_mmio_spte_created",
  "pf_park_timeouts",
  "pf_parked",
  "pf_spurious",
  "pf_taken",
  "preemption_other",
  "preemption_reported",
  "remote_tlb_flush",
  "remote_tlb_flush_requests",
  "req_event",
  "request_irq_exits",
  "signal_exits",
  "tlb_flush",
];

/** The table that only VM dirs have (0644; empty under the TDP MMU). */
export const RMAPS_STAT = "mmu_rmaps_stat";

/** The files of a `vcpuN` dir on every x86 host (all 0444). */
export const VCPU_FILES: readonly string[] = [
  "guest_mode",
  "lapic_timer_advance_ns",
  "pid",
  "tsc-offset",
];

/** The extra `vcpuN` files on hosts with TSC scaling (all 0444). */
export const TSC_SCALING_FILES: readonly string[] = [
  "tsc-scaling-ratio",
  "tsc-scaling-ratio-frac-bits",
];

/** The shape of a tree. */
export interface TreeShape {
  /** Number of VMs. */
  vms: number;
  /** vCPUs per VM. */
  vcpus: number;
  /** Whether vCPU dirs have the TSC-scaling files. Default true. */
  tscScaling?: boolean;
}

/** One file of a planned tree, relative to the tree's root. */
export interface PlannedFile {
  /** `kvm/exits`, `kvm/1000-12/vcpu0/pid`, `proc/1000/cmdline`, `vm.yaml`. */
  path: string;
  /** File mode. */
  mode: number;
  /** What it holds. */
  content: string;
}

/** One VM of a planned tree. */
export interface PlannedVm {
  /** The VMM's pid. */
  pid: number;
  /** Its debugfs dir, `PID-FD`. */
  dir: string;
  /** Its name (QEMU `-name guest=`). */
  name: string;
}

/** A planned tree: every file to write, and its VMs. */
export interface TreePlan {
  /** Every file, debugfs, procfs and vm.yaml. */
  files: PlannedFile[];
  /** The VMs, in dir order. */
  vms: PlannedVm[];
}

/**
 * Parses `VMSxVCPUS`, e.g. `100x16`.
 *
 * @param text The size.
 * @returns The shape.
 */
export function parseShape(text: string): TreeShape {
  const match = /^(\d+)x(\d+)$/.exec(text);
  if (!match) throw new Error(`Tree size must be VMSxVCPUS, e.g. "100x16", got "${text}"`);
  return { vms: Number(match[1]), vcpus: Number(match[2]) };
}

/**
 * Counts the debugfs stat files of a tree (not dirs, not procfs).
 *
 * @param shape The tree's shape.
 * @returns How many stat files its debugfs has.
 */
export function countStatFiles(shape: TreeShape): number {
  const vcpuFiles = VCPU_FILES.length + (shape.tscScaling ?? true ? TSC_SCALING_FILES.length : 0);
  return ROOT_STATS.length + shape.vms * (ROOT_STATS.length + 1 + shape.vcpus * vcpuFiles);
}

/** A small deterministic PRNG (mulberry32), so that every run writes the same tree. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A plausible value for one VM's stat: magnitudes as a busy host shows them. */
function statValue(name: string, next: () => number): bigint {
  const upTo = (max: number): bigint => BigInt(Math.floor(next() * max));
  if (name === "blocking") return upTo(2);
  if (name === "guest_mode" || name === "nested_run" || name === "hypercalls") return 0n;
  if (name === "pages_1g") return upTo(4);
  if (name === "pages_2m") return upTo(4_000);
  if (name === "pages_4k" || name === "mmu_unsync") return upTo(500_000);
  if (name === "nx_lpage_splits" || name.startsWith("max_")) return upTo(200);
  if (name.endsWith("_ns")) return upTo(1e12);
  return upTo(1e10);
}

function vcpuFile(name: string, vm: PlannedVm, vcpu: number, next: () => number): string {
  switch (name) {
    case "guest_mode":
      return "0";
    case "lapic_timer_advance_ns":
      return String(1000 + Math.floor(next() * 4000));
    case "pid":
      return String(vm.pid + 10 + vcpu);
    case "tsc-offset":
      return String(-BigInt(Math.floor(next() * 1e15)) * 64n);
    case "tsc-scaling-ratio":
      return String(1n << 48n);
    default: // tsc-scaling-ratio-frac-bits: Intel's.
      return "48";
  }
}

/** A libvirt-style QEMU command line, as `/proc/PID/cmdline` holds it. */
function qemuCmdline(vm: PlannedVm, vcpus: number): string {
  const argv = [
    "/usr/bin/qemu-system-x86_64",
    "-name",
    `guest=${vm.name},debug-threads=on`,
    "-S",
    "-object",
    `{"qom-type":"secret","id":"masterKey0","format":"raw","file":"/var/lib/libvirt/qemu/domain-${vm.pid}-${vm.name}/master-key.aes"}`,
    "-machine",
    "pc-q35-8.2,usb=off,vmport=off,dump-guest-core=off,memory-backend=pc.ram,hpet=off,acpi=on",
    "-accel",
    "kvm",
    "-cpu",
    "host,migratable=on",
    "-m",
    "size=4194304k",
    "-object",
    '{"qom-type":"memory-backend-ram","id":"pc.ram","size":4294967296}',
    "-overcommit",
    "mem-lock=off",
    "-smp",
    `${vcpus},sockets=${vcpus},cores=1,threads=1`,
    "-uuid",
    `6f1c${String(vm.pid).padStart(4, "0")}-0c5e-4f3a-9d1e-2b7c8a9e0d41`,
    "-no-user-config",
    "-nodefaults",
    "-chardev",
    "socket,id=charmonitor,fd=31,server=on,wait=off",
    "-mon",
    "chardev=charmonitor,id=monitor,mode=control",
    "-rtc",
    "base=utc,driftfix=slew",
    "-global",
    "kvm-pit.lost_tick_policy=delay",
    "-no-shutdown",
    "-boot",
    "strict=on",
    "-blockdev",
    `{"driver":"file","filename":"/var/lib/libvirt/images/${vm.name}.qcow2","node-name":"libvirt-1-storage","auto-read-only":true,"discard":"unmap"}`,
    "-device",
    '{"driver":"virtio-blk-pci","bus":"pci.3","addr":"0x0","drive":"libvirt-1-format","id":"virtio-disk0","bootindex":1}',
    "-netdev",
    '{"type":"tap","fd":"33","vhost":true,"vhostfd":"35","id":"hostnet0"}',
    "-device",
    '{"driver":"virtio-net-pci","netdev":"hostnet0","id":"net0","mac":"52:54:00:12:34:56","bus":"pci.1","addr":"0x0"}',
    "-sandbox",
    "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
    "-msg",
    "timestamp=on",
  ];
  return argv.join("\0") + "\0";
}

/**
 * Plans a tree: `kvm/` (debugfs), `proc/PID/cmdline` and `vm.yaml` naming
 * every VM (the Go original needs one). Pure: {@linkcode writeTree} writes it.
 *
 * @param shape VMs and vCPUs.
 * @returns Every file and the VMs.
 */
export function planTree(shape: TreeShape): TreePlan {
  const next = random(0x6b766d);
  const vcpuNames = [...VCPU_FILES, ...(shape.tscScaling ?? true ? TSC_SCALING_FILES : [])];
  const vms: PlannedVm[] = [];
  const files: PlannedFile[] = [];
  const sums = new Map<string, bigint>(ROOT_STATS.map((name) => [name, 0n]));
  for (let i = 0; i < shape.vms; i++) {
    const pid = 2000 + i * 37;
    const vm = { pid, dir: `${pid}-${10 + i % 13}`, name: `vm-${String(i + 1).padStart(4, "0")}` };
    vms.push(vm);
    for (const name of ROOT_STATS) {
      const value = statValue(name, next);
      sums.set(name, (sums.get(name) ?? 0n) + value);
      files.push(statFile(`kvm/${vm.dir}/${name}`, name, `${value}\n`));
    }
    files.push({ path: `kvm/${vm.dir}/${RMAPS_STAT}`, mode: 0o644, content: "" });
    for (let c = 0; c < shape.vcpus; c++) {
      for (const name of vcpuNames) {
        const content = `${vcpuFile(name, vm, c, next)}\n`;
        files.push({ path: `kvm/${vm.dir}/vcpu${c}/${name}`, mode: 0o444, content });
      }
    }
    files.push({ path: `proc/${pid}/cmdline`, mode: 0o444, content: qemuCmdline(vm, shape.vcpus) });
  }
  for (const name of ROOT_STATS) files.push(statFile(`kvm/${name}`, name, `${sums.get(name)}\n`));
  files.push({ path: "vm.yaml", mode: 0o644, content: vmYaml(vms) });
  return { files, vms };
}

function statFile(path: string, name: string, content: string): PlannedFile {
  return { path, mode: INSTANT_STATS.has(name) ? 0o444 : 0o644, content };
}

function vmYaml(vms: readonly PlannedVm[]): string {
  const entries = vms.map((vm) =>
    `  ${vm.name}:\n    pid: ${vm.pid}\n    kvm_debug_dir: "${vm.dir}"\n`
  );
  return `vm_infos:\n${entries.join("")}`;
}

/**
 * Writes a planned tree under `root` (which must exist).
 *
 * @param root The directory to write into.
 * @param plan What {@linkcode planTree} returned.
 */
export async function writeTree(root: string, plan: TreePlan): Promise<void> {
  const dirs = new Set<string>();
  for (const file of plan.files) dirs.add(file.path.slice(0, file.path.lastIndexOf("/")));
  dirs.delete("");
  for (const dir of [...dirs].sort()) await Deno.mkdir(`${root}/${dir}`, { recursive: true });
  await Deno.mkdir(`${root}/sys`, { recursive: true });
  for (const file of plan.files) {
    await Deno.writeTextFile(`${root}/${file.path}`, file.content, { mode: file.mode });
    await Deno.chmod(`${root}/${file.path}`, file.mode); // The umask may have narrowed it.
  }
}

if (import.meta.main) {
  const [root, size = "10x4"] = Deno.args;
  if (root === undefined) {
    console.error("Usage: deno run -A bench/debugfs_tree.ts DIR [VMSxVCPUS]");
    Deno.exit(2);
  }
  const shape = parseShape(size);
  await Deno.mkdir(root, { recursive: true });
  await writeTree(root, planTree(shape));
  console.log(`${root}: ${countStatFiles(shape)} debugfs stat files`);
}
