/**
 * kvm_stat counts each kind of unreadable stat file under the reason docs/metrics.md's table gives
 * ("When the kernel hides stats (lockdown)"), the same on the main thread and in reader Workers:
 * files listed as what they are (read through the non-blocking checked open), and vCPU stat files
 * swapped after their dir's listing was kept (a type checked only when the read is empty, full or
 * failed; on the main thread opened non-blocking, in a Worker through Deno's open).
 *
 * @module
 */

import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { READ_ERROR_REASONS } from "../../src/collectors/read_errors.ts";
import type { ReadErrorReason } from "../../src/system/file_system.ts";
import { copyTree, mkfifo } from "../support/fifo.ts";
import {
  fetchText,
  LOOPBACK_ANY_PORT,
  startExporter,
  treeArgs,
} from "../support/exporter_process.ts";
import { buildApp, seriesValue } from "../support/sample_exporter.ts";
import { REFUSED_STAT, refusedStatSkip } from "../support/refused_stat.ts";

const refusedSkip = refusedStatSkip();
if (refusedSkip !== undefined) {
  console.log(`kvm_stat_read_errors_test [EPERM rows]: skipped: ${refusedSkip}`);
}

/** What a made file leaves open (a unix socket's listener). */
interface Closer {
  close(): void;
}

/** Makes a file of one kind at a path; returns what to close afterwards. */
type Make = (path: string) => Promise<Closer | void>;

const unixSocket: Make = (path) => Promise.resolve(Deno.listen({ transport: "unix", path }));

interface Kind {
  name: string;
  make: Make;
  /** The reason it counts under; undefined when it is read (or, a directory, not a stat). */
  reason: ReadErrorReason | undefined;
  skip?: string | undefined;
}

/** A symlink to a device: not a regular file, however the listing showed it. */
function symlinkTo(device: string): Kind {
  return {
    name: `a symlink to ${device}`,
    make: (p) => Deno.symlink(device, p),
    reason: "not_regular",
  };
}

/** Files as the listing shows them. */
const LISTED: Kind[] = [
  { name: "a regular file", make: (p) => Deno.writeTextFile(p, "7\n"), reason: undefined },
  { name: "a FIFO", make: mkfifo, reason: "not_regular" },
  { name: "a unix socket", make: unixSocket, reason: "not_regular" },
  symlinkTo("/dev/zero"),
  symlinkTo("/dev/null"),
  { name: "a symlink to a directory", make: (p) => Deno.symlink("..", p), reason: "not_regular" },
  { name: "a symlink to a FIFO", make: symlinkToFifo, reason: "not_regular" },
  // Not a vCPU dir, so not a stat file: skipped as the listing shows it, never counted.
  { name: "a directory", make: (p) => Deno.mkdir(p), reason: undefined },
  { name: "a dangling symlink", make: (p) => Deno.symlink("gone", p), reason: "vanished" },
  {
    name: "a symlink to a stat the kernel refuses (EPERM)",
    make: (p) => Deno.symlink(REFUSED_STAT, p),
    reason: "permission",
    skip: refusedSkip,
  },
];

/** A symlink to a FIFO outside the debugfs tree (inside, the FIFO would be a stat file too). */
async function symlinkToFifo(path: string): Promise<void> {
  const fifo = path.replace("/kvm/", "/fifos/");
  await Deno.mkdir(fifo.slice(0, fifo.lastIndexOf("/")), { recursive: true });
  await mkfifo(fifo);
  await Deno.symlink(fifo, path);
}

/**
 * vCPU stat files swapped after the listing (kept for the VM's lifetime) showed them regular: a
 * FIFO or a device must not hold the read (a blocking open of a FIFO waits for a writer for good).
 * A reader Worker's open does wait on a FIFO (kvm_stat_readers_test: abandoned at the deadline),
 * so the FIFO row is the main thread's only.
 */
const SWAPPED: (Kind & { mainThreadOnly?: boolean })[] = [
  { name: "a regular file", make: (p) => Deno.writeTextFile(p, "-42\n"), reason: undefined },
  { name: "a FIFO", make: mkfifo, reason: "not_regular", mainThreadOnly: true },
  symlinkTo("/dev/zero"),
  symlinkTo("/dev/null"),
  { name: "a unix socket", make: unixSocket, reason: "not_regular" },
  { name: "a directory", make: (p) => Deno.mkdir(p), reason: "not_regular" },
  { name: "nothing (the VM exited)", make: () => Promise.resolve(), reason: "vanished" },
];

const MODES = [
  { name: "main thread", args: ["--collector.kvm_stat.readers=0"], readerMinFiles: undefined },
  { name: "reader Workers", args: ["--collector.kvm_stat.readers=2"], readerMinFiles: 0 },
] as const;

/** Each reason's count in a scrape. */
function reasons(text: string): Record<string, string | undefined> {
  return Object.fromEntries(
    READ_ERROR_REASONS.map((reason) => [
      reason,
      seriesValue(text, `kvm_exporter_stat_read_errors{collector="kvm_stat",reason="${reason}"}`),
    ]),
  );
}

function expected(reason: ReadErrorReason | undefined, count: number): Record<string, string> {
  return Object.fromEntries(
    READ_ERROR_REASONS.map((r) => [r, r === reason ? String(count) : "0"]),
  );
}

/** A scrape with a deadline: one that waited on a FIFO would show as success 0. */
async function scrape(app: Awaited<ReturnType<typeof buildApp>>["app"]): Promise<string> {
  const headers = { "X-Prometheus-Scrape-Timeout-Seconds": "10" };
  return await (await app.request("/metrics", { headers })).text();
}

/**
 * Runs `body` on a copy of the sample tree, read on the main thread or in Workers; removes the
 * copy and closes what `body` made even on failure.
 */
async function withTree(
  mode: (typeof MODES)[number],
  body: (t: { dir: string; app: Awaited<ReturnType<typeof buildApp>>["app"] }) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_read_errors_" });
  await copyTree(new URL("../fixtures/sample", import.meta.url).pathname, dir);
  const built = await buildApp([...treeArgs(dir), ...mode.args], {
    ...(mode.readerMinFiles === undefined ? {} : { readerMinFiles: mode.readerMinFiles }),
  });
  try {
    await body({ dir, app: built.app });
  } finally {
    built.exporter.close();
    await Deno.remove(dir, { recursive: true });
  }
}

const SUCCESS = 'kvm_scrape_collector_success{collector="kvm_stat"}';

for (const mode of MODES) {
  for (const kind of LISTED) {
    Deno.test({
      name: `kvm_stat (${mode.name}) counts ${kind.name} listed as a stat file as ${
        kind.reason ?? "no error"
      }`,
      ignore: kind.skip !== undefined,
      async fn() {
        await withTree(mode, async ({ dir, app }) => {
          const made: Closer[] = [];
          try {
            for (const at of ["kvm/10620-10", "kvm/10620-10/vcpu0"]) {
              const closer = await kind.make(`${dir}/${at}/hostile`);
              if (closer) made.push(closer);
            }
            const text = await scrape(app);
            strictEqual(seriesValue(text, SUCCESS), "1", "no read waited for the deadline");
            deepStrictEqual(reasons(text), expected(kind.reason, 2));
            if (kind.name === "a regular file") {
              strictEqual(seriesValue(text, 'kvm_stat_hostile_count{domain="target_vm"}'), "7");
            }
          } finally {
            for (const closer of made) closer.close();
          }
        });
      },
    });
  }

  for (const kind of SWAPPED.filter((k) => !k.mainThreadOnly || mode.args[0].endsWith("=0"))) {
    Deno.test(
      `kvm_stat (${mode.name}) counts a vCPU stat file swapped after listing for ${kind.name} as ${
        kind.reason ?? "no error"
      }`,
      async () => {
        await withTree(mode, async ({ dir, app }) => {
          const path = `${dir}/kvm/10620-10/vcpu0/tsc-offset`;
          const made: Closer[] = [];
          try {
            deepStrictEqual(reasons(await scrape(app)), expected(undefined, 0), "before the swap");
            await Deno.remove(path);
            const closer = await kind.make(path);
            if (closer) made.push(closer);
            const text = await scrape(app);
            strictEqual(seriesValue(text, SUCCESS), "1");
            deepStrictEqual(reasons(text), expected(kind.reason, 1));
            const series = 'kvm_stat_vcpu_tsc_offset_count{domain="target_vm",vcpu="0"}';
            strictEqual(seriesValue(text, series), kind.reason === undefined ? "-42" : undefined);
          } finally {
            for (const closer of made) closer.close();
          }
        });
      },
    );
  }
}

Deno.test("main.ts with only --allow-read on the tree counts a symlink to /dev/zero, a FIFO and a unix socket as not_regular, not permission, and is not held by a FIFO swapped into a vCPU dir", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_read_errors_main_" });
  const made: Closer[] = [];
  try {
    await copyTree(new URL("../fixtures/sample", import.meta.url).pathname, dir);
    const vm = `${dir}/kvm/10620-10`;
    await Deno.symlink("/dev/zero", `${vm}/to_dev_zero`);
    await mkfifo(`${vm}/fifo`);
    made.push(Deno.listen({ transport: "unix", path: `${vm}/socket` }));
    await using exporter = await startExporter([...treeArgs(dir), LOOPBACK_ANY_PORT], {
      permissions: [`--allow-read=${dir}`, "--allow-net=127.0.0.1"],
    });
    const headers = { "X-Prometheus-Scrape-Timeout-Seconds": "10" };
    const { body } = await fetchText(`${exporter.baseUrl}/metrics`, { headers });
    strictEqual(seriesValue(body, SUCCESS), "1", exporter.stderrText());
    deepStrictEqual(reasons(body), expected("not_regular", 3));
    // A FIFO swapped into a vCPU dir whose listing is kept: read on the main thread, it must not
    // hold the event loop (it did: every later request, /-/healthy too, waited for a writer).
    await Deno.remove(`${vm}/vcpu0/tsc-offset`);
    await mkfifo(`${vm}/vcpu0/tsc-offset`);
    const signal = AbortSignal.timeout(15_000); // Held, the exporter would never answer.
    const again = await fetchText(`${exporter.baseUrl}/metrics`, { headers, signal });
    strictEqual(seriesValue(again.body, SUCCESS), "1", exporter.stderrText());
    deepStrictEqual(reasons(again.body), expected("not_regular", 4));
    strictEqual((await fetchText(`${exporter.baseUrl}/-/healthy`, { signal })).status, 200);
  } finally {
    for (const closer of made) closer.close();
    await Deno.remove(dir, { recursive: true });
  }
});
