import { deepStrictEqual, strictEqual } from "node:assert/strict";
import {
  countStatFiles,
  parseShape,
  planTree,
  RMAPS_STAT,
  ROOT_STATS,
  TSC_SCALING_FILES,
  VCPU_FILES,
  writeTree,
} from "../../bench/debugfs_tree.ts";
import { splitCmdline, vmNameFromArgv } from "../../src/discovery/vmm_cmdline.ts";

// Linux 6.18 on x86: 63 root stats, VM dirs add mmu_rmaps_stat, vCPU dirs 4 files (6 with TSC scaling).
const COUNT_CASES: { size: string; tscScaling: boolean; files: number }[] = [
  { size: "10x4", tscScaling: true, files: 943 },
  { size: "100x16", tscScaling: true, files: 16_063 },
  { size: "400x8", tscScaling: true, files: 44_863 },
  { size: "10x4", tscScaling: false, files: 863 },
  { size: "0x0", tscScaling: true, files: 63 },
];

for (const { size, tscScaling, files } of COUNT_CASES) {
  Deno.test(`countStatFiles() counts ${files} files for ${size}, TSC scaling ${tscScaling}`, () => {
    const shape = { ...parseShape(size), tscScaling };
    strictEqual(countStatFiles(shape), files);
    strictEqual(planTree(shape).files.filter((f) => f.path.startsWith("kvm/")).length, files);
  });
}

Deno.test("parseShape() rejects what is not VMSxVCPUS", () => {
  for (const bad of ["10", "x4", "10x", "10*4", " 10x4"]) {
    let message = "";
    try {
      parseShape(bad);
    } catch (error) {
      message = (error as Error).message;
    }
    strictEqual(message, `Tree size must be VMSxVCPUS, e.g. "100x16", got "${bad}"`);
  }
});

Deno.test("planTree() lays out the names and modes of a real host", () => {
  const plan = planTree({ vms: 2, vcpus: 3 });
  const vm = plan.vms[0]!;
  const names = (dir: string): string[] =>
    plan.files.filter((f) => f.path.slice(0, f.path.lastIndexOf("/")) === dir)
      .map((f) => f.path.slice(dir.length + 1)).sort();
  deepStrictEqual(names("kvm"), [...ROOT_STATS].sort());
  deepStrictEqual(names(`kvm/${vm.dir}`), [...ROOT_STATS, RMAPS_STAT].sort());
  deepStrictEqual(names(`kvm/${vm.dir}/vcpu2`), [...VCPU_FILES, ...TSC_SCALING_FILES].sort());
  const mode = (path: string): number | undefined => plan.files.find((f) => f.path === path)?.mode;
  strictEqual(mode("kvm/exits"), 0o644);
  strictEqual(mode("kvm/pages_4k"), 0o444);
  strictEqual(mode(`kvm/${vm.dir}/halt_wait_hist`), 0o644);
  strictEqual(mode(`kvm/${vm.dir}/vcpu0/tsc-offset`), 0o444);
});

Deno.test("planTree() makes root values the sums of the VMs', one integer per file", () => {
  const plan = planTree({ vms: 3, vcpus: 1 });
  const value = (path: string): bigint =>
    BigInt(plan.files.find((f) => f.path === path)!.content.trim());
  for (const stat of ["exits", "pages_4k", "halt_wait_ns"]) {
    const sum = plan.vms.reduce((total, vm) => total + value(`kvm/${vm.dir}/${stat}`), 0n);
    strictEqual(value(`kvm/${stat}`), sum);
  }
  for (const file of plan.files.filter((f) => f.path.startsWith("kvm/"))) {
    const empty = file.path.endsWith(RMAPS_STAT);
    strictEqual(/^-?\d+\n$/.test(file.content), !empty, file.path);
  }
});

Deno.test("planTree() gives each VM a QEMU command line with -name guest= and a vm.yaml entry", () => {
  const plan = planTree({ vms: 2, vcpus: 1 });
  for (const vm of plan.vms) {
    const cmdline = plan.files.find((f) => f.path === `proc/${vm.pid}/cmdline`)!.content;
    strictEqual(vmNameFromArgv(splitCmdline(cmdline)), vm.name);
    const yaml = plan.files.find((f) => f.path === "vm.yaml")!.content;
    strictEqual(
      yaml.includes(`  ${vm.name}:\n    pid: ${vm.pid}\n    kvm_debug_dir: "${vm.dir}"\n`),
      true,
    );
  }
});

Deno.test("writeTree() writes the planned files with their modes", async () => {
  const root = await Deno.makeTempDir();
  try {
    const plan = planTree({ vms: 1, vcpus: 1 });
    await writeTree(root, plan);
    const vm = plan.vms[0]!;
    strictEqual((await Deno.stat(`${root}/kvm/${vm.dir}/exits`)).mode! & 0o777, 0o644);
    strictEqual((await Deno.stat(`${root}/kvm/${vm.dir}/vcpu0/pid`)).mode! & 0o777, 0o444);
    strictEqual(await Deno.readTextFile(`${root}/kvm/${vm.dir}/vcpu0/pid`), `${vm.pid + 10}\n`);
    strictEqual((await Deno.stat(`${root}/sys`)).isDirectory, true);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
