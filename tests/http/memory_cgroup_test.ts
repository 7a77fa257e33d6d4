/**
 * main.ts in a memory cgroup at the shipped DaemonSet's `limits.memory`, on a 100-VM x 16-vCPU
 * debugfs tree with 4 reader Workers (what the default gives a node of 4 cores or more), under 2,
 * 10 and 40 concurrent scrapers, then 100 clients that never read their answers, then 2 scrapers
 * back to back: the process is never OOM-killed and every scrape that completes is whole.
 * Uses the memory cgroup v1 hierarchy or a cgroup v2 one with the memory controller, whichever
 * is writable; skips, saying why, where neither is. Prints peak RSS per phase. Run it under
 * `flock /tmp/realvm.lock` on a shared machine.
 */

import assert from "node:assert/strict";
import yaml from "js-yaml";
import {
  type ExporterProcess,
  LOOPBACK_ANY_PORT,
  REPO_ROOT,
  startExporter,
  treeArgs,
  waitFor,
} from "../support/exporter_process.ts";
import { openNonReaders, peakRssMb, runScrapers } from "../support/scrape_load.ts";
import { countStatFiles, parseShape, planTree, writeTree } from "../../bench/debugfs_tree.ts";

const SHAPE = "100x16";
const ROUNDS = 2;
/** Scrapes in a row of the last phase: long enough for V8 to grow its heap towards its plateau. */
const BACK_TO_BACK = 30;
const NON_READERS = 100;
/** The most reader Workers the default gives (one per core, at most 4): a large node's count. */
const READERS = 4;

/** A memory cgroup made for one test: where to put a process, its limit, and its OOM kills. */
interface MemoryCgroup {
  dir: string;
  version: 1 | 2;
}

/** `limits.memory` of deploy/kubernetes/daemonset.yaml, in bytes. */
async function daemonSetLimitBytes(): Promise<number> {
  const text = await Deno.readTextFile(`${REPO_ROOT}/deploy/kubernetes/daemonset.yaml`);
  // deno-lint-ignore no-explicit-any
  const ds = yaml.load(text) as any;
  const memory: string = ds.spec.template.spec.containers[0].resources.limits.memory;
  const match = /^(\d+)(Mi|Gi)$/.exec(memory);
  assert.ok(match, `limits.memory ${memory}: expected NNNMi or NNNGi`);
  return Number(match[1]) * (match[2] === "Gi" ? 2 ** 30 : 2 ** 20);
}

/** The cgroup v2 mount points whose root delegates the memory controller. */
async function cgroup2Roots(): Promise<string[]> {
  const mounts = await Deno.readTextFile("/proc/mounts");
  const roots: string[] = [];
  for (const line of mounts.split("\n")) {
    const [, path, type] = line.split(" ");
    if (type !== "cgroup2" || path === undefined) continue;
    try {
      const control = await Deno.readTextFile(`${path}/cgroup.subtree_control`);
      if (control.split(/\s+/).includes("memory")) roots.push(path);
    } catch {
      // Not readable: not usable either.
    }
  }
  return roots;
}

/** Makes a cgroup with `limitBytes`, or says why none can be made. */
async function makeCgroup(limitBytes: number): Promise<MemoryCgroup | string> {
  const name = `kvm_exporter_memory_test_${Deno.pid}`;
  const candidates: [string, 1 | 2][] = [
    ["/sys/fs/cgroup/memory", 1],
    ...(await cgroup2Roots()).map((root): [string, 1 | 2] => [root, 2]),
  ];
  const why: string[] = [];
  for (const [root, version] of candidates) {
    const dir = `${root}/${name}`;
    try {
      await Deno.mkdir(dir);
    } catch (error) {
      why.push(`${root}: ${(error as Error).message}`);
      continue;
    }
    try {
      const file = version === 1 ? "memory.limit_in_bytes" : "memory.max";
      await Deno.writeTextFile(`${dir}/${file}`, `${limitBytes}\n`);
      if (version === 2) await Deno.writeTextFile(`${dir}/memory.swap.max`, "0\n").catch(() => {});
      return { dir, version };
    } catch (error) {
      why.push(`${dir}: ${(error as Error).message}`);
      await Deno.remove(dir).catch(() => {});
    }
  }
  return why.length === 0 ? "no memory cgroup v1 or v2 hierarchy" : why.join("; ");
}

/** OOM kills in the cgroup so far. */
async function oomKills(cgroup: MemoryCgroup): Promise<number> {
  const file = cgroup.version === 1 ? "memory.oom_control" : "memory.events";
  const text = await Deno.readTextFile(`${cgroup.dir}/${file}`);
  return Number(/^oom_kill (\d+)$/m.exec(text)?.[1] ?? 0);
}

/** Peak memory the cgroup was charged, where the hierarchy records it. */
async function cgroupPeakMb(cgroup: MemoryCgroup): Promise<number> {
  const file = cgroup.version === 1 ? "memory.max_usage_in_bytes" : "memory.peak";
  try {
    return Number(await Deno.readTextFile(`${cgroup.dir}/${file}`)) / 2 ** 20;
  } catch {
    return NaN;
  }
}

async function removeCgroup(cgroup: MemoryCgroup): Promise<void> {
  // The killed process leaves the cgroup as it is reaped; rmdir fails until then.
  await waitFor(async () => {
    await Deno.remove(cgroup.dir);
    return true;
  }, { timeoutMs: 10_000, what: `rmdir ${cgroup.dir}` });
}

const limitBytes = await daemonSetLimitBytes();
const cgroup = Deno.build.os === "linux" ? await makeCgroup(limitBytes) : "not Linux";
if (typeof cgroup === "string") console.log(`memory_cgroup_test: skipped: ${cgroup}`);
else await Deno.remove(cgroup.dir); // Made again by the test, which cleans up after itself.

Deno.test({
  name:
    `main.ts in a memory cgroup at the DaemonSet's limit survives concurrent scrapes of ${SHAPE}`,
  ignore: typeof cgroup === "string",
  async fn() {
    const made = await makeCgroup(limitBytes);
    assert.ok(typeof made !== "string", made as string);
    const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_cgroup_" });
    let exporter: ExporterProcess | undefined;
    try {
      await writeTree(dir, planTree(parseShape(SHAPE)));
      const args = [...treeArgs(dir), `--collector.kvm_stat.readers=${READERS}`, LOOPBACK_ANY_PORT];
      exporter = await startExporter(args, {
        // Joins the cgroup, then becomes deno: the pid is the exporter's.
        prefix: ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', made.dir],
        startTimeoutMs: 60_000,
      });
      const pid = exporter.pid;
      const baseUrl = exporter.baseUrl;
      const minSamples = countStatFiles(parseShape(SHAPE));
      const lines: string[] = [];
      const phase = async (label: string, scrapers: number, rounds = ROUNDS): Promise<void> => {
        const result = await runScrapers({ baseUrl, scrapers, rounds, minSamples });
        const kills = await oomKills(made);
        assert.equal(kills, 0, `${label}: OOM-killed; scrapes: ${JSON.stringify(result)}`);
        lines.push(
          `${label}: ${result.whole} whole, ${result.refused} refused, peak RSS ${
            peakRssMb(pid).toFixed(0)
          } MiB, cgroup peak ${(await cgroupPeakMb(made)).toFixed(0)} MiB`,
        );
        assert.deepEqual(result.failures, [], label);
        assert.equal(result.whole, scrapers * rounds, label);
      };
      for (const scrapers of [2, 10, 40]) await phase(`${scrapers} scrapers`, scrapers);
      const nonReaders = await openNonReaders(exporter.port, NON_READERS);
      try {
        await phase(`${NON_READERS} non-readers + 2 scrapers`, 2);
      } finally {
        nonReaders.close();
      }
      await phase(`2 scrapers, ${BACK_TO_BACK} scrapes back to back`, 2, BACK_TO_BACK);
      console.log(
        `cgroup v${made.version}, limit ${limitBytes / 2 ** 20} MiB, ${SHAPE}:\n  ${
          lines.join("\n  ")
        }`,
      );
      const status = await exporter.stop("SIGTERM");
      assert.equal(status.code, 0, "alive until SIGTERM, then a clean exit");
      assert.equal(await oomKills(made), 0, "OOM kills");
    } finally {
      await exporter?.[Symbol.asyncDispose]();
      await removeCgroup(made);
      await Deno.remove(dir, { recursive: true });
    }
  },
});
