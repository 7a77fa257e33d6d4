/**
 * `promtool check metrics` on the prometheus naming scheme: the demo tree,
 * the demo tree with fake QMP monitors (histograms), and real QEMU VMs under
 * KVM with both collectors. promtool must print nothing.
 *
 * @module
 */

import assert from "node:assert/strict";
import { startFakeLibvirt } from "../support/fake_libvirt.ts";
import { SAMPLE_LIBVIRT } from "../support/fake_libvirt_sample.ts";
import { startFakeQmpFleet } from "../support/fake_qmp_fleet.ts";
import { startExporter, waitFor } from "../support/exporter_process.ts";
import { findPromtool, promtoolCheck } from "../support/promtool.ts";
import type { QemuVm } from "../support/qemu.ts";
import { buildApp, fixtureArgs, scrapeText } from "../support/sample_exporter.ts";
import { kvmBackend } from "../support/vm_backends.ts";

const PROMTOOL = findPromtool();
const NO_PROMTOOL = PROMTOOL === undefined
  ? "promtool is not installed (apt-get install prometheus)"
  : undefined;
if (NO_PROMTOOL !== undefined) console.log(`promtool_naming_test: skipped: ${NO_PROMTOOL}`);

async function assertClean(text: string): Promise<void> {
  const { code, problems } = await promtoolCheck(PROMTOOL!, text);
  assert.deepEqual(problems, [], "promtool prints nothing");
  assert.equal(code, 0, "not even the lint tolerated on compat names");
}

Deno.test({
  name: "promtool check metrics reports nothing for --metrics.naming=prometheus on the demo tree",
  ignore: NO_PROMTOOL !== undefined,
  async fn() {
    const { app } = await buildApp([...fixtureArgs("sample"), "--metrics.naming=prometheus"]);
    await assertClean(await scrapeText(app));
  },
});

Deno.test({
  name: "promtool check metrics reports nothing for the prometheus scheme with QMP histograms",
  ignore: NO_PROMTOOL !== undefined,
  async fn() {
    const fleet = await startFakeQmpFleet();
    try {
      const { app } = await buildApp([...fleet.args, "--metrics.naming=prometheus"]);
      const text = await scrapeText(app);
      assert.match(text, /^kvm_vcpu_halt_wait_seconds_bucket\{/m);
      await assertClean(text);
    } finally {
      await fleet.close();
    }
  },
});

Deno.test({
  name:
    "promtool check metrics reports nothing for the prometheus scheme with libvirt's stats and vCPU times",
  ignore: NO_PROMTOOL !== undefined,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_promtool_libvirt_" });
    const fake = startFakeLibvirt(`${dir}/libvirt-sock-ro`, "libvirt", SAMPLE_LIBVIRT);
    try {
      const { app } = await buildApp([
        ...fixtureArgs("sample"),
        "--collector.libvirt",
        `--collector.libvirt.socket=${fake.path}`,
        "--metrics.naming=prometheus",
      ]);
      const text = await scrapeText(app);
      assert.match(text, /^kvm_vcpu_new_stat_seconds_total\{/m);
      assert.match(text, /^kvm_vcpu_delay_seconds_total\{/m);
      await assertClean(text);
    } finally {
      await fake.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

const REAL_SKIP = NO_PROMTOOL ?? kvmBackend.skip;
if (REAL_SKIP !== undefined) console.log(`promtool_naming_test [kvm]: skipped: ${REAL_SKIP}`);

Deno.test({
  name:
    "promtool check metrics reports nothing for the prometheus scheme on real QEMU VMs under KVM with both collectors",
  ignore: REAL_SKIP !== undefined,
  async fn() {
    const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_promtool_" });
    const vms: QemuVm[] = [];
    try {
      const kvm = await kvmBackend.kvmDir(tmp);
      vms.push((await kvmBackend.start(kvm, "alpha", 2, `${tmp}/alpha.qmp`)).vm);
      vms.push((await kvmBackend.start(kvm, "beta", 1, `${tmp}/beta.qmp`)).vm);
      await Deno.writeTextFile(`${tmp}/vm.yaml`, "# names come from -name\n");
      await using exporter = await startExporter([
        "--web.listen-address=127.0.0.1:0",
        `--collector.kvmdebug.dir=${kvm}`,
        `--collector.vmmap.path=${tmp}/vm.yaml`,
        "--path.procfs=/proc",
        "--collector.qmp",
        "--metrics.naming=prometheus",
      ]);
      let text = "";
      await waitFor(async () => {
        text = await (await fetch(`${exporter.baseUrl}/metrics`)).text();
        return /^kvm_vcpu_halt_wait_seconds_bucket\{domain="beta"/m.test(text);
      }, { timeoutMs: 15_000, what: "QMP histograms of both VMs" });
      assert.match(text, /^kvm_vm_exits_total\{domain="alpha"\} \d+$/m);
      assert.match(text, /^kvm_vcpu_exits_total\{domain="alpha",vcpu="1"\} \d+$/m);
      assert.match(text, /^kvm_vcpu_halt_wait_seconds_sum\{domain="alpha",vcpu="0"\} /m);
      assert.match(text, /^kvm_vcpu_info\{domain="alpha",vcpu="0",thread_id="\d+"\} 1$/m);
      assert.doesNotMatch(text, /^kvm_stat_/m);
      await assertClean(text);
    } finally {
      await Promise.all(vms.map((vm) => vm.stop()));
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
