/**
 * The status page: its content through the app, and once rendered by a real
 * headless Chromium against the real process.
 *
 * @module
 */

import { ok, strictEqual } from "node:assert/strict";
import {
  fetchText,
  LOOPBACK_ANY_PORT,
  SAMPLE_ARGS,
  startExporter,
  waitFor,
} from "../support/exporter_process.ts";
import { blockedOnFifo, releaseFifo, sampleWithFifo } from "../support/fifo.ts";
import { buildApp, fixtureArgs } from "../support/sample_exporter.ts";
import { onPath } from "../support/tls.ts";
import { COLLECTORS } from "../../src/collectors/registry.ts";
import type { QemuVm } from "../support/qemu.ts";
import { kvmBackend } from "../support/vm_backends.ts";

/** The cells of each row of the table with this id. */
function tableRows(html: string, id: string): string[][] {
  const table = new RegExp(`<table id="${id}">([\\s\\S]*?)</table>`).exec(html)?.[1] ?? "";
  const body = /<tbody>([\s\S]*?)<\/tbody>/.exec(table)?.[1] ?? "";
  return [...body.matchAll(/<tr>([\s\S]*?)<\/tr>/g)].map((row) =>
    [...row[1]!.matchAll(/<td>([\s\S]*?)<\/td>/g)].map((cell) => cell[1]!)
  );
}

Deno.test("GET / shows lockdown, collectors and a table of the VMs found", async () => {
  const { app } = await buildApp(fixtureArgs("sample"));
  await (await app.request("/metrics")).body?.cancel();
  const response = await app.request("/");
  strictEqual(response.status, 200);
  ok(response.headers.get("content-type")?.startsWith("text/html"));
  const html = await response.text();
  ok(html.includes('<a href="/metrics">'));
  ok(html.includes("Kernel lockdown: off"));
  ok(!html.includes("<script"), "no script");
  strictEqual(tableRows(html, "collectors")[0]?.[0], "kvm_stat");
  strictEqual(tableRows(html, "collectors")[0]?.[2], "yes");
  ok(/<p id="config">vm.yaml: loaded from &#34;\S*\/sample\/vm.yaml&#34;<\/p>/.test(html), html);
  // name, name from, pid, dir, vCPUs, state, stats from, QMP, missing: every stat from debugfs
  // (and the VMM process, where the registry has its collector), no source of run states.
  const process = COLLECTORS.some((c) => c.name === "vm_process") ? ", process" : "";
  strictEqual(
    JSON.stringify(tableRows(html, "vms")),
    JSON.stringify([
      ["target_vm", "config", "10620", "10620-10", "4", "unknown", `debugfs 84${process}`, "", ""],
      ["web-01", "cmdline", "20431", "20431-12", "2", "unknown", `debugfs 72${process}`, "", ""],
      ["31007-9", "dir", "31007", "31007-9", "1", "unknown", `debugfs 66${process}`, "", ""],
    ]),
  );
});

const DEFAULT_VM_YAML = "/etc/vm.yaml";
const hasDefaultVmYaml = await Deno.stat(DEFAULT_VM_YAML).then(() => true, () => false);
if (hasDefaultVmYaml) {
  console.log(`status_page_test: no-vm.yaml test skipped: ${DEFAULT_VM_YAML} exists here`);
}

Deno.test({
  name: "GET / without a vm.yaml says there is none, never that it loaded",
  ignore: hasDefaultVmYaml,
  async fn() {
    const args = fixtureArgs("sample").filter((a) => !a.startsWith("--collector.vmmap.path="));
    const { app } = await buildApp(args);
    await (await app.request("/metrics")).body?.cancel();
    const html = await (await app.request("/")).text();
    ok(
      html.includes(
        `<p id="config">vm.yaml: none at &#34;${DEFAULT_VM_YAML}&#34;: VMs are named from their command lines</p>`,
      ),
      html,
    );
    ok(!html.includes("loaded"), html);
  },
});

Deno.test("GET / escapes VM names", async () => {
  const { app } = await buildApp(fixtureArgs("edge"));
  await (await app.request("/metrics")).body?.cancel();
  const html = await (await app.request("/")).text();
  ok(html.includes("<td>we&#34;ird\\na\nme ü</td>"), "quotes escaped, text kept");
  ok(!html.includes('we"ird'));
});

Deno.test("GET / before any scrape says none has finished yet, and starts none", async () => {
  const { app, exporter } = await buildApp(fixtureArgs("sample"));
  const html = await (await app.request("/")).text();
  ok(/<p id="last-scrape">Last scrape: none has finished yet/.test(html), html);
  strictEqual(tableRows(html, "vms").length, 0);
  strictEqual(exporter.lastScrape, undefined, "the page started no scrape");
});

const hasMkfifo = onPath("mkfifo");
if (!hasMkfifo) console.log("status_page_test: FIFO test skipped: mkfifo is not on PATH");

Deno.test({
  name: "GET / answers while the first scrape is blocked on a FIFO stat file, without waiting",
  ignore: !hasMkfifo,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_status_fifo_" });
    try {
      // The root stat "exits" is a FIFO: the scrape blocks opening it until its deadline (10 s).
      const { fifo, args } = await sampleWithFifo(dir);
      await using exporter = await startExporter([...args, LOOPBACK_ANY_PORT]);
      let scraped = false;
      const scrape = fetchText(`${exporter.baseUrl}/metrics`).finally(() => scraped = true);
      scrape.catch(() => {}); // Awaited below; this only keeps an early failure readable.
      try {
        await waitFor(() => blockedOnFifo(exporter.pid), {
          what: "the scrape to block opening the FIFO",
        });
        // Before: the page ran a scrape of its own, which waited for the same FIFO until the
        // deadline, so it answered after the scrape above did.
        const page = await fetchText(`${exporter.baseUrl}/`);
        strictEqual(page.status, 200);
        strictEqual(scraped, false, "the page answered while the scrape was still blocked");
        ok(page.body.includes("Last scrape: none has finished yet"), page.body);
      } finally {
        await releaseFifo(fifo);
      }
      strictEqual((await scrape).status, 200);
      const after = await fetchText(`${exporter.baseUrl}/`);
      strictEqual(tableRows(after.body, "vms").length, 3, "the finished scrape's VMs");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

if (kvmBackend.skip !== undefined) {
  console.log(`status_page_test: real VM test skipped: ${kvmBackend.skip}`);
}

/** The status page of an exporter on one VM, after a scrape, with or without the qmp collector. */
async function pageOf(
  vm: { kvm: string; dir: string; socket: string; tmp: string },
  qmp: boolean,
): Promise<string> {
  await using exporter = await startExporter([
    LOOPBACK_ANY_PORT,
    `--collector.kvmdebug.dir=${vm.kvm}`,
    `--collector.vmmap.path=${vm.tmp}/vm.yaml`,
    "--collector.vmmap.only-listed",
    "--path.procfs=/proc",
    ...(qmp ? ["--collector.qmp"] : []),
  ]);
  // The lockdown is inferred from the first scrape's refusals; the page shows the last scrape.
  for (let i = 0; i < 2; i++) await fetchText(`${exporter.baseUrl}/metrics`);
  return (await fetchText(`${exporter.baseUrl}/`)).body;
}

Deno.test({
  name: "GET / on a real KVM VM names its stats' sources, and advises only collectors that are off",
  ignore: kvmBackend.skip !== undefined,
  async fn() {
    const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_status_kvm_" });
    let qemu: QemuVm | undefined;
    try {
      const kvm = await kvmBackend.kvmDir(tmp);
      const socket = `${tmp}/alpha.qmp`;
      const started = await kvmBackend.start(kvm, "alpha", 2, socket);
      qemu = started.vm;
      const dir = started.dir.split("/").pop()!;
      // Only this VM: other tests may run VMs on this host at the same time.
      await Deno.writeTextFile(
        `${tmp}/vm.yaml`,
        `vm_infos:\n  alpha: {kvm_debug_dir: "${dir}", qmp_socket: "${socket}"}\n`,
      );
      const vm = { kvm, dir, socket, tmp };
      const withQmp = await pageOf(vm, true);
      const locked = /Kernel lockdown: (integrity|confidentiality)/.test(withQmp);
      const [row] = tableRows(withQmp, "vms");
      // name, name from, pid, dir, vCPUs, state, stats from, QMP, missing
      strictEqual(row?.[0], "alpha");
      // The VMM process is a source too where the registry has its collector.
      ok(/^QMP \d+, debugfs \d+(, process)?$/.test(row?.[6] ?? ""), row?.[6]);
      // The run state is QMP's where the collector asks query-status, else no source has it.
      ok(/^(unknown|running)$/.test(row?.[5] ?? ""), row?.[5]);
      strictEqual(row?.[7], "ok");
      ok(!withQmp.includes("enable --collector.qmp"), "no advice to enable what is on");
      ok(!withQmp.includes("not readable"), "nothing is missing: QMP supplies it");
      if (locked) {
        ok(/^debugfs refuses \d+; QMP supplies them$/.test(row?.[8] ?? ""), row?.[8]);
        ok(withQmp.includes("the qmp collector supplies the rest"), withQmp);
      }
      const withoutQmp = await pageOf(vm, false);
      const [bare] = tableRows(withoutQmp, "vms");
      ok(/^debugfs \d+(, process)?$/.test(bare?.[6] ?? ""), bare?.[6]);
      if (locked) {
        ok(
          /^\d+ stats not readable in debugfs; enable --collector.qmp or --collector.libvirt$/
            .test(bare?.[8] ?? ""),
          bare?.[8],
        );
      } else {
        console.log("status_page_test: this kernel is not locked down; refusals not checked");
      }
    } finally {
      await qemu?.stop();
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

function chromium(): string | undefined {
  for (const path of ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]) {
    try {
      Deno.statSync(path);
      return path;
    } catch {
      // Try the next.
    }
  }
  return undefined;
}

const browser = chromium();
if (browser === undefined) {
  console.log("status_page_test: Chromium test skipped: no chromium (apt-get install chromium)");
}

Deno.test({
  name: "GET / renders in headless Chromium with the VMs table",
  ignore: browser === undefined,
  async fn() {
    await using exporter = await startExporter([...SAMPLE_ARGS, LOOPBACK_ANY_PORT]);
    await (await fetch(`${exporter.baseUrl}/metrics`)).body?.cancel(); // The page shows it.
    const profile = await Deno.makeTempDir({ prefix: "kvm_exporter_chromium_" });
    try {
      const { code, stdout, stderr } = await new Deno.Command(browser!, {
        args: [
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--disable-quic",
          "--no-first-run",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
          `--user-data-dir=${profile}`,
          "--dump-dom",
          `${exporter.baseUrl}/`,
        ],
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(60_000),
      }).output();
      const dom = new TextDecoder().decode(stdout);
      strictEqual(code, 0, new TextDecoder().decode(stderr));
      ok(dom.includes("<title>KVM Exporter</title>"));
      const rows = tableRows(dom, "vms");
      strictEqual(rows.length, 3);
      strictEqual(rows[1]?.[0], "web-01");
    } finally {
      await Deno.remove(profile, { recursive: true });
    }
  },
});
