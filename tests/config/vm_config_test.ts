import assert from "node:assert/strict";
import { join } from "node:path";
import { ConfigError } from "../../src/config/config_error.ts";
import {
  decodeUtf8,
  MAX_VM_CONFIG_BYTES,
  parseVmConfig,
  readVmConfig,
  type VmEntry,
} from "../../src/config/vm_config.ts";
import { syntheticVmYaml } from "../../tools/bench_vm_yaml.ts";
import { mkfifo, startSwapper, unblockFifo, within } from "../support/fifo.ts";

const PATH = "/etc/kvm_exporter/vm.yaml";
const VM_KEYS = "(expected one of pid, kvm_debug_dir, labels, qmp_socket)";

/** Files that parse, with the entries they give. */
const GOOD: { name: string; text: string; entries: VmEntry[] }[] = [
  { name: "reads an empty file as no VMs", text: "", entries: [] },
  { name: "reads a file of comments as no VMs", text: "# no VMs yet\n\n  # none\n", entries: [] },
  { name: "reads an empty vm_infos as no VMs", text: "vm_infos:\n", entries: [] },
  { name: "reads a null vm_infos as no VMs", text: "vm_infos: ~ # later\n", entries: [] },
  { name: "reads an empty flow vm_infos as no VMs", text: "vm_infos: {}\n", entries: [] },
  {
    name: "reads every field in block style",
    text: [
      "# VMs of this host",
      "vm_infos:",
      "  target_vm:   # the VM's name",
      "    pid: 10620",
      '    kvm_debug_dir: "10620-10"',
      "    labels:",
      "      env: prod",
      "      rack: 12",
      "      spare: false",
      "      weight: 1.5",
      "    qmp_socket: /run/qemu/a.qmp",
      "",
    ].join("\n"),
    entries: [{
      name: "target_vm",
      pid: 10620,
      kvmDebugDir: "10620-10",
      labels: { env: "prod", rack: "12", spare: "false", weight: "1.5" },
      qmpSocket: "/run/qemu/a.qmp",
    }],
  },
  {
    name: "reads every field in flow style",
    text: "{vm_infos: {a: {pid: 1, kvm_debug_dir: 1-2, labels: {env: prod}, qmp_socket: '/q'}}}",
    entries: [{ name: "a", pid: 1, kvmDebugDir: "1-2", labels: { env: "prod" }, qmpSocket: "/q" }],
  },
  {
    name: "reads several VMs in file order",
    text: [
      "vm_infos:",
      "  zeta: {pid: 300}",
      "",
      "  # dir only",
      "  alpha:",
      "    kvm_debug_dir: 200-12",
      "  123:",
      "    pid:",
      "      100",
      "  same_pid_other_fd: {pid: 200, kvm_debug_dir: 200-13}",
      "",
    ].join("\n"),
    entries: [
      { name: "zeta", pid: 300, labels: {} },
      { name: "alpha", kvmDebugDir: "200-12", labels: {} },
      { name: "123", pid: 100, labels: {} },
      { name: "same_pid_other_fd", pid: 200, kvmDebugDir: "200-13", labels: {} },
    ],
  },
  {
    name: "reads CRLF line endings",
    text: "vm_infos:\r\n  a:\r\n    pid: 1\r\n  b:\r\n    pid: 2\r\n",
    entries: [{ name: "a", pid: 1, labels: {} }, { name: "b", pid: 2, labels: {} }],
  },
  {
    name: "reads a byte order mark, a document marker and an explicit key",
    text: "\uFEFF---\nvm_infos:\n  ? a\n  : pid: 7\n...\n",
    entries: [{ name: "a", pid: 7, labels: {} }],
  },
  {
    name: "reads an empty labels map as no labels",
    text: "vm_infos:\n  a:\n    pid: 1\n    labels:\n",
    entries: [{ name: "a", pid: 1, labels: {} }],
  },
  {
    name: "reads __proto__ as a plain VM name",
    text: "vm_infos:\n  __proto__: {pid: 1}\n",
    entries: [{ name: "__proto__", pid: 1, labels: {} }],
  },
];

/** Files that do not parse, with the exact error message. */
const BAD: { name: string; text: string; error: string }[] = [
  // YAML syntax, reported by js-yaml.
  {
    name: "rejects a YAML syntax error",
    text: "vm_infos:\n  a: {pid: 1\n",
    error: "3:1: unexpected end of the stream within a flow collection",
  },
  {
    name: "rejects a bad indentation",
    text: "vm_infos:\n  a:\n    pid: 1\n   x: 2\n",
    error: "4:4: bad indentation of a mapping entry",
  },
  {
    name: "rejects a tab in indentation",
    text: "vm_infos:\n\ta: {pid: 1}\n",
    error: "2:1: tab characters must not be used in indentation",
  },
  {
    name: "rejects a duplicate VM name",
    text: "vm_infos:\n  a: {pid: 1}\n  a: {pid: 2}\n",
    error: "3:3: duplicated mapping key",
  },
  {
    name: "rejects a duplicate key in flow style",
    text: "vm_infos: {a: {pid: 1, pid: 2}}\n",
    error: "1:24: duplicated mapping key",
  },
  {
    name: "rejects a timestamp tag",
    text: "vm_infos: !!timestamp 2001-01-01\n",
    error: "1:33: unknown tag !<tag:yaml.org,2002:timestamp>",
  },
  {
    name: "rejects a second document",
    text: "vm_infos:\n  a: {pid: 1}\n---\nvm_infos: {}\n",
    error: "4:1: expected a single document in the stream, but found more",
  },
  {
    name: "rejects an alias",
    text: "vm_infos:\n  a: &vm {pid: 1}\n  b: *vm\n",
    error: "3:6: aliases are not supported",
  },
  {
    name: "rejects a flow mapping key without a value",
    text: "vm_infos:\n  a: {pid: 1, labels: {env}}\n",
    error: "2:23: mapping keys without a value are not supported",
  },
  // Top level.
  {
    name: "rejects a top level that is not a mapping",
    text: "- a\n",
    error: "1:1: top level must be a mapping with key vm_infos, got a sequence",
  },
  {
    name: "rejects a scalar top level",
    text: "# comment\nvm_infos\n",
    error: '2:1: top level must be a mapping with key vm_infos, got "vm_infos"',
  },
  {
    name: "rejects an unknown top-level key",
    text: "vm_infos:\n  a: {pid: 1}\nfoo: 1\n",
    error: '3:1: unknown key "foo" (expected vm_infos)',
  },
  {
    name: "rejects a vm_infos that is not a mapping",
    text: "vm_infos:\n  - a\n",
    error: "2:3: vm_infos must be a mapping of VM names, got a sequence",
  },
  {
    name: "rejects a scalar vm_infos",
    text: "vm_infos: 12\n",
    error: "1:11: vm_infos must be a mapping of VM names, got 12",
  },
  // VM names and mappings.
  {
    name: "rejects an empty VM name",
    text: 'vm_infos:\n  "": {pid: 1}\n',
    error: "2:3: VM name must not be empty",
  },
  {
    name: "rejects a null VM name",
    text: "vm_infos:\n  ~: {pid: 1}\n",
    error: "2:3: VM name must be a string, got null",
  },
  {
    name: "rejects an empty VM",
    text: "vm_infos:\n  a:\n  b: {pid: 1}\n",
    error: '2:3: VM "a" must be a mapping with pid and/or kvm_debug_dir',
  },
  {
    name: "rejects a VM that is not a mapping",
    text: "vm_infos:\n  a: 10620\n",
    error: '2:6: VM "a" must be a mapping with pid and/or kvm_debug_dir',
  },
  {
    name: "rejects a VM without pid and kvm_debug_dir",
    text: "vm_infos:\n  a: {labels: {env: prod}}\n",
    error: '2:3: VM "a" must have pid and/or kvm_debug_dir',
  },
  {
    name: "rejects an empty VM mapping",
    text: "vm_infos:\n  a: {}\n",
    error: '2:3: VM "a" must have pid and/or kvm_debug_dir',
  },
  {
    name: "rejects an unknown VM key",
    text: "vm_infos:\n  target_vm:\n    pdi: 10620\n",
    error: `3:5: unknown key "pdi" in VM "target_vm" ${VM_KEYS}`,
  },
  {
    name: "rejects a merge key",
    text: "vm_infos:\n  a: {pid: 1, <<: {x: 1}}\n",
    error: `2:15: unknown key "<<" in VM "a" ${VM_KEYS}`,
  },
  // pid.
  {
    name: "rejects a string pid",
    text: 'vm_infos:\n  x:\n    pid: "abc"\n',
    error: '3:10: pid of VM "x" must be a positive integer, got "abc"',
  },
  {
    name: "rejects a negative pid",
    text: "vm_infos:\n  x: {pid: -1}\n",
    error: '2:12: pid of VM "x" must be a positive integer, got -1',
  },
  {
    name: "rejects a zero pid",
    text: "vm_infos:\n  x: {pid: 0}\n",
    error: '2:12: pid of VM "x" must be a positive integer, got 0',
  },
  {
    name: "rejects a fractional pid",
    text: "vm_infos:\n  x: {pid: 1.5}\n",
    error: '2:12: pid of VM "x" must be a positive integer, got 1.5',
  },
  {
    name: "rejects a boolean pid",
    text: "vm_infos:\n  x: {pid: true}\n",
    error: '2:12: pid of VM "x" must be a positive integer, got true',
  },
  {
    name: "rejects an empty pid at its key",
    text: "vm_infos:\n  x:\n    pid:\n    kvm_debug_dir: 1-2\n",
    error: '3:5: pid of VM "x" must be a positive integer, got null',
  },
  {
    name: "rejects a pid after comments on a later line",
    text: 'vm_infos:\n  x:\n    pid:  # the pid\n      # really\n      "abc"\n',
    error: '5:7: pid of VM "x" must be a positive integer, got "abc"',
  },
  // kvm_debug_dir.
  {
    name: "rejects a numeric kvm_debug_dir",
    text: "vm_infos:\n  x: {kvm_debug_dir: 10620}\n",
    error: '2:22: kvm_debug_dir of VM "x" must look like "PID-FD", got 10620',
  },
  {
    name: "rejects a kvm_debug_dir without a dash",
    text: "vm_infos:\n  x: {kvm_debug_dir: '10620'}\n",
    error: '2:22: kvm_debug_dir of VM "x" must look like "PID-FD", got "10620"',
  },
  {
    name: "rejects a kvm_debug_dir with nothing after the dash",
    text: "vm_infos:\n  x: {kvm_debug_dir: 10620-}\n",
    error: '2:22: kvm_debug_dir of VM "x" must look like "PID-FD", got "10620-"',
  },
  {
    name: "rejects a kvm_debug_dir with a slash",
    text: "vm_infos:\n  x: {kvm_debug_dir: 10620-1/..}\n",
    error: '2:22: kvm_debug_dir of VM "x" must look like "PID-FD", got "10620-1/.."',
  },
  {
    name: "rejects a kvm_debug_dir that does not start with digits",
    text: "vm_infos:\n  x: {kvm_debug_dir: a-1}\n",
    error: '2:22: kvm_debug_dir of VM "x" must look like "PID-FD", got "a-1"',
  },
  {
    name: "rejects a kvm_debug_dir that does not match the pid",
    text: "vm_infos:\n  x:\n    kvm_debug_dir: 10620-10\n    pid: 10621\n",
    error: '3:20: kvm_debug_dir "10620-10" of VM "x" does not start with its pid 10621',
  },
  // Two names for one directory.
  {
    name: "rejects two VMs with the same kvm_debug_dir",
    text: [
      "vm_infos:",
      "  a:",
      "    kvm_debug_dir: 10620-10",
      "  b:",
      "    pid: 10620",
      "    kvm_debug_dir: 10620-10",
      "",
    ].join("\n"),
    error: '6:20: VM "b" has the same kvm_debug_dir "10620-10" as VM "a" (line 3)',
  },
  {
    name: "rejects two VMs with the same pid and no kvm_debug_dir",
    text: "vm_infos:\r\n  a:\r\n    pid: 1\r\n  b: {pid: 2}\r\n  c:\r\n    pid: 1\r\n",
    error: '6:10: VM "c" has the same pid 1 as VM "a" (line 3)',
  },
  // labels.
  {
    name: "rejects labels that are not a mapping",
    text: "vm_infos:\n  a: {pid: 1, labels: [env]}\n",
    error: '2:23: labels of VM "a" must be a mapping, got a sequence',
  },
  {
    name: "rejects an invalid label name",
    text: "vm_infos:\n  a:\n    pid: 1\n    labels:\n      env: prod\n      rack-no: 12\n",
    error: '6:7: label name "rack-no" of VM "a" must match [a-zA-Z_][a-zA-Z0-9_]*',
  },
  {
    name: "rejects a label name that starts with a digit",
    text: "vm_infos:\n  a: {pid: 1, labels: {1x: y}}\n",
    error: '2:24: label name "1x" of VM "a" must match [a-zA-Z_][a-zA-Z0-9_]*',
  },
  {
    name: "rejects a label name that starts with __",
    text: "vm_infos:\n  a: {pid: 1, labels: {__name__: y}}\n",
    error: '2:24: label name "__name__" of VM "a" must not start with "__"',
  },
  {
    name: "rejects a __proto__ label",
    text: "vm_infos:\n  a: {pid: 1, labels: {__proto__: y}}\n",
    error: '2:24: label name "__proto__" of VM "a" must not start with "__"',
  },
  ...["domain", "vcpu", "pid", "kvm_debug_dir", "name_source"].map((label) => ({
    name: `rejects the reserved label ${label}`,
    text: `vm_infos:\n  a: {pid: 1, labels: {${label}: y}}\n`,
    error: `2:24: label name "${label}" of VM "a" is reserved`,
  })),
  {
    name: "rejects a label value that is a mapping",
    text: "vm_infos:\n  a: {pid: 1, labels: {env: {x: y}}}\n",
    error: '2:29: label "env" of VM "a" must be a string, number or boolean, got a mapping',
  },
  {
    name: "rejects an empty label value",
    text: "vm_infos:\n  a:\n    pid: 1\n    labels:\n      env:\n",
    error: '5:7: label "env" of VM "a" must be a string, number or boolean, got null',
  },
  // qmp_socket.
  {
    name: "rejects a relative qmp_socket",
    text: "vm_infos:\n  a: {pid: 1, qmp_socket: run/a.qmp}\n",
    error: '2:27: qmp_socket of VM "a" must be an absolute path, got "run/a.qmp"',
  },
  {
    name: "rejects an empty qmp_socket",
    text: "vm_infos:\n  a: {pid: 1, qmp_socket: ''}\n",
    error: '2:27: qmp_socket of VM "a" must be an absolute path, got ""',
  },
  {
    name: "rejects a numeric qmp_socket",
    text: "vm_infos:\n  a: {pid: 1, qmp_socket: 5}\n",
    error: '2:27: qmp_socket of VM "a" must be an absolute path, got 5',
  },
  // Nesting is bounded before js-yaml's recursion can overflow the call stack.
  {
    name: "rejects deep flow nesting where it gets too deep",
    text: "vm_infos: " + "[".repeat(100_000) + "]".repeat(100_000),
    error: "1:42: nesting deeper than 32 levels",
  },
  {
    name: "rejects deep flow mappings where they get too deep",
    text: "vm_infos: " + "{a: ".repeat(100_000) + "1" + "}".repeat(100_000),
    error: "1:132: nesting deeper than 32 levels",
  },
  {
    name: "rejects deep block nesting where it gets too deep",
    text: "vm_infos:\n" +
      Array.from({ length: 5_000 }, (_, i) => `${" ".repeat(i + 1)}k${i}:`).join("\n"),
    error: "32:32: nesting deeper than 32 levels",
  },
  {
    name: "rejects deep compact sequences where they get too deep",
    text: "vm_infos:\n  a:\n    " + "- ".repeat(100_000) + "x\n",
    error: "3:65: nesting deeper than 32 levels",
  },
  // Messages stay on one line.
  {
    name: "keeps a multi-line value on one line",
    text: 'vm_infos:\n  "a\\nb": {pid: "x\\ny"}\n',
    error: '2:17: pid of VM "a\\nb" must be a positive integer, got "x\\ny"',
  },
];

for (const { name, text, entries } of GOOD) {
  Deno.test(`parseVmConfig() ${name}`, () => {
    assert.deepEqual(parseVmConfig(text, PATH), { entries });
  });
}

for (const { name, text, error } of BAD) {
  Deno.test(`parseVmConfig() ${name}`, () => {
    assert.throws(() => parseVmConfig(text, PATH), (caught) => {
      assert.ok(caught instanceof ConfigError);
      assert.equal(caught.message, `${PATH}:${error}`);
      assert.equal(`${caught.line}:${caught.column}: ${caught.detail}`, error);
      assert.equal(caught.path, PATH);
      return true;
    });
  });
}

Deno.test("parseVmConfig() never changes the Object prototype", () => {
  const texts = [
    "vm_infos:\n  __proto__: {pid: 1, labels: {polluted: yes}}\n",
    "__proto__: {polluted: yes}\n",
    "vm_infos:\n  a: {pid: 1, labels: {__proto__: {polluted: yes}}}\n",
  ];
  for (const text of texts) {
    try {
      parseVmConfig(text, PATH);
    } catch (error) {
      assert.ok(error instanceof ConfigError);
    }
  }
  assert.equal(Object.hasOwn(Object.prototype, "polluted"), false);
  assert.equal(Object.hasOwn(Object.prototype, "pid"), false);
});

Deno.test("readVmConfig() reads and parses a file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "vm.yaml");
    await Deno.writeTextFile(path, "vm_infos:\n  a: {pid: 1}\n");
    assert.deepEqual(await readVmConfig(path, { explicit: true }), {
      entries: [{ name: "a", pid: 1, labels: {} }],
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readVmConfig() returns undefined for a missing default file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    assert.equal(await readVmConfig(join(dir, "vm.yaml"), { explicit: false }), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readVmConfig() rejects a missing explicit file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "vm.yaml");
    await assert.rejects(readVmConfig(path, { explicit: true }), {
      message: `Cannot read vm.yaml "${path}": no such file`,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readVmConfig() rejects a directory even if not explicit", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(readVmConfig(dir, { explicit: false }), {
      message: `Cannot read vm.yaml "${dir}": not a regular file (a directory)`,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readVmConfig() reports invalid content with the file's path", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "vm.yaml");
    await Deno.writeTextFile(path, "vm_infos:\n  a: {pdi: 1}\n");
    await assert.rejects(readVmConfig(path, { explicit: false }), {
      name: "ConfigError",
      message: `${path}:2:7: unknown key "pdi" in VM "a" ${VM_KEYS}`,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const UTF8: { what: string; bytes: number[]; error: string | undefined }[] = [
  {
    what: "accepts ASCII, accents, CJK and emoji",
    bytes: [0x61, 0xc3, 0xa9, 0xe4, 0xb8, 0xad, 0xf0, 0x9f, 0x98, 0x80],
    error: undefined,
  },
  {
    what: "rejects a stray continuation byte",
    bytes: [0x61, 0x80],
    error: "1:2: invalid UTF-8: byte 0x80 at offset 1",
  },
  {
    what: "rejects 0xff on line 2 after a 2-byte character",
    bytes: [0x61, 0x0a, 0xc3, 0xa9, 0xff],
    error: "2:2: invalid UTF-8: byte 0xff at offset 4",
  },
  {
    what: "rejects a truncated sequence at the end",
    bytes: [0x0a, 0x0a, 0x62, 0xe2, 0x82],
    error: "3:2: invalid UTF-8: byte 0xe2 at offset 3",
  },
  {
    what: "rejects an overlong encoding",
    bytes: [0xc0, 0xaf],
    error: "1:1: invalid UTF-8: byte 0xc0 at offset 0",
  },
  {
    what: "rejects an encoded surrogate",
    bytes: [0x78, 0xed, 0xa0, 0x80],
    error: "1:2: invalid UTF-8: byte 0xed at offset 1",
  },
  {
    what: "rejects a code point past U+10FFFF",
    bytes: [0xf4, 0x90, 0x80, 0x80],
    error: "1:1: invalid UTF-8: byte 0xf4 at offset 0",
  },
];

Deno.test("decodeUtf8() rejects invalid UTF-8 at its line, column and byte offset", async (t) => {
  for (const c of UTF8) {
    await t.step(c.what, () => {
      const bytes = new Uint8Array(c.bytes);
      if (c.error === undefined) {
        assert.equal(decodeUtf8(bytes, PATH), new TextDecoder().decode(bytes));
      } else {
        assert.throws(() => decodeUtf8(bytes, PATH), {
          name: "ConfigError",
          message: `${PATH}:${c.error}`,
        });
      }
    });
  }
});

Deno.test("readVmConfig() rejects a VM name in invalid UTF-8 instead of reading U+FFFD", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "vm.yaml");
    const head = new TextEncoder().encode("vm_infos:\n  caf");
    await Deno.writeFile(
      path,
      new Uint8Array([...head, 0xe9, ...new TextEncoder().encode(": {pid: 1}\n")]),
    );
    await assert.rejects(readVmConfig(path, { explicit: true }), {
      name: "ConfigError",
      message: `${path}:2:6: invalid UTF-8: byte 0xe9 at offset 15`,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readVmConfig() rejects a file over the size cap without parsing it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "vm.yaml");
    const text = syntheticVmYaml(20_000);
    assert.ok(text.length > MAX_VM_CONFIG_BYTES);
    await Deno.writeTextFile(path, text);
    await assert.rejects(readVmConfig(path, { explicit: true }), {
      message:
        `Cannot read vm.yaml "${path}": larger than 1048576 bytes, the most vm.yaml may hold`,
    });
    // Exactly at the cap is fine (padded with a comment).
    const fits = "vm_infos:\n  a: {pid: 1}\n#";
    await Deno.writeTextFile(path, fits.padEnd(MAX_VM_CONFIG_BYTES, "x"));
    assert.equal((await readVmConfig(path, { explicit: true }))?.entries.length, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readVmConfig() rejects a FIFO without blocking", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "vm.yaml");
    const mkfifo = await new Deno.Command("mkfifo", { args: [path] }).output();
    assert.ok(mkfifo.success);
    // Opening a FIFO with no writer would block this read for good.
    await assert.rejects(readVmConfig(path, { explicit: true }), {
      message: `Cannot read vm.yaml "${path}": not a regular file (a FIFO)`,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readVmConfig() settles on every read while a FIFO swaps in and out of vm.yaml", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_vmswap_" });
  const [path, good, fifo] = [join(dir, "vm.yaml"), join(dir, "good.yaml"), join(dir, "swap.fifo")];
  const outcomes = new Map<string, number>();
  try {
    await Deno.writeTextFile(good, "vm_infos:\n  a: {pid: 1}\n");
    await Deno.copyFile(good, path);
    await mkfifo(fifo);
    await using _swapper = startSwapper({ targets: [{ path, good }], fifo });
    // A type check and then an open loses the race once in a few reads: the open of the FIFO
    // then blocked for good. 400 reads lose it many times over.
    for (let i = 0; i < 400; i++) {
      const outcome = await within(
        readVmConfig(path, { explicit: true }).then(
          (config) => `loaded ${config?.entries.length} VM`,
          (error: Error) => error.message,
        ),
        5_000,
      );
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      if (outcome === "timeout") break;
    }
    assert.deepEqual([...outcomes.keys()].sort(), [
      `Cannot read vm.yaml "${path}": not a regular file (a FIFO)`,
      "loaded 1 VM",
    ], JSON.stringify([...outcomes]));
  } finally {
    // A read blocked opening the FIFO (the defect) gets its writer and returns.
    if (outcomes.has("timeout")) await unblockFifo(fifo);
    await Deno.remove(dir, { recursive: true });
  }
});
