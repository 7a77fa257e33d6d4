/**
 * A scrape storm: `wrk` at 10× `--web.max-requests` connections against main.ts on a 100-VM
 * debugfs tree, twice for 10 s. Only 200 and 503 come back, no connection fails, `/-/healthy`
 * answers within a generous bound throughout, RSS after the first stays within a bound of before
 * and the second storm adds at most a small bound to it (no growth per storm).
 * Prints the numbers it measured.
 */

import assert from "node:assert/strict";
import { LOOPBACK_ANY_PORT, startExporter } from "../support/exporter_process.ts";
import { onPath } from "../support/tls.ts";

const VMS = 100;
const MAX_REQUESTS = 4;
const CONNECTIONS = 10 * MAX_REQUESTS;
const DURATION_S = 10;
/** Generous on a shared 2-core machine: health must never wait behind the storm for longer. */
const HEALTH_BOUND_MS = 5_000;
/** RSS after the storm may exceed RSS before by at most this. */
const RSS_GROWTH_BOUND = 300 * 1024 * 1024;
/** A second storm may add at most this to the RSS after the first. */
const RSS_PLATEAU_BOUND = 100 * 1024 * 1024;

const hasWrk = onPath("wrk");
if (!hasWrk) console.log("storm_test: skipped: wrk is not on PATH");

/** 100 VMs, 60 stats each and 4 vCPUs with 4 files each, like a busy hypervisor's debugfs. */
async function layOut(dir: string): Promise<void> {
  await Deno.mkdir(`${dir}/kvm`);
  const writes: Promise<void>[] = [];
  for (let s = 0; s < 60; s++) writes.push(Deno.writeTextFile(`${dir}/kvm/stat_${s}`, `${s}\n`));
  for (let v = 0; v < VMS; v++) {
    const vm = `${dir}/kvm/${20000 + v}-${v}`;
    await Deno.mkdir(vm, { recursive: true });
    for (let s = 0; s < 60; s++) writes.push(Deno.writeTextFile(`${vm}/stat_${s}`, `${v * s}\n`));
    for (let c = 0; c < 4; c++) {
      await Deno.mkdir(`${vm}/vcpu${c}`);
      for (const f of ["guest_mode", "lapic_timer_advance_ns", "pid", "tsc-offset"]) {
        writes.push(Deno.writeTextFile(`${vm}/vcpu${c}/${f}`, `${c}\n`));
      }
    }
  }
  await Promise.all(writes);
}

/** Counts statuses per wrk thread and prints them as one JSON line at the end. */
const WRK_SCRIPT = `
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) counts = {} end
function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    local c = t:get("counts")
    for status, n in pairs(c) do total[status] = (total[status] or 0) + n end
  end
  local parts = {}
  for status, n in pairs(total) do table.insert(parts, string.format('"%d":%d', status, n)) end
  io.write("STATUS {" .. table.concat(parts, ",") .. "}\\n")
  io.write(string.format("ERRORS connect=%d read=%d write=%d status=%d timeout=%d\\n",
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout))
  io.write(string.format("TOTAL %d\\n", summary.requests))
end
`;

/** What one wrk run and the health polls during it saw. */
interface StormResult {
  total: number;
  counts: Record<string, number>;
  errors: Record<string, number>;
  latencies: number[];
  healthStatuses: Set<number>;
}

/** Runs wrk for DURATION_S against `/metrics`, polling `/-/healthy` every 200 ms meanwhile. */
async function storm(baseUrl: string, script: string): Promise<StormResult> {
  const wrk = new Deno.Command("wrk", {
    args: [
      "-t2",
      `-c${CONNECTIONS}`,
      `-d${DURATION_S}s`,
      "--timeout",
      "10s",
      "-s",
      script,
      `${baseUrl}/metrics`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const latencies: number[] = [];
  const healthStatuses = new Set<number>();
  let over = false;
  void wrk.finally(() => over = true);
  while (!over) {
    const start = performance.now();
    const response = await fetch(`${baseUrl}/-/healthy`, {
      signal: AbortSignal.timeout(HEALTH_BOUND_MS * 4),
    });
    await response.body?.cancel();
    latencies.push(performance.now() - start);
    healthStatuses.add(response.status);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const output = await wrk;
  const text = new TextDecoder().decode(output.stdout);
  assert.ok(output.success, new TextDecoder().decode(output.stderr));
  return {
    total: Number(/^TOTAL (\d+)$/m.exec(text)![1]),
    counts: JSON.parse(/^STATUS (.*)$/m.exec(text)![1]!),
    errors: Object.fromEntries(
      [...(/^ERRORS (.*)$/m.exec(text)![1]!).matchAll(/(\w+)=(\d+)/g)].map((
        m,
      ) => [m[1], Number(m[2])]),
    ),
    latencies,
    healthStatuses,
  };
}

function rssBytes(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)![1]) * 1024;
}

Deno.test({
  name:
    "main.ts under a wrk storm at 10x --web.max-requests: only 200/503, health answers, RSS bounded",
  ignore: !hasWrk,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_storm_" });
    try {
      await layOut(dir);
      await Deno.writeTextFile(`${dir}/storm.lua`, WRK_SCRIPT);
      await using exporter = await startExporter([
        LOOPBACK_ANY_PORT,
        `--collector.kvmdebug.dir=${dir}/kvm`,
        `--path.procfs=${dir}/proc`,
        `--web.max-requests=${MAX_REQUESTS}`,
      ]);
      const warm = await fetch(`${exporter.baseUrl}/metrics`);
      assert.equal(warm.status, 200);
      const size = (await warm.text()).length;
      const rssBefore = rssBytes(exporter.pid);

      const first = await storm(exporter.baseUrl, `${dir}/storm.lua`);
      const rssFirst = rssBytes(exporter.pid);
      const second = await storm(exporter.baseUrl, `${dir}/storm.lua`);
      const rssSecond = rssBytes(exporter.pid);
      const mib = (n: number): string => `${(n / 2 ** 20).toFixed(0)} MiB`;
      for (const [i, run] of [first, second].entries()) {
        const sorted = [...run.latencies].sort((a, b) => a - b);
        console.log(
          `storm ${i + 1}: ${VMS} VMs (${size} bytes/scrape), ${CONNECTIONS} connections, ` +
            `${DURATION_S} s: ${run.total} requests, statuses ${JSON.stringify(run.counts)}, ` +
            `errors ${JSON.stringify(run.errors)}; /-/healthy ${sorted.length} polls, p95 ${
              sorted[Math.floor(sorted.length * 0.95)]!.toFixed(0)
            } ms, max ${sorted.at(-1)!.toFixed(0)} ms`,
        );
        assert.deepEqual(Object.keys(run.counts).filter((s) => s !== "200" && s !== "503"), []);
        assert.ok((run.counts["200"] ?? 0) > 0, "some scrapes served");
        assert.equal(run.errors.connect, 0);
        assert.equal(run.errors.read, 0);
        assert.equal(run.errors.write, 0);
        assert.deepEqual([...run.healthStatuses], [200], "health always 200");
        assert.ok(Math.max(...run.latencies) < HEALTH_BOUND_MS, "health within its bound");
      }
      console.log(
        `storm RSS: ${mib(rssBefore)} before, ${mib(rssFirst)} after one, ${
          mib(rssSecond)
        } after two`,
      );
      // V8 keeps the heap it grew for concurrent scrapes; what must not happen is growth per storm.
      assert.ok(rssFirst < rssBefore + RSS_GROWTH_BOUND, `RSS ${rssBefore} -> ${rssFirst}`);
      assert.ok(rssSecond < rssFirst + RSS_PLATEAU_BOUND, `RSS ${rssFirst} -> ${rssSecond}`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
