import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { readRegularFile } from "../../src/system/bounded_read.ts";
import { PolledStore } from "../../src/system/polled_store.ts";
import { waitFor } from "../support/exporter_process.ts";
import { mkfifo } from "../support/fifo.ts";

/** Reads without blocking on a FIFO, as the real stores do. */
async function read(path: string): Promise<string> {
  return new TextDecoder().decode(await readRegularFile(path, { maxBytes: 1024 }));
}

/**
 * A store of `{ text, include }` read from `main` (first line: text; second line, if any: the
 * name of a second file whose text is appended), polled every 10 ms.
 */
function fixture(dir: string, options: { waitForRegular: boolean }) {
  const main = `${dir}/main.txt`;
  const notRegular: string[] = [];
  const reasons: string[] = [];
  const store = new PolledStore<{ text: string; include: string | undefined }>({
    initial: { text: "", include: undefined },
    files: ({ include }) => include === undefined ? [main] : [main, include],
    load: async (reason) => {
      reasons.push(reason);
      const [text = "", name] = (await read(main)).split("\n");
      if (text === "bad") throw new SyntaxError(`${main}: bad`);
      const include = name ? `${dir}/${name}` : undefined;
      const extra = include === undefined ? "" : await read(include);
      return { text: text + extra, include };
    },
    pollMs: 10,
    ...(options.waitForRegular
      ? { notRegular: (_: string, kind: string) => notRegular.push(kind) }
      : {}),
  });
  return { main, store, notRegular, reasons };
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "polled_store_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("PolledStore.reload() keeps the value in force when a load fails", () =>
  withDir(async (dir) => {
    const { main, store } = fixture(dir, { waitForRegular: false });
    await Deno.writeTextFile(main, "one");
    strictEqual((await store.loadInitial()).text, "one");
    strictEqual(store.lastLoadSucceeded, true);
    const loadedAt = store.lastSuccessMs;
    ok(loadedAt !== undefined);
    await Deno.writeTextFile(main, "bad");
    strictEqual((await store.reload("test"))?.message, `${main}: bad`);
    strictEqual(store.value.text, "one");
    strictEqual(store.lastLoadSucceeded, false);
    strictEqual(store.lastSuccessMs, loadedAt);
  }));

Deno.test("PolledStore.watch() loads what changed on disk", async (t) => {
  const cases: {
    what: string;
    change: (dir: string, main: string) => Promise<void>;
    expected: string;
  }[] = [
    {
      what: "the main file rewritten",
      change: (_, main) => Deno.writeTextFile(main, "two\ninc.txt"),
      expected: "two+",
    },
    {
      what: "the main file replaced by a rename",
      change: async (dir, main) => {
        await Deno.writeTextFile(`${dir}/new`, "three\ninc.txt");
        await Deno.rename(`${dir}/new`, main);
      },
      expected: "three+",
    },
    {
      what: "a file the value names",
      change: (dir) => Deno.writeTextFile(`${dir}/inc.txt`, "++"),
      expected: "one++",
    },
  ];
  for (const c of cases) {
    await t.step(c.what, () =>
      withDir(async (dir) => {
        const { main, store, reasons } = fixture(dir, { waitForRegular: false });
        await Deno.writeTextFile(`${dir}/inc.txt`, "+");
        await Deno.writeTextFile(main, "one\ninc.txt");
        await store.loadInitial();
        const controller = new AbortController();
        const watching = store.watch(controller.signal);
        try {
          await c.change(dir, main);
          await waitFor(() => store.value.text === c.expected, { what: c.expected });
          // A rewrite is not atomic: a look may see it half done and load twice.
          deepStrictEqual(new Set(reasons.slice(1)), new Set(["file changed"]));
        } finally {
          controller.abort();
          await watching;
        }
      }));
  }
});

Deno.test("PolledStore.watch() with notRegular waits for a regular file; without, it loads and fails", async (t) => {
  const cases: { waitForRegular: boolean; notRegular: string[]; loads: number }[] = [
    { waitForRegular: true, notRegular: ["something else"], loads: 1 },
    { waitForRegular: false, notRegular: [], loads: 2 },
  ];
  for (const c of cases) {
    await t.step(`waitForRegular: ${c.waitForRegular}`, () =>
      withDir(async (dir) => {
        const { main, store, notRegular, reasons } = fixture(dir, c);
        await Deno.writeTextFile(main, "one");
        // Older than a clock tick's doubt (RACY_MS), so that the first look does not load again.
        await new Promise((resolve) => setTimeout(resolve, 150));
        await store.loadInitial();
        const controller = new AbortController();
        const watching = store.watch(controller.signal);
        try {
          // Swapped in one rename: every look sees the old file or the FIFO.
          await mkfifo(`${dir}/fifo`);
          await Deno.rename(`${dir}/fifo`, main);
          await waitFor(() => notRegular.length + reasons.length >= 2, { what: "the change" });
          // Several more looks: nothing more happens while the path stays a FIFO.
          await new Promise((resolve) => setTimeout(resolve, 100));
          deepStrictEqual(notRegular, c.notRegular);
          strictEqual(reasons.length, c.loads);
          strictEqual(store.value.text, "one", "the value in force stays");
          await Deno.remove(main);
          await Deno.writeTextFile(main, "back");
          await waitFor(() => store.value.text === "back", { what: "the file to load again" });
        } finally {
          controller.abort();
          await watching;
        }
      }));
  }
});

Deno.test("PolledStore.watch() loads a same-size rewrite made in the clock tick of the load", () =>
  withDir(async (dir) => {
    const { main, store } = fixture(dir, { waitForRegular: false });
    await Deno.writeTextFile(main, "one");
    await store.loadInitial();
    // At once: same inode, same size, and (often) the same coarse-clock change times as loaded.
    await Deno.writeTextFile(main, "two");
    const controller = new AbortController();
    const watching = store.watch(controller.signal);
    try {
      await waitFor(() => store.value.text === "two", { what: "the rewrite to load" });
    } finally {
      controller.abort();
      await watching;
    }
  }));
