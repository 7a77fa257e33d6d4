/**
 * The files users copy or read (README, docs/, Dockerfile, systemd unit,
 * vm.example.yaml) stay true to the code.
 *
 * @module
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { helpText, programFlags } from "../../src/cli/flags.ts";
import { parseVmConfig } from "../../src/config/vm_config.ts";

const root = new URL("../../", import.meta.url).pathname;
const read = (path: string): Promise<string> => Deno.readTextFile(`${root}${path}`);

Deno.test("README gives the two commands for a fresh machine", async () => {
  const readme = await read("README.md");
  ok(readme.includes("npx -y deno@2.9.6 task demo"));
  ok(readme.includes("npx -y deno@2.9.6 task test"));
  ok((await read(".ci/run")).includes("npx -y deno@2.9.6 task test"));
});

Deno.test("README's flag list is --help's", async () => {
  const readme = await read("README.md");
  const flags = (text: string): string[] =>
    text.split("\n").filter((l) => /^ {2}(-\w, |\s{4})--\S/.test(l)).map((l) => l.trimEnd());
  deepStrictEqual(flags(readme), flags(helpText()));
});

Deno.test("every exporter flag named in the docs, Dockerfile, unit and tasks exists", async () => {
  const known = new Set(programFlags().map((f) => f.name));
  const pages: string[] = [];
  for await (const entry of Deno.readDir(`${root}docs`)) {
    if (entry.name.endsWith(".md")) pages.push(`docs/${entry.name}`);
  }
  for (
    const file of [
      "README.md",
      ...pages,
      "Dockerfile",
      "deploy/kvm_exporter.service",
      "deploy/kvm_exporter-start",
      "deploy/debian/kvm_exporter.default",
      "deno.json",
    ]
  ) {
    const text = await read(file);
    for (const match of text.matchAll(/--(?:no-)?((?:collector|web|path|log)\.[a-z_.-]*[a-z_])/g)) {
      ok(known.has(match[1]!), `${file} names unknown flag --${match[1]}`);
    }
  }
});

Deno.test("vm.example.yaml is a valid vm.yaml", async () => {
  const config = parseVmConfig(await read("vm.example.yaml"), "vm.example.yaml");
  strictEqual(config.entries.length, 2);
  strictEqual(config.entries[1]?.qmpSocket, "/var/run/qemu-server/101.qmp");
});

function systemdAnalyze(): boolean {
  try {
    Deno.statSync("/usr/bin/systemd-analyze");
    return true;
  } catch {
    return false;
  }
}

const haveSystemd = systemdAnalyze();
if (!haveSystemd) console.log("deploy_files_test: unit checks skipped: no systemd-analyze");

Deno.test({
  name: "deploy/kvm_exporter.service passes systemd-analyze verify and rates OK on security",
  ignore: !haveSystemd,
  async fn() {
    const tmp = await Deno.makeTempDir();
    try {
      // verify checks that ExecStart exists: point it at a real executable.
      const unit = (await read("deploy/kvm_exporter.service"))
        .replaceAll("/usr/bin/kvm_exporter", "/bin/true");
      await Deno.writeTextFile(`${tmp}/kvm_exporter.service`, unit);
      const run = async (args: string[]): Promise<{ code: number; out: string }> => {
        const { code, stdout, stderr } = await new Deno.Command("systemd-analyze", {
          args,
          stdout: "piped",
          stderr: "piped",
          env: { SYSTEMD_LOG_LEVEL: "warning", NO_COLOR: "1" },
        }).output();
        return { code, out: new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr) };
      };
      const verify = await run(["verify", `${tmp}/kvm_exporter.service`]);
      strictEqual(verify.code, 0, verify.out);
      strictEqual(verify.out.trim(), "", verify.out);
      const security = await run(["security", "--offline=yes", `${tmp}/kvm_exporter.service`]);
      const level = /Overall exposure level for .*: ([\d.]+)/.exec(security.out)?.[1];
      ok(level !== undefined && Number(level) <= 3, `exposure ${level}:\n${security.out}`);
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
