/**
 * ConfigStore: reloads coalesce, and the watch opens nothing but vm.yaml itself.
 *
 * @module
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { ConfigStore } from "../../src/config/config_store.ts";
import { createLogger } from "../../src/log/logger.ts";
import { waitFor } from "../support/exporter_process.ts";

function store(path: string): { store: ConfigStore; logs: string[] } {
  const logs: string[] = [];
  const logger = createLogger({ level: "debug", write: (line) => logs.push(line) });
  return { store: new ConfigStore({ path, explicit: true, logger }), logs };
}

function loads(logs: readonly string[]): number {
  return logs.filter((l) => /msg="(Loaded vm.yaml|Cannot load vm.yaml)/.test(l)).length;
}

Deno.test("ConfigStore.reload() runs 100 requests in a row as at most 2 loads", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_store_" });
  try {
    await Deno.writeTextFile(`${tmp}/vm.yaml`, "vm_infos:\n  a: {pid: 1}\n");
    const { store: s, logs } = store(`${tmp}/vm.yaml`);
    const outcomes = await Promise.all(
      Array.from({ length: 100 }, (_, i) => s.reload(i % 2 === 0 ? "SIGHUP" : "POST /-/reload")),
    );
    deepStrictEqual(new Set(outcomes), new Set([undefined]));
    strictEqual(loads(logs), 2, logs.join(""));
    strictEqual(s.config.entries[0]?.name, "a");
    // Once idle, a request runs a load of its own.
    strictEqual(await s.reload("SIGHUP"), undefined);
    strictEqual(loads(logs), 3);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("ConfigStore.reload() gives every coalesced caller the outcome of the load that covered it", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_store_" });
  try {
    await Deno.writeTextFile(`${tmp}/vm.yaml`, "vm_infos:\n  a: {pid: 1}\n");
    const { store: s, logs } = store(`${tmp}/vm.yaml`);
    await s.loadInitial();
    await Deno.writeTextFile(`${tmp}/vm.yaml`, "vm_infos:\n  a: {pid: x}\n");
    const first = s.reload("SIGHUP");
    const rest = Array.from({ length: 10 }, () => s.reload("file changed"));
    const [firstOutcome, ...restOutcomes] = await Promise.all([first, ...rest]);
    ok(firstOutcome instanceof Error);
    ok(restOutcomes[0] instanceof Error);
    ok(restOutcomes[0] !== firstOutcome, "the waiting requests are covered by a load of their own");
    ok(restOutcomes.every((o) => o === restOutcomes[0]), "and share its outcome");
    ok(/vm\.yaml:2:12: pid of VM "a" must be a positive integer/.test(restOutcomes[0].message));
    strictEqual(s.config.entries[0]?.pid, 1, "the old config stays in force");
    strictEqual(s.lastReloadSuccessful, false);
    strictEqual(loads(logs), 3);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

async function mkfifo(path: string): Promise<void> {
  const { success } = await new Deno.Command("mkfifo", { args: [path] }).output();
  ok(success, `mkfifo ${path}`);
}

Deno.test("ConfigStore.watch() is not blocked by a FIFO in vm.yaml's directory", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_watch_" });
  const path = `${tmp}/vm.yaml`;
  const controller = new AbortController();
  let watching: Promise<void> | undefined;
  try {
    await mkfifo(`${tmp}/before.fifo`);
    await Deno.writeTextFile(path, "vm_infos:\n  first: {pid: 1}\n");
    const { store: s, logs } = store(path);
    await s.loadInitial();
    watching = s.watch(controller.signal);
    const named = (name: string) => () => s.config.entries[0]?.name === name;
    // Deno's watcher opened the path of every event it got: a FIFO made in the directory, or in
    // vm.yaml's place, blocked its thread in open(2). Looking with stat opens nothing.
    await mkfifo(`${tmp}/after.fifo`);
    await Deno.writeTextFile(`${tmp}/other.yaml`, "x");
    await Deno.writeTextFile(path, "vm_infos:\n  second: {pid: 1}\n");
    await waitFor(named("second"), { timeoutMs: 10_000, what: "the rewritten file to load" });
    await Deno.writeTextFile(`${path}.new`, "vm_infos:\n  third: {pid: 1}\n");
    await Deno.rename(`${path}.new`, path);
    await waitFor(named("third"), { timeoutMs: 10_000, what: "the replaced file to load" });
    // vm.yaml itself replaced by a FIFO: not opened, not loaded; loaded again once it is a file.
    await Deno.remove(path);
    await mkfifo(path);
    await Deno.writeTextFile(`${path}.new`, "vm_infos:\n  fourth: {pid: 1}\n");
    await waitFor(() => logs.some((l) => l.includes('is="something else"')), {
      timeoutMs: 10_000,
      what: "the FIFO to be seen",
    });
    strictEqual(s.config.entries[0]?.name, "third");
    await Deno.rename(`${path}.new`, path);
    await waitFor(named("fourth"), { timeoutMs: 10_000, what: "the file to load again" });
  } finally {
    controller.abort();
    await watching;
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("ConfigStore.watch() loads a change made before the watch was armed", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_watch_" });
  const path = `${tmp}/vm.yaml`;
  const controller = new AbortController();
  let watching: Promise<void> | undefined;
  try {
    await Deno.writeTextFile(path, "vm_infos:\n  first: {pid: 1}\n");
    const { store: s, logs } = store(path);
    await s.loadInitial();
    // Between the first load and the first watch (a busy machine makes this window long).
    await Deno.writeTextFile(path, "vm_infos:\n  second: {pid: 1}\n");
    watching = s.watch(controller.signal);
    await waitFor(() => s.config.entries[0]?.name === "second", {
      timeoutMs: 10_000,
      what: "the early change to load",
    });
    strictEqual(loads(logs), 2);
  } finally {
    controller.abort();
    await watching;
    await Deno.remove(tmp, { recursive: true });
  }
});

const ORIGIN_CASES: {
  name: string;
  file: string | undefined;
  explicit: boolean;
  origin: string;
}[] = [
  { name: "a file", file: "vm_infos:\n  a: {pid: 1}\n", explicit: true, origin: "file" },
  { name: "no file at the default path", file: undefined, explicit: false, origin: "absent" },
];

for (const c of ORIGIN_CASES) {
  Deno.test(`ConfigStore.origin after loading ${c.name} is ${c.origin}`, async () => {
    const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_store_" });
    try {
      const path = `${tmp}/vm.yaml`;
      if (c.file !== undefined) await Deno.writeTextFile(path, c.file);
      const logger = createLogger({ level: "error", write: () => {} });
      const s = new ConfigStore({ path, explicit: c.explicit, logger });
      strictEqual(s.origin, undefined, "nothing loaded yet");
      await s.loadInitial();
      strictEqual(s.origin, c.origin);
      strictEqual(s.path, path);
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  });
}

Deno.test("ConfigStore.origin stays the file's when a reload is rejected", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_store_" });
  try {
    await Deno.writeTextFile(`${tmp}/vm.yaml`, "vm_infos:\n  a: {pid: 1}\n");
    const { store: s } = store(`${tmp}/vm.yaml`);
    await s.loadInitial();
    await Deno.writeTextFile(`${tmp}/vm.yaml`, "vm_infos:\n  a: {pid: x}\n");
    ok(await s.reload("SIGHUP") instanceof Error);
    strictEqual(s.origin, "file");
    strictEqual(s.lastReloadSuccessful, false);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
