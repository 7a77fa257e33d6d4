/**
 * Measures how long vm.yaml validation takes as the file grows, to show it is linear:
 * `deno run tools/bench_vm_yaml.ts [entries...]` (default 10000 40000 100000).
 *
 * @module
 */

import { parseVmConfig } from "../src/config/vm_config.ts";

/**
 * A vm.yaml with `count` VMs, each with a pid, a debugfs dir and a label.
 *
 * @param count How many VMs.
 * @returns The file's text.
 */
export function syntheticVmYaml(count: number): string {
  const lines = ["vm_infos:"];
  for (let i = 1; i <= count; i++) {
    lines.push(
      `  vm${i}:`,
      `    pid: ${i}`,
      `    kvm_debug_dir: "${i}-1"`,
      `    labels: {n: ${i}}`,
    );
  }
  return lines.join("\n") + "\n";
}

if (import.meta.main) {
  const counts = Deno.args.length > 0 ? Deno.args.map(Number) : [10_000, 40_000, 100_000];
  for (const count of counts) {
    const text = syntheticVmYaml(count);
    const start = performance.now();
    let outcome = "ok";
    try {
      parseVmConfig(text, "vm.yaml");
    } catch (error) {
      outcome = (error as Error).message;
    }
    const ms = performance.now() - start;
    console.log(
      `${count} entries, ${(text.length / 1024 / 1024).toFixed(2)} MiB: ${
        ms.toFixed(0)
      } ms (${outcome})`,
    );
  }
}
