/**
 * Hostile QMP monitors: a scripted peer answers each command with a valid reply carrying odd
 * numbers (negative, float, huge, strings), random JSON, an error, a wrong id, half a line or
 * garbage. Invariants: the scrape never throws, the body parses strictly (and, for a sample,
 * passes promtool), the VM's QMP outcome is "ok" with every value exact or exactly one error
 * reason with none of its QMP stats, and the rest of the scrape (a good monitor, debugfs) is
 * intact.
 *
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { type ParsedFamily, parseExposition } from "../support/exposition_parser.ts";
import { startFakeQmp } from "../support/fake_qmp.ts";
import { propertyParams } from "../support/property.ts";
import { assertBodiesClean, findPromtool } from "../support/promtool.ts";
import { type ScriptedAnswer, startScriptedQmp } from "../support/scripted_qmp.ts";
import { buildApp, scrapeText } from "../support/sample_exporter.ts";

const U64_MAX = 2n ** 64n - 1n;

/** A JSON number (or other value) as sent, and the u64 it means, or undefined when invalid. */
interface OddValue {
  literal: string;
  value: bigint | undefined;
}

const valid = (literal: string, value: bigint): OddValue => ({ literal, value });
const invalid = (literal: string): OddValue => ({ literal, value: undefined });

const oddValue: fc.Arbitrary<OddValue> = fc.oneof(
  { arbitrary: fc.bigInt({ min: 0n, max: U64_MAX }).map((v) => valid(String(v), v)), weight: 6 },
  { arbitrary: fc.nat(1000).map((v) => valid(String(v), BigInt(v))), weight: 4 },
  {
    arbitrary: fc.constantFrom(
      valid("true", 1n),
      valid("false", 0n),
      valid("5.0", 5n),
      valid("-0", 0n),
      valid("1e3", 1000n),
      valid("1E2", 100n),
      valid("9007199254740993", 9007199254740993n),
      invalid("-1"),
      invalid("1.5"),
      invalid("1e400"),
      invalid("-1e400"),
      invalid("18446744073709551616"),
      invalid("1e20"),
      invalid('"12"'),
      invalid("null"),
      invalid("{}"),
      invalid("-9223372036854775808"),
    ),
    weight: 4,
  },
  {
    arbitrary: fc.bigInt({ min: -(2n ** 70n), max: -1n }).map((v) => invalid(String(v))),
    weight: 1,
  },
  {
    arbitrary: fc.bigInt({ min: U64_MAX + 1n, max: 2n ** 200n }).map((v) => invalid(String(v))),
    weight: 1,
  },
  {
    arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true })
      .filter((d) => !Number.isInteger(d))
      .map((d) => invalid(JSON.stringify(d))),
    weight: 1,
  },
);

/** How the peer answers one step. */
type Step =
  | { kind: "ok" }
  | { kind: "event-then-ok" }
  | { kind: "error" }
  | { kind: "wrong-id" }
  | { kind: "close" }
  | { kind: "truncated"; cut: number }
  | { kind: "garbage"; text: string }
  | { kind: "random"; json: string };

const step: fc.Arbitrary<Step> = fc.oneof(
  { arbitrary: fc.constant<Step>({ kind: "ok" }), weight: 40 },
  { arbitrary: fc.constant<Step>({ kind: "event-then-ok" }), weight: 2 },
  { arbitrary: fc.constant<Step>({ kind: "error" }), weight: 1 },
  { arbitrary: fc.constant<Step>({ kind: "wrong-id" }), weight: 1 },
  { arbitrary: fc.constant<Step>({ kind: "close" }), weight: 1 },
  { arbitrary: fc.nat().map((cut): Step => ({ kind: "truncated", cut })), weight: 1 },
  {
    // "}" first: never valid JSON.
    arbitrary: fc.string({ maxLength: 30 }).map((s): Step => ({
      kind: "garbage",
      text: `}${s.replace(/\n/g, " ")}`,
    })),
    weight: 1,
  },
  {
    arbitrary: fc.json({ maxDepth: 3 }).map((json): Step => ({ kind: "random", json })),
    weight: 2,
  },
);

const COMMANDS = [
  "qmp_capabilities",
  "query-stats-schemas",
  "query-stats:vm",
  "query-stats:vcpu",
  "query-cpus-fast",
] as const;

interface Scenario {
  greeting: Step;
  steps: Step[];
  vm: { pages4k: OddValue; remoteTlbFlush: OddValue };
  vcpus: { exits: OddValue; haltWaitNs: OddValue }[];
}

/** Half the scenarios carry only valid values, so that successful sessions are checked often. */
const scenario: fc.Arbitrary<Scenario> = fc.record({
  greeting: step,
  steps: fc.array(step, { minLength: COMMANDS.length, maxLength: COMMANDS.length }),
  vm: fc.record({ pages4k: oddValue, remoteTlbFlush: oddValue }),
  vcpus: fc.array(fc.record({ exits: oddValue, haltWaitNs: oddValue }), {
    minLength: 1,
    maxLength: 3,
  }),
  clean: fc.boolean(),
}).map(({ clean, ...s }): Scenario => {
  if (!clean) return s;
  const fix = (v: OddValue): OddValue => v.value === undefined ? valid("7", 7n) : v;
  return {
    ...s,
    vm: { pages4k: fix(s.vm.pages4k), remoteTlbFlush: fix(s.vm.remoteTlbFlush) },
    vcpus: s.vcpus.map((v) => ({ exits: fix(v.exits), haltWaitNs: fix(v.haltWaitNs) })),
  };
});

const GREETING = '{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, ' +
  '"package": ""}, "capabilities": ["oob"]}}';

const qom = (i: number): string => `/machine/unattached/device[${i}]`;

/** The `return` payload of each command, as JSON text with the odd literals in place. */
function payloads(s: Scenario): Record<(typeof COMMANDS)[number], string> {
  const stat = (name: string, v: OddValue): string => `{"name": "${name}", "value": ${v.literal}}`;
  return {
    "qmp_capabilities": "{}",
    "query-stats-schemas": JSON.stringify([
      {
        provider: "kvm",
        target: "vm",
        stats: [
          { name: "pages_4k", type: "instant", exponent: 0 },
          { name: "remote_tlb_flush", type: "cumulative", exponent: 0 },
        ],
      },
      {
        provider: "kvm",
        target: "vcpu",
        stats: [
          { name: "exits", type: "cumulative", exponent: 0 },
          { name: "halt_wait_ns", type: "cumulative", unit: "seconds", base: 10, exponent: -9 },
        ],
      },
    ]),
    "query-stats:vm": `[{"provider": "kvm", "stats": [${stat("pages_4k", s.vm.pages4k)}, ${
      stat("remote_tlb_flush", s.vm.remoteTlbFlush)
    }]}]`,
    "query-stats:vcpu": `[${
      s.vcpus.map((v, i) =>
        `{"provider": "kvm", "qom-path": "${qom(i)}", "stats": [${stat("exits", v.exits)}, ${
          stat("halt_wait_ns", v.haltWaitNs)
        }]}`
      ).join(", ")
    }]`,
    "query-cpus-fast": JSON.stringify(
      s.vcpus.map((_, i) => ({
        "cpu-index": i,
        "qom-path": qom(i),
        "thread-id": 5000 + i,
        target: "x86_64",
      })),
    ),
  };
}

/** The raw answer of a step, given the valid line it stands for. */
function render(step: Step, line: string, id: string): ScriptedAnswer {
  switch (step.kind) {
    case "ok":
      return { text: `${line}\r\n`, close: false };
    case "event-then-ok":
      return {
        text: `{"event": "RESUME", "timestamp": {"seconds": 1, "microseconds": 2}}\r\n${line}\r\n`,
        close: false,
      };
    case "error":
      return {
        text: `{"error": {"class": "GenericError", "desc": "no"}, "id": ${id}}\r\n`,
        close: false,
      };
    case "wrong-id":
      return { text: `{"return": {}, "id": "not-${id.replace(/"/g, "")}"}\r\n`, close: true };
    case "close":
      return { text: "", close: true };
    case "truncated":
      return { text: line.slice(0, 1 + (step.cut % (line.length - 1))), close: true };
    case "garbage":
      return { text: `${step.text}\r\n`, close: true };
    case "random":
      return { text: `${step.json}\r\n`, close: true };
  }
}

/** What the exporter must report: "ok" with exact values, "failed" with one of `reasons`, or "unknown". */
interface Expected {
  outcome: "ok" | "failed" | "unknown";
  reasons?: readonly string[];
}

function expectedOf(s: Scenario): Expected {
  const steps = [s.greeting, ...s.steps];
  const values: Record<string, OddValue[]> = {
    "query-stats:vm": [s.vm.pages4k, s.vm.remoteTlbFlush],
    "query-stats:vcpu": s.vcpus.flatMap((v) => [v.exits, v.haltWaitNs]),
  };
  for (const [i, st] of steps.entries()) {
    if (st.kind === "random") return { outcome: "unknown" };
    // The peer closing the connection, before or in the middle of a message, is `closed`.
    if (st.kind === "close" || st.kind === "truncated") {
      return { outcome: "failed", reasons: ["closed"] };
    }
    // The greeting comes first in QMP: an event before it is a protocol error.
    if (st.kind !== "ok" && (st.kind !== "event-then-ok" || i === 0)) {
      return { outcome: "failed", reasons: ["protocol"] };
    }
    const command = i === 0 ? "greeting" : COMMANDS[i - 1]!;
    if ((values[command] ?? []).some((v) => v.value === undefined)) {
      // A value that is not a u64 fails the parse of the reply.
      return { outcome: "failed", reasons: ["protocol", "other"] };
    }
  }
  return { outcome: "ok" };
}

function sampleValue(
  families: ParsedFamily[],
  name: string,
  labels: Record<string, string>,
): string | undefined {
  const wanted = JSON.stringify(Object.entries(labels).sort());
  return families.find((f) => f.name === name)?.samples.find((s) =>
    JSON.stringify([...s.labels].sort()) === wanted
  )?.valueText;
}

function checkScrape(body: string, s: Scenario): void {
  const families = parseExposition(body);
  const value = (name: string, labels: Record<string, string>) =>
    sampleValue(families, name, labels);
  // The rest of the scrape is intact.
  assert.equal(value("kvm_scrape_collector_success", { collector: "qmp" }), "1");
  assert.equal(
    value("kvm_stat_vcpu_exits_count", { domain: "good", vcpu: "1" }) !== undefined,
    true,
  );
  for (const domain of ["good", "bad"]) {
    assert.equal(value("kvm_stat_pages_4k_count", { domain }), "100", `debugfs of ${domain}`);
  }
  const reasons = ["timeout", "refused", "closed", "protocol", "other"];
  const goodErrors = reasons.map((reason) =>
    value("kvm_exporter_qmp_errors", { domain: "good", reason })
  );
  assert.deepEqual(goodErrors, reasons.map(() => "0"), "the good monitor is unaffected");
  const badErrors = reasons.map((reason) =>
    value("kvm_exporter_qmp_errors", { domain: "bad", reason })
  );
  const failed = reasons.filter((_, i) => badErrors[i] === "1");
  assert.ok(badErrors.every((v) => v === "0" || v === "1"), `bad errors ${badErrors}`);
  assert.ok(failed.length <= 1, `at most one reason: ${failed}`);
  const expected = expectedOf(s);
  if (expected.outcome === "ok") {
    assert.deepEqual(failed, [], "a valid session succeeds");
    s.vcpus.forEach((v, i) => {
      assert.equal(
        value("kvm_stat_vcpu_exits_count", { domain: "bad", vcpu: String(i) }),
        String(v.exits.value),
      );
    });
    const sum = s.vcpus.reduce((a, v) => a + v.exits.value!, 0n);
    assert.equal(value("kvm_stat_exits_count", { domain: "bad" }), String(sum));
    assert.equal(
      value("kvm_stat_remote_tlb_flush_count", { domain: "bad" }),
      String(s.vm.remoteTlbFlush.value),
    );
  }
  if (expected.outcome === "failed") {
    assert.equal(failed.length, 1, "a failed session has its reason");
    assert.ok(expected.reasons!.includes(failed[0]!), `reason ${failed[0]}`);
  }
  if (failed.length === 1) {
    // All or nothing: a failed session adds none of its stats.
    assert.equal(value("kvm_stat_remote_tlb_flush_count", { domain: "bad" }), undefined);
    assert.equal(value("kvm_stat_vcpu_exits_count", { domain: "bad", vcpu: "0" }), undefined);
  }
}

async function layOut(tmp: string): Promise<string[]> {
  const kvm = `${tmp}/kvm`;
  for (const dir of ["1001-1", "1002-1"]) {
    await Deno.mkdir(`${kvm}/${dir}`, { recursive: true });
    await Deno.writeTextFile(`${kvm}/${dir}/pages_4k`, "100\n");
  }
  await Deno.writeTextFile(
    `${tmp}/vm.yaml`,
    `vm_infos:
  good: {kvm_debug_dir: "1001-1", qmp_socket: "${tmp}/good.sock"}
  bad: {kvm_debug_dir: "1002-1", qmp_socket: "${tmp}/bad.sock"}
`,
  );
  return [
    `--collector.kvmdebug.dir=${kvm}`,
    `--collector.vmmap.path=${tmp}/vm.yaml`,
    `--path.procfs=${tmp}/proc`,
    "--collector.qmp",
    // Generous: no scripted failure waits for it, and a loaded box must not turn "ok" into a
    // timeout.
    "--collector.qmp.timeout=10s",
  ];
}

const promtool = findPromtool();

Deno.test("qmp collector with a random hostile monitor: one outcome, exact values, rest intact", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_hostile_qmp_" });
  const good = startFakeQmp(`${tmp}/good.sock`, { behaviour: "qemu" });
  const args = await layOut(tmp);
  const bodies: string[] = [];
  const outcomes = { ok: 0, failed: 0, unknown: 0 };
  try {
    await fc.assert(
      fc.asyncProperty(scenario, async (s) => {
        const lines = payloads(s);
        let seenStats = 0;
        const bad = startScriptedQmp(`${tmp}/bad.sock`, {
          greeting: render(s.greeting, GREETING, "null"),
          answer(command, id) {
            const key = command === "query-stats" ? undefined : command;
            // query-stats comes twice: vm first, then vcpu.
            const index = key === undefined
              ? (seenStats++ === 0 ? 2 : 3)
              : COMMANDS.indexOf(key as (typeof COMMANDS)[number]);
            if (index < 0) return undefined;
            const payload = lines[COMMANDS[index]!];
            return render(s.steps[index]!, `{"return": ${payload}, "id": ${id}}`, id);
          },
        });
        try {
          const { app } = await buildApp(args);
          const body = await scrapeText(app);
          checkScrape(body, s);
          outcomes[expectedOf(s).outcome]++;
          bodies.push(body);
        } finally {
          await bad.close();
          await Deno.remove(`${tmp}/bad.sock`).catch(() => {});
        }
      }),
      propertyParams(60),
    );
    console.log(`outcomes: ${JSON.stringify(outcomes)}`);
    assert.ok(outcomes.ok > 0 && outcomes.failed > 0, "both outcomes were exercised");
    if (promtool !== undefined) {
      await assertBodiesClean(promtool, bodies, 15);
    }
  } finally {
    await good.close();
    await Deno.remove(tmp, { recursive: true });
  }
});
