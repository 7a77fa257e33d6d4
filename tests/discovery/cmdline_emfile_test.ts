/**
 * Command-line reads past the process's file limit: main.ts under `prlimit --nofile=256` finds
 * 300 new VMs at once. A read that fails (EMFILE) is retried on the next scrape, never cached as
 * "no command line", and discovery's reads run a few at a time.
 */

import assert from "node:assert/strict";
import { LOOPBACK_ANY_PORT, startExporter, treeArgs } from "../support/exporter_process.ts";
import { onPath } from "../support/tls.ts";

const VMS = 300;
const hasPrlimit = onPath("prlimit");
if (!hasPrlimit) console.log("cmdline_emfile_test: skipped: prlimit (util-linux) is not on PATH");

/** A debugfs tree of `VMS` VM dirs (a few stats each) and their VMMs' command lines. */
async function layOut(tmp: string): Promise<void> {
  await Deno.mkdir(`${tmp}/kvm`);
  await Deno.writeTextFile(`${tmp}/kvm/exits`, "1\n");
  await Deno.writeTextFile(`${tmp}/vm.yaml`, "vm_infos: {}\n");
  for (let i = 0; i < VMS; i++) {
    const pid = 100_000 + i;
    const dir = `${tmp}/kvm/${pid}-${i + 10}`;
    await Deno.mkdir(`${dir}/vcpu0`, { recursive: true });
    for (const stat of ["exits", "halt_exits", "pages_4k"]) {
      await Deno.writeTextFile(`${dir}/${stat}`, `${i}\n`);
    }
    await Deno.writeTextFile(`${dir}/vcpu0/exits`, `${i}\n`);
    await Deno.mkdir(`${tmp}/proc/${pid}`, { recursive: true });
    await Deno.writeTextFile(
      `${tmp}/proc/${pid}/cmdline`,
      `qemu-system-x86_64\0-name\0guest=vm${i},debug-threads=on\0`,
    );
  }
}

/** `name_source` of each `kvm_vm_info` series, by domain. */
function nameSources(text: string): Map<string, string> {
  const sources = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (!line.startsWith("kvm_vm_info{")) continue;
    const domain = /domain="([^"]*)"/.exec(line)?.[1];
    const source = /name_source="([^"]*)"/.exec(line)?.[1];
    if (domain !== undefined && source !== undefined) sources.set(domain, source);
  }
  return sources;
}

Deno.test({
  name:
    "main.ts under prlimit --nofile=256 names 300 new VMs from their command lines within two scrapes",
  ignore: !hasPrlimit,
  async fn() {
    const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_cmdline_emfile_" });
    try {
      await layOut(tmp);
      await using exporter = await startExporter(
        [...treeArgs(tmp), LOOPBACK_ANY_PORT, "--web.scrape-timeout=30s"],
        { prefix: ["prlimit", "--nofile=256"] },
      );
      const scrape = async (): Promise<string> => {
        const response = await fetch(`${exporter.baseUrl}/metrics`, {
          signal: AbortSignal.timeout(60_000),
        });
        assert.equal(response.status, 200);
        return await response.text();
      };
      const first = nameSources(await scrape());
      assert.equal(first.size, VMS, "every VM found in the first scrape");
      const second = nameSources(await scrape());
      const fromDir = [...second].filter(([, source]) => source !== "cmdline");
      assert.deepEqual(
        fromDir,
        [],
        `named by their dir after two scrapes (first: ${
          [...first.values()].filter((s) => s !== "cmdline").length
        })`,
      );
      for (let i = 0; i < VMS; i++) assert.ok(second.has(`vm${i}`), `vm${i}`);
      const log = exporter.stderrText();
      assert.doesNotMatch(log, /Uncaught|panicked/);
      const status = await exporter.stop();
      assert.equal(status.code, 0, log);
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
