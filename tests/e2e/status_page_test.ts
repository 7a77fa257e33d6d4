/**
 * The status page: its content through the app, and once rendered by a real
 * headless Chromium against the real process.
 *
 * @module
 */

import { ok, strictEqual } from "node:assert/strict";
import { LOOPBACK_ANY_PORT, SAMPLE_ARGS, startExporter } from "../support/exporter_process.ts";
import { buildApp, fixtureArgs } from "../support/sample_exporter.ts";

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
  const response = await app.request("/");
  strictEqual(response.status, 200);
  ok(response.headers.get("content-type")?.startsWith("text/html"));
  const html = await response.text();
  ok(html.includes('<a href="/metrics">'));
  ok(html.includes("Kernel lockdown: off"));
  ok(!html.includes("<script"), "no script");
  strictEqual(tableRows(html, "collectors")[0]?.[0], "kvm_stat");
  strictEqual(tableRows(html, "collectors")[0]?.[2], "yes");
  // name, name from, pid, dir, vCPUs, unreadable stats
  strictEqual(
    JSON.stringify(tableRows(html, "vms")),
    JSON.stringify([
      ["target_vm", "config", "10620", "10620-10", "4", "0", ""],
      ["web-01", "cmdline", "20431", "20431-12", "2", "0", ""],
      ["31007-9", "dir", "31007", "31007-9", "1", "0", ""],
    ]),
  );
});

Deno.test("GET / escapes VM names", async () => {
  const { app } = await buildApp(fixtureArgs("edge"));
  const html = await (await app.request("/")).text();
  ok(html.includes("<td>we&#34;ird\\na\nme ü</td>"), "quotes escaped, text kept");
  ok(!html.includes('we"ird'));
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
