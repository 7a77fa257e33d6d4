/**
 * Hostile vm.yaml: random YAML-ish text, random but well-formed files, deep nesting and invalid
 * UTF-8, read from disk the way the exporter reads it. Invariants: a file either loads (and a
 * well-formed one round-trips exactly) or fails with one line starting `path:line:col: `; never
 * a stack overflow or any other error.
 *
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { ConfigError } from "../../src/config/config_error.ts";
import { ConfigStore } from "../../src/config/config_store.ts";
import { readVmConfig, type VmEntry } from "../../src/config/vm_config.ts";
import { createLogger } from "../../src/log/logger.ts";
import { propertyParams } from "../support/property.ts";
import { runMain } from "../support/exporter_process.ts";

/** What loading a file came to. */
type Outcome = { loaded: VmEntry[] } | { error: Error };

async function load(path: string, bytes: Uint8Array): Promise<Outcome> {
  await Deno.writeFile(path, bytes);
  try {
    const config = await readVmConfig(path, { explicit: true });
    return { loaded: config?.entries ?? [] };
  } catch (error) {
    return { error: error as Error };
  }
}

/** Asserts that an error is a one-line ConfigError at `path:line:col`. */
function assertLocated(error: Error, path: string): void {
  assert.ok(error instanceof ConfigError, `${error.name}: ${error.message.slice(0, 200)}`);
  assert.ok(!/[\r\n]/.test(error.message), `one line: ${JSON.stringify(error.message)}`);
  assert.ok(error.message.startsWith(`${path}:${error.line}:${error.column}: `), error.message);
  assert.ok(error.line >= 1 && error.column >= 1, error.message);
  assert.ok(error.detail.trim() !== "", "says what is wrong");
}

const encoder = new TextEncoder();

const TOKENS = [
  "vm_infos:",
  "\n",
  "  ",
  " ",
  "- ",
  ": ",
  "{",
  "}",
  "[",
  "]",
  ",",
  "pid",
  "kvm_debug_dir",
  "labels",
  "qmp_socket",
  "web",
  '"',
  "'",
  "&a ",
  "*a",
  "!!str ",
  "!!binary ",
  "!foo ",
  "# c",
  "---",
  "...",
  "? ",
  "|",
  ">-",
  "1-2",
  "123",
  "-1",
  "0x1F",
  "1e3",
  "~",
  "null",
  "true",
  "\t",
  "\\",
  "%YAML 1.2\n",
  "<<: ",
  "\r\n",
  "ü",
  "\u{FEFF}",
  "\u0007",
  "global",
];

/** Text made of YAML's own tokens, so that the parser goes deep into its grammar. */
const tokenText = fc.array(
  fc.oneof(fc.constantFrom(...TOKENS), fc.string({ maxLength: 4 })),
  { maxLength: 60 },
).map((parts) => parts.join(""));

/** What js-yaml refuses as non-printable, in any string it reads. */
const NON_PRINTABLE =
  // deno-lint-ignore no-control-regex -- the control characters are the point.
  /[\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x84\x86-\x9F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?:[^\uD800-\uDBFF]|^)[\uDC00-\uDFFF]/;

const printable = fc.string({ unit: "binary", maxLength: 12 }).filter((s) =>
  !NON_PRINTABLE.test(s)
);
const labelName = fc.stringMatching(/^[a-zA-Z_][a-zA-Z0-9_]{0,6}$/).filter((l) =>
  !l.startsWith("__") && !["domain", "vcpu", "pid", "kvm_debug_dir", "name_source"].includes(l)
);

/** Valid entries: unique names and pids, optional dir and labels. */
const validEntries = fc.uniqueArray(
  fc.record({
    name: printable.filter((n) => n !== "" && n !== "global"),
    pid: fc.integer({ min: 1, max: 4194304 }),
    fd: fc.option(fc.integer({ min: 0, max: 999 }), { nil: undefined }),
    labels: fc.dictionary(labelName, printable, { maxKeys: 3 }),
  }),
  { selector: (e) => e.name, maxLength: 5 },
).filter((entries) => new Set(entries.map((e) => e.pid)).size === entries.length);

type ValidEntry = {
  name: string;
  pid: number;
  fd: number | undefined;
  labels: Record<string, string>;
};

/** The file, in flow style (JSON is YAML): `vm_infos: {...}`. */
function validYaml(entries: readonly ValidEntry[], flow: boolean): string {
  if (flow) {
    const infos = Object.fromEntries(entries.map((e) => [e.name, {
      pid: e.pid,
      ...(e.fd === undefined ? {} : { kvm_debug_dir: `${e.pid}-${e.fd}` }),
      labels: e.labels,
    }]));
    return `vm_infos: ${JSON.stringify(infos)}\n`;
  }
  const lines = ["vm_infos:"];
  for (const e of entries) {
    lines.push(`  ${JSON.stringify(e.name)}:`, `    pid: ${e.pid}`);
    if (e.fd !== undefined) lines.push(`    kvm_debug_dir: "${e.pid}-${e.fd}"`);
    lines.push(`    labels: ${JSON.stringify(e.labels)}`);
  }
  return `${lines.join("\n")}\n`;
}

function expectedEntries(entries: readonly ValidEntry[]): VmEntry[] {
  return entries.map((e) => ({
    name: e.name,
    pid: e.pid,
    ...(e.fd === undefined ? {} : { kvmDebugDir: `${e.pid}-${e.fd}` }),
    labels: { ...e.labels },
  }));
}

Deno.test("readVmConfig() of random YAML text: loads or fails at path:line:col in one line", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_hostile_yaml_" });
  const path = `${dir}/vm.yaml`;
  let errors = 0;
  try {
    await fc.assert(
      fc.asyncProperty(tokenText, async (text) => {
        const outcome = await load(path, encoder.encode(text));
        if ("error" in outcome) {
          errors++;
          assertLocated(outcome.error, path);
        }
      }),
      propertyParams(300),
    );
    assert.ok(errors > 0, "some random text was rejected");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readVmConfig() of random well-formed files: entries round-trip exactly", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_hostile_yaml_" });
  const path = `${dir}/vm.yaml`;
  try {
    await fc.assert(
      fc.asyncProperty(validEntries, fc.boolean(), async (entries, flow) => {
        const outcome = await load(path, encoder.encode(validYaml(entries, flow)));
        if ("error" in outcome) throw outcome.error;
        assert.deepEqual(outcome.loaded, expectedEntries(entries));
      }),
      propertyParams(100),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * Nesting `depth` deep, in flow or block style. Block style indents every level one more space,
 * so its text grows with the square of the depth: it stays under 1,400 levels (the 1 MiB cap).
 */
const deep = fc.oneof(
  fc.record({
    depth: fc.oneof(fc.integer({ min: 1, max: 200 }), fc.integer({ min: 1000, max: 20000 })),
    open: fc.constantFrom("[", "{a: "),
  }).map(({ depth, open }) => ({
    depth,
    text: `vm_infos: ${open.repeat(depth)}${(open === "[" ? "]" : "}").repeat(depth)}\n`,
  })),
  fc.integer({ min: 1, max: 1400 }).map((depth) => ({
    depth,
    text: `vm_infos:\n${
      Array.from({ length: depth }, (_, i) => `${" ".repeat(i + 2)}- `).join("\n")
    }x\n`,
  })),
);

Deno.test("readVmConfig() of deep nesting: a located error, never a stack overflow", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_hostile_yaml_" });
  const path = `${dir}/vm.yaml`;
  try {
    await fc.assert(
      fc.asyncProperty(deep, async ({ text }) => {
        const outcome = await load(path, encoder.encode(text));
        assert.ok("error" in outcome, "nothing this deep is a valid vm.yaml");
        assertLocated(outcome.error, path);
      }),
      {
        ...propertyParams(30),
        examples: [[{ depth: 100_000, text: `a: ${"[".repeat(100_000)}\n` }]],
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Byte sequences that are not UTF-8: a stray continuation, a lone lead, an encoded surrogate. */
const invalidUtf8 = fc.constantFrom([0xff], [0x80], [0xc3], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80]);

Deno.test("readVmConfig() of invalid UTF-8: rejected at its position", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_hostile_yaml_" });
  const path = `${dir}/vm.yaml`;
  try {
    await fc.assert(
      fc.asyncProperty(validEntries, invalidUtf8, fc.nat(), async (entries, bad, at) => {
        const text = encoder.encode(validYaml(entries, false));
        const cut = at % (text.length + 1);
        const bytes = new Uint8Array([...text.subarray(0, cut), ...bad, ...text.subarray(cut)]);
        const outcome = await load(path, bytes);
        assert.ok("error" in outcome, "invalid UTF-8 is rejected");
        assertLocated(outcome.error, path);
      }),
      propertyParams(50),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ConfigStore.reload() of random YAML text: the new config, or the old one kept", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_hostile_yaml_" });
  const path = `${dir}/vm.yaml`;
  const good = "vm_infos:\n  web: {pid: 10620}\n";
  try {
    await Deno.writeTextFile(path, good);
    const logs: string[] = [];
    const store = new ConfigStore({
      path,
      explicit: true,
      logger: createLogger({ level: "debug", write: (line) => logs.push(line) }),
    });
    await store.loadInitial();
    await fc.assert(
      fc.asyncProperty(tokenText, async (text) => {
        await Deno.writeTextFile(path, good);
        assert.equal(await store.reload("test"), undefined);
        const before = store.config;
        await Deno.writeTextFile(path, text);
        const error = await store.reload("test");
        if (error === undefined) {
          assert.equal(store.lastReloadSuccessful, true);
          return;
        }
        assertLocated(error, path);
        assert.equal(store.config, before, "the old config stays in force");
        assert.equal(store.lastReloadSuccessful, false);
        const logged = logs.at(-1)!;
        assert.match(logged, /level=error/);
        assert.ok(!/\n./.test(logged), `the error is logged in one line: ${logged}`);
      }),
      propertyParams(100),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("main.ts with a 100,000-deep vm.yaml exits 1 with a located error", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_hostile_yaml_" });
  const path = `${dir}/vm.yaml`;
  try {
    await Deno.writeTextFile(path, `vm_infos: ${"[".repeat(100_000)}\n`);
    const { code, stderr } = await runMain([
      `--collector.vmmap.path=${path}`,
      "--web.listen-address=127.0.0.1:0",
      `--collector.kvmdebug.dir=${dir}`,
    ]);
    assert.equal(code, 1, stderr);
    const error = stderr.split("\n").find((line) => line.includes("level=error")) ?? "";
    const located = error.includes(`err="${path}:1:`);
    assert.ok(located, error);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
