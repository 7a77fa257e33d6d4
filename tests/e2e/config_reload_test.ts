/**
 * vm.yaml reloads on file change when the exporter may read only the file
 * itself (least privilege: no read permission on its directory), as
 * `deno task start` runs it.
 *
 * @module
 */

import { ok } from "node:assert/strict";
import { startExporter, waitFor } from "../support/exporter_process.ts";

const KVM = new URL("../fixtures/sample/kvm", import.meta.url).pathname;

/** Writes a vm.yaml that names the sample's VM `name`. */
function writeConfig(config: string, name: string): Promise<void> {
  return Deno.writeTextFile(config, `vm_infos:\n  ${name}:\n    kvm_debug_dir: "10620-10"\n`);
}

/** Flags for the sample's debugfs tree with `config`, and no procfs (in `tmp`). */
function exporterArgs(config: string, tmp: string): string[] {
  return [
    "--web.listen-address=127.0.0.1:0",
    `--collector.kvmdebug.dir=${KVM}`,
    `--collector.vmmap.path=${config}`,
    `--path.procfs=${tmp}/no-proc`,
  ];
}

/** Whether the exporter at `baseUrl` names a VM `name`. */
async function namesVm(baseUrl: string, name: string): Promise<boolean> {
  return (await (await fetch(`${baseUrl}/metrics`)).text()).includes(
    `kvm_vm_info{domain="${name}"`,
  );
}

Deno.test("main.ts with read permission on vm.yaml alone still sees it replaced and rewritten", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_reload_" });
  try {
    const config = `${tmp}/vm.yaml`;
    const write = (name: string): Promise<void> => writeConfig(config, name);
    await write("first");
    await using exporter = await startExporter(exporterArgs(config, tmp), {
      permissions: [
        `--allow-read=${KVM},${config}`,
        "--allow-net=127.0.0.1",
        "--allow-env=KVM_EXPORTER_*",
      ],
    });
    const named = (name: string): Promise<boolean> => namesVm(exporter.baseUrl, name);
    ok(await named("first"));

    // Replaced, as editors and config managers do: a new inode under the same name.
    await Deno.writeTextFile(
      `${config}.new`,
      `vm_infos:\n  second:\n    kvm_debug_dir: "10620-10"\n`,
    );
    await Deno.rename(`${config}.new`, config);
    await waitFor(() => named("second"), {
      timeoutMs: 10_000,
      what: "the replaced file to be loaded",
    });

    // Then written in place.
    await write("third");
    await waitFor(() => named("third"), {
      timeoutMs: 10_000,
      what: "the rewritten file to be loaded",
    });
    ok(!exporter.stderrText().includes("Cannot watch"), exporter.stderrText());
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("main.ts with a FIFO in vm.yaml's directory still sees edits and stops on SIGTERM", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_fifo_" });
  try {
    const config = `${tmp}/vm.yaml`;
    const write = (name: string): Promise<void> => writeConfig(config, name);
    await write("first");
    const exporter = await startExporter(exporterArgs(config, tmp));
    try {
      const named = (name: string): Promise<boolean> => namesVm(exporter.baseUrl, name);
      // With read permission on the directory (-A), the old watch watched it, and Deno's
      // watcher blocked opening the FIFO: later edits were missed and SIGTERM froze.
      const mkfifo = await new Deno.Command("mkfifo", { args: [`${tmp}/pipe`] }).output();
      ok(mkfifo.success);
      await write("second");
      await waitFor(() => named("second"), { timeoutMs: 10_000, what: "the edit to be loaded" });
      const status = await exporter.stop("SIGTERM", 10_000);
      ok(status.success, exporter.stderrText());
    } finally {
      await exporter.stop("SIGKILL").catch(() => {});
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
