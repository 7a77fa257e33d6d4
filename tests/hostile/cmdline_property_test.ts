/**
 * Hostile VMM command lines: random argv in `/proc/PID/cmdline` (QEMU `-name` forms with `,,`,
 * UTF-8, quotes, newlines, backslashes, Firecracker `--id`, noise, garbage bytes), scraped through
 * the real app. Invariants: discovery never throws, the body parses strictly, every VM has one
 * unique `domain` that is exactly the name its VMM was given (or its dir name), `@PID-FD` added
 * only to tell two apart, and every VM's stats are exported under it.
 *
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { type ParsedFamily, parseExposition } from "../support/exposition_parser.ts";
import { treeArgs } from "../support/exporter_process.ts";
import { propertyParams } from "../support/property.ts";
import { assertBodiesClean, findPromtool } from "../support/promtool.ts";
import { buildApp, scrapeText } from "../support/sample_exporter.ts";

/** VM dirs in dir order (numeric), so that `x@60030-1` can be taken before dir 60030-1. */
const DIRS = ["1-1", "2-1", "60030-1", "60031-1"];

/** A VM's command line and the name its VMM was given (undefined: named by its dir). */
interface Vmm {
  /** The file's bytes; undefined when the process is gone. */
  cmdline: Uint8Array | undefined;
  /** The name the VMM was started with; undefined when it has none; null when unknowable. */
  name: string | undefined | null;
  /** Past the cmdline read cap (issue 7: e.g. 128 KiB): the dir name is an answer too. */
  oversized?: boolean;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Any text an argv element can hold: no NUL, and valid UTF-8 once encoded. */
const argText = fc.string({
  unit: fc.oneof(
    fc.constantFrom(",", ",,", "=", '"', "'", "\\", "\n", " ", "@", "x", "ü", "名", "\u{1F600}"),
    fc.string({ unit: "binary", minLength: 1, maxLength: 1 }),
  ),
  maxLength: 12,
}).filter((s) => !s.includes("\0") && decoder.decode(encoder.encode(s)) === s);

/** Names that collide on purpose: with each other, with "global" and with a rename. */
const pooledName = fc.constantFrom("x", "x", "x@60030-1", "x@2-1", "global", "global@1-1", "2-1");
const vmName = fc.oneof({ arbitrary: argText, weight: 3 }, { arbitrary: pooledName, weight: 2 });

/** Arguments that do not name the VM, so that the oracle stays simple. */
const noise = fc.array(
  fc.oneof(
    argText,
    fc.constantFrom("-qmp", "unix:/run/x.qmp,server=on,wait=off", "-S", "-smp", "4", "-name"),
  ),
  { maxLength: 4 },
).map((args) => args.filter((a) => !/^(-name|--name|--id)(=|$)/.test(a)));

function argvBytes(argv: string[], trailingNul: boolean): Uint8Array {
  return encoder.encode(argv.join("\0") + (trailingNul ? "\0" : ""));
}

/** `,` doubled, as QEMU's option syntax wants inside a value. */
function qemuEscape(text: string): string {
  return text.replaceAll(",", ",,");
}

const qemuVmm = fc.record({
  program: fc.constantFrom("/usr/bin/qemu-system-x86_64", "qemu-kvm", "/usr/libexec/qemu-kvm"),
  name: vmName,
  form: fc.constantFrom("guest", "bare", "last-wins"),
  before: noise,
  after: noise,
  trailingNul: fc.boolean(),
}).map(({ program, name, form, before, after, trailingNul }): Vmm => {
  // A bare `-name` value with "=" is a key=value pair to QEMU, not a name.
  const bare = form === "bare" && !name.includes("=");
  const value = bare ? qemuEscape(name) : `guest=${qemuEscape(name)},debug-threads=on`;
  const first = form === "last-wins" ? ["-name", "guest=first"] : [];
  const argv = [program, ...first, ...before, "-name", value, ...after];
  return { cmdline: argvBytes(argv, trailingNul), name: name === "" ? undefined : name };
});

const firecrackerVmm = fc.record({
  name: vmName,
  equals: fc.boolean(),
  after: noise,
}).map(({ name, equals, after }): Vmm => {
  const id = equals ? [`--id=${name}`] : ["--id", name];
  const argv = ["/usr/bin/firecracker", ...id, ...after];
  return { cmdline: argvBytes(argv, true), name: name === "" ? undefined : name };
});

/** A command line of 200 KiB, its name at the end, as a VMM with a huge argument would have. */
const oversizedVmm = vmName.map((name): Vmm => ({
  cmdline: argvBytes(
    ["qemu-system-x86_64", "-append", "x".repeat(200 * 1024), "-name", `guest=${qemuEscape(name)}`],
    true,
  ),
  name: name === "" ? undefined : name,
  oversized: true,
}));

const unnamedVmm = fc.oneof(
  fc.constant<Vmm>({ cmdline: undefined, name: undefined }),
  noise.map((args): Vmm => ({
    cmdline: argvBytes(["cloud-hypervisor", "--name", "ignored", ...args], true),
    name: undefined,
  })),
  fc.constant<Vmm>({ cmdline: new Uint8Array(), name: undefined }),
);

/** Raw bytes, invalid UTF-8 included: anything may come of it, but never a crash. */
const garbageVmm = fc.uint8Array({ maxLength: 64 }).map((bytes): Vmm => ({
  cmdline: bytes,
  name: null,
}));

const vmm = fc.oneof(
  { arbitrary: qemuVmm, weight: 5 },
  { arbitrary: firecrackerVmm, weight: 2 },
  { arbitrary: unnamedVmm, weight: 1 },
  { arbitrary: garbageVmm, weight: 1 },
  { arbitrary: oversizedVmm, weight: 1 },
);

async function layOut(tmp: string, vmms: readonly Vmm[]): Promise<string[]> {
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
  await Promise.all(vmms.map(async (vmm, i) => {
    const dir = DIRS[i]!;
    await Deno.mkdir(`${tmp}/kvm/${dir}`, { recursive: true });
    await Deno.writeTextFile(`${tmp}/kvm/${dir}/exits`, `${i + 1}\n`);
    if (vmm.cmdline !== undefined) {
      const pid = dir.split("-")[0];
      await Deno.mkdir(`${tmp}/proc/${pid}`, { recursive: true });
      await Deno.writeFile(`${tmp}/proc/${pid}/cmdline`, vmm.cmdline);
    }
  }));
  await Deno.writeTextFile(`${tmp}/vm.yaml`, "");
  return treeArgs(tmp);
}

/** The label value of every kvm_vm_info series, by kvm_debug_dir. */
function infoByDir(families: ParsedFamily[]): Map<string, Map<string, string>> {
  const info = families.find((f) => f.name === "kvm_vm_info")?.samples ?? [];
  return new Map(info.map((s) => [s.labels.get("kvm_debug_dir")!, s.labels]));
}

function check(body: string, vmms: readonly Vmm[]): void {
  const families = parseExposition(body);
  const info = infoByDir(families);
  assert.equal(info.size, vmms.length, "one kvm_vm_info per VM dir");
  const domains = new Set<string>();
  vmms.forEach((vmm, i) => {
    const dir = DIRS[i]!;
    const labels = info.get(dir)!;
    const domain = labels.get("domain")!;
    if (vmm.name !== null) {
      const given = vmm.name ?? dir;
      const sources = new Set<string>();
      if (
        domain === given || new RegExp(`^${RegExp.escape(`${given}@${dir}`)}(~\\d+)?$`).test(domain)
      ) {
        sources.add(vmm.name === undefined ? "dir" : "cmdline");
      }
      if (vmm.oversized === true && (domain === dir || domain === `${dir}@${dir}`)) {
        sources.add("dir");
      }
      assert.ok(
        sources.has(labels.get("name_source")!),
        `${dir}: domain ${JSON.stringify(domain)} (${labels.get("name_source")}) for name ${
          JSON.stringify(given)
        }`,
      );
    }
    domains.add(domain);
    const exits = families.find((f) => f.name === "kvm_stat_exits_count")?.samples
      .find((s) => s.labels.get("domain") === domain);
    assert.equal(exits?.value, i + 1, `${dir}: stats under ${JSON.stringify(domain)}`);
  });
  assert.ok(!domains.has("global"), "no VM is called global");
  assert.equal(domains.size, vmms.length, `domains unique: ${JSON.stringify([...domains])}`);
}

const promtool = findPromtool();

Deno.test("discovery of random VMM command lines: exact, unique domain labels, strict parse", async () => {
  const bodies: string[] = [];
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_hostile_cmdline_" });
  const dupes: Vmm[] = ["x", "x@60030-1", "x"].map((name) => ({
    cmdline: argvBytes(["qemu-system-x86_64", "-name", `guest=${name}`], true),
    name,
  }));
  try {
    await fc.assert(
      fc.asyncProperty(fc.array(vmm, { minLength: 1, maxLength: DIRS.length }), async (vmms) => {
        const { app } = await buildApp(await layOut(tmp, vmms));
        const body = await scrapeText(app);
        check(body, vmms);
        bodies.push(body);
      }),
      // Issue 7's case: dirs 1-1, 2-1, 60030-1 named x, x@60030-1, x.
      { ...propertyParams(60), examples: [[dupes]] },
    );
    if (promtool !== undefined) {
      // Label values with quotes, backslashes, newlines and any UTF-8: promtool agrees.
      await assertBodiesClean(promtool, bodies, 12);
    }
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
});
