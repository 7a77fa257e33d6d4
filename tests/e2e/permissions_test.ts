/**
 * What the exporter says when Deno's permissions stand in its way: it must
 * name the path and the fix, and keep serving.
 *
 * @module
 */

import { ok, strictEqual } from "node:assert/strict";
import { startExporter } from "../support/exporter_process.ts";
import { startFakeQmp } from "../support/fake_qmp.ts";
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
