/**
 * The qmp collector against real QEMU monitors: sockets found on the real
 * command lines, a monitor held by another client, QEMU killed mid-scrape.
 * Under KVM the stats themselves are checked too (exits exported for every
 * VM and vCPU, growing between scrapes); under TCG, QEMU answers query-stats
 * with no KVM stats, so only the protocol path is checked there.
 *
 * @module
 */

import { ok, strictEqual } from "node:assert/strict";
import { startExporter, waitFor } from "../support/exporter_process.ts";
import { type FakeQmp, startFakeQmp } from "../support/fake_qmp.ts";
import { type QemuVm, startQemu } from "../support/qemu.ts";
import { seriesValue } from "../support/sample_exporter.ts";
import { type Backend, kvmBackend, tcgBackend } from "../support/vm_backends.ts";

const TIMEOUT_MS = 1000;

/** Connects to a monitor and reads its greeting, holding it the way another tool would. */
async function holdMonitor(path: string): Promise<Deno.UnixConn> {
  const conn = await Deno.connect({ transport: "unix", path });
  const buffer = new Uint8Array(4096);
  let text = "";
  while (!text.includes("\n")) {
    const n = await conn.read(buffer);
    if (n === null) throw new Error("monitor closed before its greeting");
    text += new TextDecoder().decode(buffer.subarray(0, n));
  }
  return conn;
}

function errorsOf(text: string, domain: string): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const reason of ["timeout", "refused", "protocol", "other"]) {
    out[reason] = seriesValue(
      text,
      `kvm_exporter_qmp_errors{domain="${domain}",reason="${reason}"}`,
    );
  }
  return out;
}

function exitsOf(text: string, domain: string): bigint | undefined {
  const value = seriesValue(text, `kvm_stat_exits_count{domain="${domain}"}`);
  return value === undefined ? undefined : BigInt(value);
}

function checkKvmStats(text: string, domain: string, vcpus: number): void {
  ok(exitsOf(text, domain) !== undefined, `exits of ${domain}`);
  for (let i = 0; i < vcpus; i++) {
    ok(
      seriesValue(text, `kvm_stat_vcpu_exits_count{domain="${domain}",vcpu="${i}"}`) !== undefined,
      `exits of ${domain} vCPU ${i}`,
    );
  }
}

function scenario(backend: Backend): void {
  if (backend.skip !== undefined) {
    console.log(`qemu_qmp_test [${backend.name}]: skipped: ${backend.skip}`);
  }
  Deno.test({
    name:
      `main.ts --collector.qmp [${backend.name}] queries real QEMU monitors, each VM on its own`,
    ignore: backend.skip !== undefined,
    async fn() {
      const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_qmp_e2e_" });
      const vms: QemuVm[] = [];
      try {
        const kvm = await backend.kvmDir(tmp);
        const one = await backend.start(kvm, "one", 1, `${tmp}/one.qmp`);
        vms.push(one.vm);
        const three = await backend.start(kvm, "three", 3, `${tmp}/three.qmp`);
        vms.push(three.vm);
        await Deno.writeTextFile(`${tmp}/vm.yaml`, "# names come from -name\n");

        await using exporter = await startExporter([
          "--web.listen-address=127.0.0.1:0",
          `--collector.kvmdebug.dir=${kvm}`,
          `--collector.vmmap.path=${tmp}/vm.yaml`,
          "--path.procfs=/proc",
          "--collector.qmp",
          `--collector.qmp.timeout=${TIMEOUT_MS}ms`,
        ]);
        const scrape = async (): Promise<string> => {
          const response = await fetch(`${exporter.baseUrl}/metrics`);
          strictEqual(response.status, 200);
          return await response.text();
        };

        // 1. Both monitors answer; under KVM every VM and vCPU has exits, and they grow.
        const first = await scrape();
        strictEqual(seriesValue(first, 'kvm_scrape_collector_success{collector="qmp"}'), "1");
        // The sockets come from each QEMU's -qmp, and each QEMU holds its own: none refused.
        for (const reason of ["not_socket", "not_listening", "ambiguous", "no_owner"]) {
          strictEqual(
            seriesValue(first, `kvm_exporter_qmp_skipped_sockets{reason="${reason}"}`),
            "0",
            reason,
          );
        }
        for (const domain of ["one", "three"]) {
          strictEqual(
            JSON.stringify(errorsOf(first, domain)),
            JSON.stringify({ timeout: "0", refused: "0", protocol: "0", other: "0" }),
            domain,
          );
        }
        if (backend.name === "kvm") {
          checkKvmStats(first, "one", 1);
          checkKvmStats(first, "three", 3);
          await waitFor(
            async () => exitsOf(await scrape(), "three")! > exitsOf(first, "three")!,
            {
              timeoutMs: 10_000,
              what: "exits of VM three to grow",
            },
          );
        }

        // 2. Another client holds one's monitor: one is skipped within the timeout, three is not.
        const held = await holdMonitor(`${tmp}/one.qmp`);
        try {
          const text = await scrape();
          strictEqual(errorsOf(text, "one").timeout, "1");
          strictEqual(errorsOf(text, "three").timeout, "0");
          if (backend.name === "kvm") checkKvmStats(text, "three", 3);
        } finally {
          held.close();
        }

        // 3. QEMU killed while a scrape waits on its held monitor: nothing else is lost.
        const held2 = await holdMonitor(`${tmp}/one.qmp`);
        try {
          const pending = scrape();
          // Whether the kill lands before or after the exporter connects, the outcome below holds.
          await new Promise((resolve) => setTimeout(resolve, 100));
          await backend.stop(one.vm, one.dir);
          const text = await pending;
          strictEqual(seriesValue(text, 'kvm_scrape_collector_success{collector="qmp"}'), "1");
          strictEqual(seriesValue(text, 'kvm_scrape_collector_success{collector="kvm_stat"}'), "1");
          strictEqual(errorsOf(text, "three").timeout, "0");
          strictEqual(errorsOf(text, "three").protocol, "0");
          if (backend.name === "kvm") checkKvmStats(text, "three", 3);
        } finally {
          held2.close();
        }
        const after = await scrape();
        ok(!after.includes('domain="one"'), "the killed VM is gone from the next scrape");
        strictEqual(errorsOf(after, "three").refused, "0");
      } finally {
        await Promise.all(vms.map((vm) => vm.stop()));
        await Deno.remove(tmp, { recursive: true });
      }
    },
  });
}

scenario(kvmBackend);
scenario(tcgBackend);

if (kvmBackend.skip !== undefined) {
  console.log(`qemu_qmp_test [glob]: skipped: ${kvmBackend.skip}`);
}

Deno.test({
  name:
    "main.ts --collector.qmp.socket-glob takes a real QEMU's socket by its fds, not an impostor's",
  ignore: kvmBackend.skip !== undefined,
  async fn() {
    const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_qmp_glob_e2e_" });
    let vm: QemuVm | undefined;
    let impostor: FakeQmp | undefined;
    try {
      await Deno.mkdir(`${tmp}/run`);
      // The monitor comes from a config file, so it is not on QEMU's command line: only the
      // kernel's evidence (its listening socket held in QEMU's fds) ties it to the VM.
      await Deno.writeTextFile(
        `${tmp}/monitor.cfg`,
        `[chardev "stats"]\n  backend = "socket"\n  path = "${tmp}/run/vm.qmp"\n` +
          `  server = "on"\n  wait = "off"\n[mon "stats"]\n  chardev = "stats"\n` +
          `  mode = "control"\n`,
      );
      vm = await startQemu({
        name: "globbed",
        smp: 2,
        accel: "kvm",
        readConfig: `${tmp}/monitor.cfg`,
      });
      await waitFor(() => Deno.stat(`${tmp}/run/vm.qmp`).then(() => true, () => false), {
        timeoutMs: 15_000,
        what: "QEMU's monitor socket",
      });
      // First in path order, claiming QEMU's main thread as its vCPU: the old matching took it.
      impostor = startFakeQmp(`${tmp}/run/000.qmp`, { behaviour: "qemu", threadIds: [vm.pid] });
      // Only this VM: the kernel's debugfs holds every test's VMs, whose monitors serve one client.
      await Deno.writeTextFile(`${tmp}/vm.yaml`, `vm_infos:\n  globbed: {pid: ${vm.pid}}\n`);
      await using exporter = await startExporter([
        "--web.listen-address=127.0.0.1:0",
        "--collector.kvmdebug.dir=/sys/kernel/debug/kvm",
        `--collector.vmmap.path=${tmp}/vm.yaml`,
        "--collector.vmmap.only-listed",
        "--path.procfs=/proc",
        "--collector.qmp",
        `--collector.qmp.socket-glob=${tmp}/run/*.qmp`,
      ]);
      const scrape = async (): Promise<string> =>
        await (await fetch(`${exporter.baseUrl}/metrics`)).text();
      let text = "";
      await waitFor(async () => (text = await scrape()).includes('kvm_vm_info{domain="globbed"'), {
        timeoutMs: 15_000,
        what: "the VM to be found",
      });
      checkKvmStats(text, "globbed", 2);
      strictEqual(errorsOf(text, "globbed").protocol, "0");
      strictEqual(seriesValue(text, 'kvm_exporter_qmp_skipped_sockets{reason="no_owner"}'), "1");
      strictEqual(impostor.connections, 0, "the impostor is never queried");
      ok(exporter.stderrText().includes("000.qmp"), exporter.stderrText());
    } finally {
      await vm?.stop();
      await impostor?.close();
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
