import assert from "node:assert/strict";
import { renderText } from "../../src/exposition/text_format.ts";
import { prometheusFamilies, prometheusName } from "../../src/naming/prometheus.ts";
import { catalogType } from "../../src/stats/catalog.ts";
import { type KvmStat, type StatType, untypedStat } from "../../src/stats/stat.ts";
import { typeFromMode, typeFromSchema } from "../../src/stats/stat_type.ts";

Deno.test("prometheusName() follows the issue's naming rules", async (t) => {
  const cases: [level: KvmStat["level"], name: string, type: StatType, want: string][] = [
    ["vm", "exits", catalogType("exits")!, "kvm_vm_exits_total"],
    ["host", "exits", catalogType("exits")!, "kvm_host_exits_total"],
    ["vcpu", "exits", catalogType("exits")!, "kvm_vcpu_exits_total"],
    ["vm", "halt_wait_ns", catalogType("halt_wait_ns")!, "kvm_vm_halt_wait_seconds_total"],
    ["vcpu", "halt_wait_hist", catalogType("halt_wait_hist")!, "kvm_vcpu_halt_wait_seconds"],
    [
      "vcpu",
      "halt_poll_success_hist",
      catalogType("halt_poll_success_hist")!,
      "kvm_vcpu_halt_poll_success_seconds",
    ],
    [
      "vcpu",
      "lapic_timer_advance_ns",
      catalogType("lapic_timer_advance_ns")!,
      "kvm_vcpu_lapic_timer_advance_seconds",
    ],
    ["vm", "max_mmu_rmap_size", catalogType("max_mmu_rmap_size")!, "kvm_vm_max_mmu_rmap_size"],
    ["vcpu", "guest_mode", catalogType("guest_mode")!, "kvm_vcpu_guest_mode"],
    ["vcpu", "tsc-offset", catalogType("tsc-offset")!, "kvm_vcpu_tsc_offset"],
    [
      "vcpu",
      "tsc-scaling-ratio-frac-bits",
      catalogType("tsc-scaling-ratio-frac-bits")!,
      "kvm_vcpu_tsc_scaling_ratio_frac_width",
    ],
    ["host", "new_stat", typeFromMode("new_stat", 0o100644), "kvm_host_new_stat_total"],
    ["host", "new_stat", typeFromMode("new_stat", 0o100444), "kvm_host_new_stat"],
    ["host", "max_new", typeFromMode("max_new", 0o100644), "kvm_host_max_new"],
    ["host", "odd_total", typeFromMode("odd_total", 0o100644), "kvm_host_odd_total"],
    ["host", "mystery", untypedStat(), "kvm_host_mystery"],
    [
      "vm",
      "size",
      typeFromSchema({ name: "size", type: "instant", unit: "bytes", base: 2, exponent: 10 }),
      "kvm_vm_size_bytes",
    ],
  ];
  for (const [level, name, type, want] of cases) {
    await t.step(`${level} ${name} (${type.kind})`, () => {
      assert.equal(prometheusName(level, name, type), want);
    });
  }
});

const VM = { dir: "100-1", domain: "a" };

function stat(partial: Partial<KvmStat> & Pick<KvmStat, "name" | "value">): KvmStat {
  return {
    level: "vm",
    vm: VM,
    vcpu: undefined,
    type: catalogType(partial.name) ?? untypedStat(),
    source: "debugfs",
    ...partial,
  };
}

Deno.test("prometheusFamilies() turns the vCPU pid file into kvm_vcpu_info", () => {
  const text = renderText(prometheusFamilies([
    stat({ level: "vcpu", vcpu: "0", name: "pid", value: 4242n }),
  ], { histogramMaxBuckets: 0, reserved: new Set() }));
  assert.match(text, /^kvm_vcpu_info\{domain="a",vcpu="0",thread_id="4242"\} 1$/m);
});

Deno.test("prometheusFamilies() leaves out debugfs *_hist files and reserved names", () => {
  const families = prometheusFamilies([
    stat({ name: "halt_wait_hist", value: 3n }),
    stat({ name: "new_hist", value: 3n, type: typeFromMode("new_hist", 0o100444) }),
    stat({ name: "info", value: 1n }),
    stat({ name: "exits", value: 1n }),
  ], { histogramMaxBuckets: 0, reserved: new Set(["kvm_vm_info"]) });
  assert.deepEqual(families.map((f) => f.name), ["kvm_vm_exits_total"]);
});

Deno.test("prometheusFamilies() gives each stat name the type of its best source", () => {
  // debugfs saw a stat the catalog lacks as 0644 (counter); QMP's schema says instant.
  const families = prometheusFamilies([
    stat({ name: "novel", value: 1n, type: typeFromMode("novel", 0o100644) }),
    stat({
      level: "vcpu",
      vcpu: "0",
      name: "novel",
      value: 1n,
      source: "qmp",
      type: typeFromSchema({ name: "novel", type: "instant", base: 10, exponent: 0 }),
    }),
  ], { histogramMaxBuckets: 0, reserved: new Set() });
  assert.deepEqual(families.map((f) => [f.name, f.type]), [
    ["kvm_vm_novel", "gauge"],
    ["kvm_vcpu_novel", "gauge"],
  ]);
});

Deno.test("prometheusFamilies() says in HELP where a stat is summed", () => {
  const families = prometheusFamilies([
    stat({ level: "host", vm: undefined, name: "exits", value: 1n }),
    stat({ name: "exits", value: 1n }),
    stat({ name: "pages_4k", value: 1n }),
  ], { histogramMaxBuckets: 0, reserved: new Set() });
  assert.deepEqual(families.map((f) => f.help), [
    "Exits from the guest to KVM. Summed over the host's VMs.",
    "Exits from the guest to KVM. Summed over the VM's vCPUs.",
    "Guest memory mapped with 4 KiB pages, in pages.",
  ]);
});
