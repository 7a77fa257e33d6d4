/**
 * What the exporter says when Deno's permissions stand in its way: it must
 * name the path and the fix, and keep serving.
 *
 * @module
 */

import { ok, strictEqual } from "node:assert/strict";
import { startExporter } from "../support/exporter_process.ts";
import { startFakeQmp } from "../support/fake_qmp.ts";
import { programPath } from "../support/program_path.ts";
import { seriesValue } from "../support/sample_exporter.ts";

Deno.test("main.ts on the default /sys path without --allow-all says why and how to fix it", async () => {
  await using exporter = await startExporter(["--web.listen-address=127.0.0.1:0"], {
    permissions: ["--allow-read=/sys/kernel/debug/kvm", "--allow-net=127.0.0.1"],
  });
  const text = await (await fetch(`${exporter.baseUrl}/metrics`)).text();
  strictEqual(seriesValue(text, 'kvm_scrape_collector_success{collector="kvm_stat"}'), "0");
  strictEqual(seriesValue(text, "kvm_exporter_config_last_reload_successful"), "1");
  const log = exporter.stderrText();
  ok(log.includes('Deno refuses \\"/sys/kernel/debug/kvm\\" without --allow-all'), log);
  ok(log.includes("bind-mount it elsewhere"), log);
  ok(log.includes("No read permission for the default vm.yaml"), log);
  ok(!log.includes("Cannot watch"), log);
});

Deno.test("main.ts --collector.qmp without socket permissions names the flags to add, once", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_perm_" });
  const qmp = startFakeQmp(`${tmp}/vm.sock`, { behaviour: "qemu" });
  try {
    await Deno.mkdir(`${tmp}/kvm/4242-1`, { recursive: true });
    await Deno.writeTextFile(`${tmp}/kvm/4242-1/pages_4k`, "1\n");
    await Deno.writeTextFile(
      `${tmp}/vm.yaml`,
      `vm_infos:\n  vm: {kvm_debug_dir: "4242-1", qmp_socket: "${tmp}/vm.sock"}\n`,
    );
    await using exporter = await startExporter([
      "--web.listen-address=127.0.0.1:0",
      `--collector.kvmdebug.dir=${tmp}/kvm`,
      `--collector.vmmap.path=${tmp}/vm.yaml`,
      `--path.procfs=${tmp}/proc`,
      "--collector.qmp",
    ], { permissions: [`--allow-read=${tmp}`, "--allow-net=127.0.0.1"] });
    for (let i = 0; i < 2; i++) {
      const text = await (await fetch(`${exporter.baseUrl}/metrics`)).text();
      strictEqual(
        seriesValue(text, 'kvm_exporter_qmp_errors{domain="vm",reason="permission"}'),
        "1",
      );
      strictEqual(seriesValue(text, 'kvm_stat_pages_4k_count{domain="vm"}'), "1");
    }
    const warns = exporter.stderrText().split("\n").filter((l) =>
      l.includes("level=warn") && l.includes("vm.sock")
    );
    strictEqual(warns.length, 1, warns.join("\n"));
    ok(warns[0]!.includes(`--allow-write=${tmp}/vm.sock`), warns[0]);
    ok(warns[0]!.includes(`--allow-net=unix:${tmp}/vm.sock`), warns[0]);
  } finally {
    await qmp.close();
    await Deno.remove(tmp, { recursive: true });
  }
});

/** Why the bind-mount run cannot be tried here (it needs root for a private mount), or undefined. */
function bindMountUnavailable(): string | undefined {
  if (Deno.uid() !== 0) return "not root: no private mount namespace";
  const missing = ["unshare", "mount", "setpriv", "sleep"].filter((p) => !programPath(p));
  return missing.length > 0 ? `missing ${missing.join(", ")}` : undefined;
}

const bindSkip = bindMountUnavailable();
if (bindSkip !== undefined) console.log(`permissions_test: bind-mount run skipped: ${bindSkip}`);

Deno.test({
  name:
    "main.ts as the systemd unit runs it (root, no capability, --allow-read of a /proc bind mount only) reads a real process's stat and status, and counts io as refused",
  ignore: bindSkip !== undefined,
  async fn() {
    const testStart = Date.now() / 1000;
    const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_perm_" });
    const vmm = new Deno.Command("sleep", { args: ["300"], stdout: "null", stderr: "null" })
      .spawn();
    try {
      const dir = `${vmm.pid}-9`;
      await Deno.mkdir(`${tmp}/kvm/${dir}`, { recursive: true });
      await Deno.mkdir(`${tmp}/proc`);
      await Deno.writeTextFile(`${tmp}/vm.yaml`, "# Names come from the command lines.\n");
      // A private mount namespace: the bind mount never shows on the host. No capability after
      // it, as CapabilityBoundingSet= leaves the unit's root.
      const script = `mount --bind -o ro /proc '${tmp}/proc' && ` +
        'exec setpriv --bounding-set=-all --inh-caps=-all "$@"';
      await using exporter = await startExporter([
        "--web.listen-address=127.0.0.1:0",
        `--collector.kvmdebug.dir=${tmp}/kvm`,
        `--collector.vmmap.path=${tmp}/vm.yaml`,
        `--path.procfs=${tmp}/proc`,
      ], {
        prefix: ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"],
        permissions: [`--allow-read=${tmp}`, "--allow-net=127.0.0.1"],
      });
      const text = await (await fetch(`${exporter.baseUrl}/metrics`)).text();
      const value = (series: string): number => Number(seriesValue(text, series));
      const labels = `domain="${dir}"`;
      strictEqual(seriesValue(text, 'kvm_scrape_collector_success{collector="vm_process"}'), "1");
      ok(value(`kvm_vm_cpu_seconds_total{${labels},mode="user"}`) >= 0, text);
      ok(value(`kvm_vm_cpu_time_seconds_total{${labels}}`) >= 0, text);
      strictEqual(value(`kvm_vm_process_threads{${labels}}`), 1);
      const rssKib = /^VmRSS:\s+(\d+) kB$/m.exec(
        await Deno.readTextFile(`/proc/${vmm.pid}/status`),
      );
      ok(rssKib !== null);
      const rss = value(`kvm_vm_memory_resident_bytes{${labels}}`);
      // sleep's RSS barely moves; allow its pages a little drift between the two reads.
      ok(Math.abs(rss - Number(rssKib[1]) * 1024) <= 256 * 1024, `${rss} vs ${rssKib[1]} kB`);
      const start = value(`kvm_vm_process_start_time_seconds{${labels}}`);
      // btime is whole seconds, and may differ from the wall clock by a second either way.
      ok(start >= testStart - 2 && start <= Date.now() / 1000 + 2, `${start} from ${testStart}`);
      // io is 0400 and needs ptrace access: the same uid and every capability the process holds.
      strictEqual(seriesValue(text, `kvm_vm_process_io_read_bytes_total{${labels}}`), undefined);
      strictEqual(seriesValue(text, 'kvm_exporter_vm_process_errors{reason="permission"}'), "1");
      strictEqual(seriesValue(text, 'kvm_exporter_vm_process_errors{reason="malformed"}'), "0");
      const log = exporter.stderrText();
      ok(!log.split("\n").some((l) => l.includes("level=warn") && l.includes("/io")), log);
    } finally {
      vmm.kill("SIGKILL");
      await vmm.status;
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
