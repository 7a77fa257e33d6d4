/**
 * Opens per scrape on a real locked-down host, counted by the kernel's side of it:
 * `deno run -A bench/strace_lockdown.ts [--scrapes=10] [--code=DIR]` starts one real QEMU VM
 * (2 vCPUs, KVM), runs the exporter of `--code` (this checkout by default; another checkout,
 * e.g. main's, for a before) under `strace -f -c -e trace=openat` twice, scraping once and then
 * `1 + N` times, and prints the `openat` calls and errors (EPERM under lockdown) per scrape: the
 * difference of the two runs over N, so that start-up's opens cancel out. Run it under
 * `flock /tmp/realvm.lock` where other tests start VMs. Needs root, /dev/kvm, QEMU and strace.
 *
 * @module
 */

import { startQemu } from "../tests/support/qemu.ts";
import { freePort, probe, waitUntilUp } from "./probe.ts";

const DEBUGFS = "/sys/kernel/debug/kvm";
const HERE = new URL(".", import.meta.url).pathname.replace(/\/$/, "");

/** `openat` calls and errors from a `strace -c` summary. */
export interface OpenatCount {
  /** Calls. */
  calls: number;
  /** Of those, failed ones. */
  errors: number;
}

/**
 * Reads the `openat` row of a `strace -c` summary.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseStraceSummary } from "./strace_lockdown.ts";
 * const text = "% time     seconds  usecs/call     calls    errors syscall\n" +
 *   "------ ----------- ----------- --------- --------- ----------------\n" +
 *   "100.00    0.001000           2       405       336 openat\n";
 * assert.deepEqual(parseStraceSummary(text), { calls: 405, errors: 336 });
 * ```
 *
 * @param text The summary strace wrote.
 * @returns The row's calls and errors.
 * @throws {SyntaxError} When no `openat` row is found.
 */
export function parseStraceSummary(text: string): OpenatCount {
  for (const line of text.split("\n")) {
    const cells = line.trim().split(/\s+/);
    if (cells.at(-1) !== "openat") continue;
    // % time, seconds, usecs/call, calls, [errors,] syscall.
    const calls = Number(cells[3]);
    const errors = cells.length === 6 ? Number(cells[4]) : 0;
    if (Number.isInteger(calls) && Number.isInteger(errors)) return { calls, errors };
  }
  throw new SyntaxError(`No openat row in the strace summary: ${JSON.stringify(text)}`);
}

/** The exporter of `code` under strace, scraped `scrapes` times; its `openat` counts. */
async function tracedRun(
  options: { code: string; vmYaml: string; scrapes: number; tmp: string },
): Promise<OpenatCount> {
  const port = freePort();
  const summary = `${options.tmp}/strace-${options.scrapes}.txt`;
  const strace = new Deno.Command("strace", {
    args: [
      "-f",
      "-c",
      "-e",
      "trace=openat",
      "-o",
      summary,
      Deno.execPath(),
      "run",
      "-A",
      `${options.code}/main.ts`,
      `--web.listen-address=127.0.0.1:${port}`,
      `--collector.kvmdebug.dir=${DEBUGFS}`,
      `--collector.vmmap.path=${options.vmYaml}`,
      "--collector.vmmap.only-listed",
      "--path.procfs=/proc",
      "--path.sysfs=/sys",
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    await waitUntilUp(port, "/-/healthy");
    for (let i = 0; i < options.scrapes; i++) {
      const { status } = await probe(port, "/metrics");
      if (status !== 200) throw new Error(`/metrics answered ${status}`);
    }
  } finally {
    // The exporter is strace's child: ended by its pid, it exits and strace writes the summary.
    const children = await Deno.readTextFile(`/proc/${strace.pid}/task/${strace.pid}/children`)
      .catch(() => "");
    for (const pid of children.trim().split(/\s+/).filter(Boolean)) {
      try {
        Deno.kill(Number(pid), "SIGTERM");
      } catch {
        // Gone already.
      }
    }
    await strace.status;
  }
  return parseStraceSummary(await Deno.readTextFile(summary));
}

async function main(args: readonly string[]): Promise<void> {
  const scrapes = Number(args.find((a) => a.startsWith("--scrapes="))?.slice(10) ?? 10);
  const code = args.find((a) => a.startsWith("--code="))?.slice(7) ?? HERE.replace(/\/bench$/, "");
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_strace_" });
  await using vm = await startQemu({ name: "strace-lockdown", smp: 2, accel: "kvm" });
  try {
    let dir: string | undefined;
    const deadline = Date.now() + 10_000;
    while (dir === undefined && Date.now() < deadline) {
      for await (const entry of Deno.readDir(DEBUGFS)) {
        if (entry.name.startsWith(`${vm.pid}-`)) dir = entry.name;
      }
      if (dir === undefined) await new Promise((r) => setTimeout(r, 50));
    }
    if (dir === undefined) throw new Error(`No debugfs dir for QEMU ${vm.pid}`);
    const vmYaml = `${tmp}/vm.yaml`;
    await Deno.writeTextFile(vmYaml, `vm_infos:\n  strace-lockdown: {kvm_debug_dir: "${dir}"}\n`);
    const one = await tracedRun({ code, vmYaml, scrapes: 1, tmp });
    const many = await tracedRun({ code, vmYaml, scrapes: 1 + scrapes, tmp });
    const perScrape = (a: number, b: number): string => ((b - a) / scrapes).toFixed(1);
    console.log(
      `${code}: 1 scrape: ${one.calls} openat (${one.errors} failed); ${
        1 + scrapes
      } scrapes: ${many.calls} (${many.errors}); per scrape: ${
        perScrape(one.calls, many.calls)
      } openat, ${perScrape(one.errors, many.errors)} failed`,
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

if (import.meta.main) await main(Deno.args.filter((arg) => arg !== "--"));
