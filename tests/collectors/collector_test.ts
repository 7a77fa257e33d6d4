import assert from "node:assert/strict";
import {
  type Collector,
  type CollectorOutput,
  runCollectors,
  type ScrapeContext,
} from "../../src/collectors/collector.ts";
import { ReadErrorLog } from "../../src/collectors/read_errors.ts";
import { ConditionLog } from "../../src/log/condition_log.ts";
import { createLogger } from "../../src/log/logger.ts";
import { ReadGuard } from "../../src/system/read_guard.ts";
import { VmDirListings } from "../../src/discovery/vm_dir_listings.ts";
import { denoFileSystem } from "../../src/system/file_system.ts";

const GAUGE = { name: "x", help: "X.", type: "gauge" } as const;

function contextOf(signal: AbortSignal): Omit<ScrapeContext, "observed"> {
  return {
    discovery: { rootFiles: [], vms: [], error: undefined, cmdlineErrors: new Map() },
    signal,
    reads: new ReadGuard(),
    vmDirs: new VmDirListings(denoFileSystem),
  };
}

/** Adds one sample, then waits for the test to let it finish. */
function stuck(name: string, until: Promise<void>): Collector {
  return {
    name,
    async collect(_context: ScrapeContext, out: CollectorOutput): Promise<void> {
      out.families.add(GAUGE, [["from", name]], 1);
      await until;
    },
  };
}

Deno.test("runCollectors() reports a collector still running at the deadline and keeps its samples", async () => {
  let finish = (): void => {};
  const until = new Promise<void>((resolve) => finish = resolve);
  const deadline = new AbortController();
  const lines: string[] = [];
  const logger = createLogger({ write: (line) => lines.push(line) });
  const conditions = new ConditionLog(logger);
  const run = (signal: AbortSignal) =>
    runCollectors([stuck("late", until), { name: "quick", collect: async () => {} }], {
      context: contextOf(signal),
      logger,
      readErrorLog: new ReadErrorLog(logger),
      conditions,
    });
  const pending = run(deadline.signal);
  await new Promise((resolve) => setTimeout(resolve, 0)); // "quick" is done by then.
  deadline.abort();
  const { families, outcomes } = await pending;
  assert.deepEqual(outcomes.map((o) => [o.name, o.success, o.timedOut]), [
    ["late", false, true],
    ["quick", true, false],
  ]);
  assert.equal(families.find((f) => f.name === "x")?.samples.length, 1, "partial samples kept");
  finish();
  // The next scrape finishes: the condition's end is logged once.
  await run(new AbortController().signal);
  await run(new AbortController().signal);
  assert.equal(lines.filter((l) => l.includes("did not finish by the scrape deadline")).length, 1);
  assert.equal(lines.filter((l) => l.includes("Collector recovered")).length, 1);
});

Deno.test("runCollectors() logs a collector failing every scrape once, and its recovery once", async () => {
  let fail = true;
  const flaky: Collector = {
    name: "flaky",
    collect: () => fail ? Promise.reject(new Error("Cannot list /kvm")) : Promise.resolve(),
  };
  const lines: string[] = [];
  const logger = createLogger({ write: (line) => lines.push(line) });
  const conditions = new ConditionLog(logger);
  const once = () =>
    runCollectors([flaky], {
      context: contextOf(new AbortController().signal),
      logger,
      readErrorLog: new ReadErrorLog(logger),
      conditions,
    });
  for (let i = 0; i < 3; i++) await once();
  fail = false;
  for (let i = 0; i < 3; i++) await once();
  assert.deepEqual(lines.map((l) => /level=(\w+) msg=("[^"]*")/.exec(l)?.slice(1)), [
    ["error", '"Collector failed"'],
    ["info", '"Collector recovered"'],
  ]);
});

/** Observes a VM's vCPU count and outcome after `delayMs`. */
function observer(name: string, seen: { vcpus: number; delayMs: number }): Collector {
  return {
    name,
    async collect(_context: ScrapeContext, out: CollectorOutput): Promise<void> {
      await new Promise((resolve) => setTimeout(resolve, seen.delayMs));
      out.observations.observe("1-2", { vcpus: seen.vcpus, outcome: `${name} ok` });
    },
  };
}

Deno.test("runCollectors() merges observations in registry order, whoever finishes first", async () => {
  const logger = createLogger({ write: () => {} });
  const context = contextOf(new AbortController().signal);
  for (const [firstDelay, secondDelay] of [[0, 20], [20, 0]]) {
    const { observations } = await runCollectors([
      observer("first", { vcpus: 2, delayMs: firstDelay! }),
      observer("second", { vcpus: 4, delayMs: secondDelay! }),
    ], { context, logger, readErrorLog: new ReadErrorLog(logger) });
    const vm = observations.get("1-2");
    assert.equal(vm?.vcpus, 2, `first after ${firstDelay} ms, second after ${secondDelay} ms`);
    assert.deepEqual([...vm?.outcomes ?? []], [["first", "first ok"], ["second", "second ok"]]);
  }
});

Deno.test("runCollectors() gives a collector what the collectors it observes learned last scrape", async () => {
  const logger = createLogger({ write: () => {} });
  const context = contextOf(new AbortController().signal);
  const seenBy: (number | undefined)[] = [];
  const reader: Collector = {
    name: "reader",
    collect(scrape: ScrapeContext): Promise<void> {
      seenBy.push(scrape.observed.get("1-2")?.vcpus);
      return Promise.resolve();
    },
  };
  const collectors = [observer("source", { vcpus: 3, delayMs: 0 }), reader];
  const observes = new Map([["reader", ["source"]]]);
  const readErrorLog = new ReadErrorLog(logger);
  const first = await runCollectors(collectors, { context, logger, readErrorLog, observes });
  await runCollectors(collectors, {
    context,
    logger,
    readErrorLog,
    observes,
    last: first.byCollector,
  });
  await runCollectors(collectors, { context, logger, readErrorLog, last: first.byCollector });
  assert.deepEqual(seenBy, [undefined, 3, undefined], "last scrape's, and only when declared");
});
