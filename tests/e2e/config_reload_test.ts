/**
 * vm.yaml reloads on file change when the exporter may read only the file
 * itself (least privilege: no read permission on its directory), as
 * `deno task start` runs it; and reloads of vm.yaml, the web config and its certificate that
 * race a FIFO swapped in and out of them.
 *
 * @module
 */

import { ok } from "node:assert/strict";
import { startExporter, waitFor } from "../support/exporter_process.ts";
import { mkfifo, startSwapper } from "../support/fifo.ts";
import { makeCert, onPath } from "../support/tls.ts";

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

/**
 * `GET url` with `curl` trusting only the certificate `caFile` (rustls, behind Deno's fetch,
 * refuses a self-signed certificate as its own CA); the body, or why not.
 */
async function getTls(url: string, caFile: string): Promise<string> {
  const output = await new Deno.Command("curl", {
    args: ["-sSf", "--max-time", "10", "--cacert", caFile, url],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  if (!output.success) throw new Error(`curl ${url}: ${decoder.decode(output.stderr)}`);
  return decoder.decode(output.stdout);
}

/** How many reloads of vm.yaml and of the web config main.ts has logged, done or refused. */
function reloadsLogged(stderr: string): [number, number] {
  const count = (pattern: RegExp): number => stderr.match(pattern)?.length ?? 0;
  return [
    count(/msg="(Loaded vm.yaml|Cannot load vm.yaml[^"]*)"/g),
    count(/msg="(Loaded the web config|Cannot load the web config[^"]*)"/g),
  ];
}

const tls = onPath("openssl") && onPath("curl");
if (!tls) console.log("config_reload_test: FIFO swap test skipped: no openssl or curl");

Deno.test({
  name:
    "main.ts reloads on SIGHUP while a FIFO swaps in and out of vm.yaml, the web config and the cert",
  ignore: !tls,
  async fn() {
    const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_swap_" });
    try {
      const [config, web, fifo] = [`${tmp}/vm.yaml`, `${tmp}/web.yml`, `${tmp}/swap.fifo`];
      await writeConfig(`${tmp}/good.yaml`, "first");
      await makeCert(tmp);
      await Deno.copyFile(`${tmp}/server.crt`, `${tmp}/good.crt`);
      await Deno.writeTextFile(
        `${tmp}/good.yml`,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
      );
      const targets = [
        { path: config, good: `${tmp}/good.yaml` },
        { path: web, good: `${tmp}/good.yml` },
        { path: `${tmp}/server.crt`, good: `${tmp}/good.crt` },
      ];
      for (const { path, good } of targets) await Deno.copyFile(good, path);
      await mkfifo(fifo);
      await using exporter = await startExporter(
        [...exporterArgs(config, tmp), `--web.config.file=${web}`],
        {
          permissions: [
            `--allow-read=${KVM},${tmp}`,
            "--allow-net=127.0.0.1",
            "--allow-env=KVM_EXPORTER_*",
          ],
        },
      );
      const base = `https://127.0.0.1:${exporter.port}`;
      const logged = (): [number, number] => reloadsLogged(exporter.stderrText());

      // A reload that checked a path's type and then opened it lost the race to the swapper
      // every few dozen reads, and then waited for the FIFO's writer for good.
      {
        await using _swapper = startSwapper({ targets, fifo });
        for (let i = 0; i < 150; i++) {
          const [vm, webs] = logged();
          Deno.kill(exporter.pid, "SIGHUP");
          await waitFor(() => logged()[0] > vm && logged()[1] > webs, {
            what: `reload ${i + 1} of vm.yaml and of the web config to be logged`,
          });
        }
      }
      const stderr = exporter.stderrText();
      for (const what of ["vm.yaml", "the web config"]) {
        ok(
          new RegExp(`msg="Cannot load ${what}[^\\n]*not a regular file \\(a FIFO\\)`).test(stderr),
          `a FIFO as ${what} refused in one line:\n${stderr}`,
        );
      }

      // A broken vm.yaml is still noticed: the old config stays, the metric and the log say so.
      await Deno.writeTextFile(config, "vm_infos:\n  bad: {pdi: 1}\n");
      Deno.kill(exporter.pid, "SIGHUP");
      let metrics = "";
      await waitFor(
        async () => {
          metrics = await getTls(`${base}/metrics`, `${tmp}/good.crt`);
          return metrics.includes("kvm_exporter_config_last_reload_successful 0");
        },
        { what: "kvm_exporter_config_last_reload_successful 0" },
      );
      ok(metrics.includes('kvm_vm_info{domain="first"'), "the config in force is kept");
      ok(
        exporter.stderrText().includes(`${config}:2:9: unknown key`),
        `the broken vm.yaml logged:\n${exporter.stderrText()}`,
      );

      // A new certificate is still loaded and served.
      await makeCert(tmp, "fresh");
      await Deno.rename(`${tmp}/fresh.key`, `${tmp}/server.key`);
      await Deno.rename(`${tmp}/fresh.crt`, `${tmp}/server.crt`);
      Deno.kill(exporter.pid, "SIGHUP");
      await waitFor(async () => (await getTls(`${base}/-/healthy`, `${tmp}/server.crt`)) !== "", {
        what: "the new certificate served",
      });
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
