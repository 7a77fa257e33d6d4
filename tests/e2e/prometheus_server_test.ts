/**
 * A real Prometheus scrapes the exporter in the prometheus naming scheme:
 * every family keeps its type in Prometheus's metadata, `kvm_vm_info` counts
 * the VMs, and `histogram_quantile` over the halt-wait histograms gives one
 * series per VM. Fed by fake QMP monitors (values change between scrapes)
 * everywhere, and by real QEMU VMs where /dev/kvm exists.
 *
 * @module
 */

import assert from "node:assert/strict";
import { startFakeQmpFleet } from "../support/fake_qmp_fleet.ts";
import { startExporter, waitFor } from "../support/exporter_process.ts";
import { prometheusPath, startPrometheus } from "../support/prometheus.ts";
import type { QemuVm } from "../support/qemu.ts";
import { kvmBackend, ownVmsExporterArgs } from "../support/vm_backends.ts";

const NO_PROMETHEUS = prometheusPath() === undefined
  ? "prometheus is not installed (apt-get install prometheus)"
  : undefined;
if (NO_PROMETHEUS !== undefined) console.log(`prometheus_server_test: skipped: ${NO_PROMETHEUS}`);

const QUANTILE =
  "histogram_quantile(0.9, sum by (le, domain) (rate(kvm_vcpu_halt_wait_seconds_bucket[30s])))";

/** Family name and type of every `# TYPE` line. */
function exposedTypes(text: string): Map<string, string> {
  const types = new Map<string, string>();
  for (const match of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) types.set(match[1]!, match[2]!);
  return types;
}

/** Scrapes the exporter through a real Prometheus and checks what Prometheus made of it. */
async function checkThroughPrometheus(exporterUrl: string, domains: readonly string[]) {
  const target = new URL(exporterUrl).host;
  await using prometheus = await startPrometheus({ jobs: [{ name: "kvm", targets: [target] }] });
  await waitFor(async () => (await prometheus.query("up"))[0]?.value === "1", {
    timeoutMs: 30_000,
    what: "up == 1",
  });
  const expected = exposedTypes(await (await fetch(`${exporterUrl}/metrics`)).text());
  assert.ok(expected.has("kvm_vcpu_halt_wait_seconds"));
  let missing: string[] = [];
  await waitFor(async () => {
    const types = await prometheus.metadataTypes();
    missing = [...expected].filter(([name, type]) => types.get(name) !== type)
      .map(([name, type]) => `${name} (${type}, got ${types.get(name)})`);
    return missing.length === 0;
  }, { timeoutMs: 20_000, what: "every family in /api/v1/metadata with its type" });
  assert.deepEqual(missing, []);

  const count = await prometheus.query("count(kvm_vm_info)");
  assert.equal(count[0]?.value, String(domains.length));

  let found: string[] = [];
  await waitFor(async () => {
    found = (await prometheus.query(QUANTILE)).map((r) => r.metric["domain"] ?? "").sort();
    return found.length === domains.length;
  }, { timeoutMs: 30_000, what: "one p90 halt-wait series per VM" });
  assert.deepEqual(found, [...domains].sort());
}

Deno.test({
  name:
    "Prometheus scraping --metrics.naming=prometheus with fake QMP monitors: types, VM count, p90 halt wait per VM",
  ignore: NO_PROMETHEUS !== undefined,
  async fn() {
    const fleet = await startFakeQmpFleet();
    try {
      await using exporter = await startExporter([
        ...fleet.args,
        "--web.listen-address=127.0.0.1:0",
        "--metrics.naming=prometheus",
      ]);
      await checkThroughPrometheus(exporter.baseUrl, ["db-01", "target_vm", "web-01"]);
    } finally {
      await fleet.close();
    }
  },
});

const REAL_SKIP = NO_PROMETHEUS ?? kvmBackend.skip;
if (REAL_SKIP !== undefined) console.log(`prometheus_server_test [kvm]: skipped: ${REAL_SKIP}`);

Deno.test({
  name:
    "Prometheus scraping --metrics.naming=prometheus on real QEMU VMs under KVM: types, VM count, p90 halt wait per VM",
  ignore: REAL_SKIP !== undefined,
  async fn() {
    const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_prometheus_kvm_" });
    const vms: QemuVm[] = [];
    try {
      const kvm = await kvmBackend.kvmDir(tmp);
      let yaml = "vm_infos:\n";
      for (const [name, smp] of [["alpha", 2], ["beta", 1]] as const) {
        const socket = `${tmp}/${name}.qmp`;
        const { vm, dir } = await kvmBackend.start(kvm, name, smp, socket);
        vms.push(vm);
        yaml += `  ${name}: {kvm_debug_dir: "${dir.split("/").pop()}", qmp_socket: "${socket}"}\n`;
      }
      // Only our VMs: other tests may run VMs on this host at the same time.
      await Deno.writeTextFile(`${tmp}/vm.yaml`, yaml);
      await using exporter = await startExporter([
        ...ownVmsExporterArgs({ kvmDir: kvm, vmYaml: `${tmp}/vm.yaml` }),
        "--metrics.naming=prometheus",
      ]);
      await checkThroughPrometheus(exporter.baseUrl, ["alpha", "beta"]);
    } finally {
      await Promise.all(vms.map((vm) => vm.stop()));
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
