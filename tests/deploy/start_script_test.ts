/**
 * deploy/kvm_exporter-start, the recipe for hosts without systemd: it runs what the unit runs,
 * and its mount steps succeed whether or not debugfs and securityfs are mounted, run after run.
 *
 * @module
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { REPO_ROOT } from "../support/exporter_process.ts";
import { programPath } from "../support/program_path.ts";

const read = (path: string): Promise<string> => Deno.readTextFile(`${REPO_ROOT}/${path}`);

/** The words of the first `key` command, continuation lines joined, from `start` on. */
function commandWords(text: string, start: RegExp): string[] {
  const joined = text.replaceAll(/\\\n\s*/g, " ");
  const line = joined.split("\n").find((l) => start.test(l));
  ok(line !== undefined, `${start}`);
  return line.replace(start, "").trim().split(/\s+/);
}

Deno.test("kvm_exporter-start runs the unit's ExecStart, with ARGS from the same file", async () => {
  const unit = await read("deploy/kvm_exporter.service");
  const script = await read("deploy/kvm_exporter-start");
  const execStart = commandWords(unit, /^ExecStart=/);
  const exec = commandWords(script, /^exec /);
  deepStrictEqual(exec, [...execStart, '"$@"']);
  ok(unit.includes("EnvironmentFile=-/etc/default/kvm_exporter"));
  ok(script.includes(". /etc/default/kvm_exporter"));
  // Each of the unit's bind mounts is made by the script, read-only.
  for (const match of unit.matchAll(/^BindReadOnlyPaths=-?([^:\n]+):(\S+)$/gm)) {
    ok(script.includes(`bind_ro ${match[1]} ${match[2]}`), match[0]);
  }
});

/** Why the mount test cannot run here, or undefined. */
function mountUnavailable(): string | undefined {
  if (Deno.uid() !== 0) return "mounting needs root";
  for (const tool of ["unshare", "mount", "umount", "mountpoint", "findmnt"]) {
    if (programPath(tool) === undefined) return `${tool} is not installed`;
  }
  try {
    Deno.statSync("/sys/kernel/debug/kvm");
  } catch {
    return "no /sys/kernel/debug/kvm (no KVM module, or debugfs not mounted)";
  }
  return undefined;
}

const skip = mountUnavailable();
if (skip !== undefined) console.log(`start_script_test: mount test skipped: ${skip}`);

Deno.test({
  name: "kvm_exporter-start mounts succeed with debugfs and securityfs unmounted, then mounted",
  ignore: skip !== undefined,
  async fn() {
    const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_start_" });
    const madeRunDir = await Deno.stat("/run/kvm_exporter").then(() => false, () => true);
    try {
      // The script as shipped, but stopping where it would start the exporter.
      const script = (await read("deploy/kvm_exporter-start"))
        .replace(/^exec \/usr\/bin\/kvm_exporter[^]*$/m, "echo mounted\n");
      await Deno.writeTextFile(`${tmp}/start`, script);
      // In a mount namespace of its own (gone with the process): unmount both file systems
      // first, run the steps twice, and report what is mounted where.
      const test = `set -e
umount /sys/kernel/security 2>/dev/null || true
umount /sys/kernel/debug
sh ${tmp}/start
sh ${tmp}/start
for m in /sys/kernel/debug /run/kvm_exporter/kvm /run/kvm_exporter/proc; do
  findmnt -rno FSTYPE,OPTIONS --mountpoint "$m" | head -n 1 | sed "s|^|$m |"
done
ls /run/kvm_exporter/kvm | head -n 1
if mountpoint -q /sys/kernel/security; then
  findmnt -rno OPTIONS --mountpoint /run/kvm_exporter/sys/kernel/security | sed 's|^|security |'
fi
`;
      const { code, stdout, stderr } = await new Deno.Command("unshare", {
        args: ["--mount", "--propagation", "private", "sh", "-c", test],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const out = new TextDecoder().decode(stdout);
      strictEqual(code, 0, out + new TextDecoder().decode(stderr));
      const lines = out.trim().split("\n");
      deepStrictEqual(lines.slice(0, 2), ["mounted", "mounted"]);
      ok(lines[2]!.startsWith("/sys/kernel/debug debugfs "), lines[2]);
      ok(/^\/run\/kvm_exporter\/kvm debugfs ro[,\s]/.test(lines[3]!), lines[3]);
      ok(/^\/run\/kvm_exporter\/proc proc ro[,\s]/.test(lines[4]!), lines[4]);
      ok(lines[5] !== undefined && lines[5] !== "", "the kvm dir has entries");
      const security = lines.find((l) => l.startsWith("security "));
      if (security !== undefined) ok(/^security ro[,\s]/.test(security), security);
      else console.log("start_script_test: this kernel has no securityfs; its bind was skipped");
    } finally {
      await Deno.remove(tmp, { recursive: true });
      if (madeRunDir) {
        for (const sub of ["/sys/kernel/security", "/sys/kernel", "/sys", "/kvm", "/proc", ""]) {
          await Deno.remove(`/run/kvm_exporter${sub}`).catch(() => {});
        }
      }
    }
  },
});
