/**
 * Hostile QMP monitors: a scripted peer answers each command with a valid reply carrying odd
 * numbers (negative, float, huge, strings), random JSON, an error, a wrong id, half a line or
 * garbage. Invariants: the scrape never throws, the body parses strictly (and, for a sample,
 * passes promtool), the VM's QMP outcome is "ok" with every value exact or exactly one error
 * reason with none of its QMP stats, and the rest of the scrape (a good monitor, debugfs) is
 * intact. The device groups (query-status, query-blockstats, query-balloon and the balloon's QOM
 * properties) come after the KVM stats in the same session: a group QEMU refuses, or a bad value
 * in one, costs only that group or value (counted in `kvm_exporter_qmp_problems`), even when the
 * KVM stats failed; a session that breaks adds nothing of the VM before the device groups, and
 * costs only the group being asked (and those after it) once they have begun.
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
  "query-status",
  "query-blockstats",
  "query-balloon",
  "qom-list",
  "qom-get:interval",
  "qom-get:guest-stats",
] as const;

type Command = (typeof COMMANDS)[number];

/** The commands of the KVM stats, in the order they are asked. */
const STATS_COMMANDS: readonly Command[] = COMMANDS.slice(1, 5);

interface Scenario {
  greeting: Step;
  steps: Step[];
  vm: { pages4k: OddValue; remoteTlbFlush: OddValue };
  vcpus: { exits: OddValue; haltWaitNs: OddValue }[];
  devices: { readBytes: OddValue; balloon: OddValue; freeMemory: OddValue };
}

/**
 * Half the scenarios carry only valid values and device steps that do not break the session, so
 * that successful sessions are checked often.
 */
const scenario: fc.Arbitrary<Scenario> = fc.record({
  greeting: step,
  steps: fc.array(step, { minLength: COMMANDS.length, maxLength: COMMANDS.length }),
  vm: fc.record({ pages4k: oddValue, remoteTlbFlush: oddValue }),
  vcpus: fc.array(fc.record({ exits: oddValue, haltWaitNs: oddValue }), {
    minLength: 1,
    maxLength: 3,
  }),
  devices: fc.record({ readBytes: oddValue, balloon: oddValue, freeMemory: oddValue }),
  clean: fc.boolean(),
}).map(({ clean, ...s }): Scenario => {
  if (!clean) return s;
  const fix = (v: OddValue): OddValue => v.value === undefined ? valid("7", 7n) : v;
  // The device commands of a clean scenario may be refused, never break the session: with 6
  // more steps, sessions that last would otherwise be rare.
  const calm = (st: Step, i: number): Step =>
    i > STATS_COMMANDS.length && !["ok", "event-then-ok", "error"].includes(st.kind)
      ? { kind: "ok" }
      : st;
  return {
    ...s,
    steps: s.steps.map(calm),
    vm: { pages4k: fix(s.vm.pages4k), remoteTlbFlush: fix(s.vm.remoteTlbFlush) },
    vcpus: s.vcpus.map((v) => ({ exits: fix(v.exits), haltWaitNs: fix(v.haltWaitNs) })),
    devices: {
      readBytes: fix(s.devices.readBytes),
      balloon: fix(s.devices.balloon),
      freeMemory: fix(s.devices.freeMemory),
    },
  };
});

const GREETING = '{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, ' +
  '"package": ""}, "capabilities": ["oob"]}}';

const qom = (i: number): string => `/machine/unattached/device[${i}]`;

/** The `return` payload of each command, as JSON text with the odd literals in place. */
function payloads(s: Scenario): Record<Command, string> {
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
    "query-status": '{"status": "running", "singlestep": false, "running": true}',
    "query-blockstats": `[{"device": "", "qdev": "/machine/peripheral/vd0/virtio-backend", ` +
      `"stats": {"rd_bytes": ${s.devices.readBytes.literal}, "wr_bytes": 1, ` +
      '"rd_operations": 1, "wr_operations": 1, "flush_operations": 1, "rd_total_time_ns": 1, ' +
      '"wr_total_time_ns": 1, "flush_total_time_ns": 1}}]',
    "query-balloon": `{"actual": ${s.devices.balloon.literal}}`,
    "qom-list": '[{"name": "balloon0", "type": "child<virtio-balloon-pci>"}]',
    "qom-get:interval": "2",
    "qom-get:guest-stats": `{"stats": {"stat-free-memory": ${s.devices.freeMemory.literal}}, ` +
      '"last-update": 1700000000}',
  };
}

/** The key of a command in {@linkcode COMMANDS}; query-stats comes twice, vm first. */
function commandKey(
  command: string,
  args: Record<string, unknown> | undefined,
): Command | "qom-list:anon" | undefined {
  if (command === "query-stats") {
    return args?.["target"] === "vm" ? "query-stats:vm" : "query-stats:vcpu";
  }
  if (command === "qom-list") {
    return args?.["path"] === "/machine/peripheral" ? "qom-list" : "qom-list:anon";
  }
  if (command === "qom-get") {
    return args?.["property"] === "guest-stats" ? "qom-get:guest-stats" : "qom-get:interval";
  }
  return COMMANDS.includes(command as Command) ? command as Command : undefined;
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

/** A device value as the device parsers take it: KVM stats take booleans as 0/1, they do not. */
function deviceValue(v: OddValue): bigint | undefined {
  return v.literal === "true" || v.literal === "false" ? undefined : v.value;
}

/**
 * What the exporter must report of the device groups: a group is `broken` when the session broke
 * while it was asked (it costs that group, not the KVM stats), and `not_asked` after that.
 */
type Lost = "broken" | "not_asked";
interface DeviceExpectation {
  /** The status group's outcome. */
  status: "ok" | "error_reply" | Lost;
  /** The block group's: ok (with the disk's read bytes, if valid), or refused. */
  block: "ok" | "error_reply" | Lost;
  /** The balloon's: ok, refused, or a bad actual. */
  balloon: "ok" | "error_reply" | "bad_reply" | Lost;
  /** Whether guest stats are there (polling asked and answered). */
  guest: boolean;
}

/** What the exporter must report: "ok" with exact values, "failed" with one of `reasons`, or "unknown". */
interface Expected {
  outcome: "ok" | "failed" | "unknown";
  reasons?: readonly string[];
  /** The device groups, where the session lasted to the end. */
  devices?: DeviceExpectation;
}

/** A step that breaks the session: the peer hangs up or sends what is not a reply to this. */
function breaks(step: Step): boolean {
  return !["ok", "event-then-ok", "error"].includes(step.kind);
}

/**
 * The reason of a step that breaks the session: the peer closing the connection, before or in
 * the middle of a message, is `closed`; anything else that is no reply is `protocol`.
 */
function brokenBy(step: Step): "closed" | "protocol" {
  return step.kind === "close" || step.kind === "truncated" ? "closed" : "protocol";
}

/** The device group a command belongs to. */
function groupOf(command: Command): "status" | "block" | "balloon" {
  return command === "query-status"
    ? "status"
    : command === "query-blockstats"
    ? "block"
    : "balloon";
}

/** What the device groups give, or "unknown". */
function expectedDevices(s: Scenario): DeviceExpectation | "unknown" {
  const stepOf = (command: Command): Step => s.steps[COMMANDS.indexOf(command)]!;
  const asked: Command[] = ["query-status", "query-blockstats", "query-balloon"];
  const balloon = stepOf("query-balloon");
  const balloonValid = balloon.kind !== "error" && deviceValue(s.devices.balloon) !== undefined;
  if (!breaks(balloon) && balloonValid) {
    asked.push("qom-list");
    if (stepOf("qom-list").kind !== "error") {
      asked.push("qom-get:interval");
      if (stepOf("qom-get:interval").kind !== "error") asked.push("qom-get:guest-stats");
    }
  }
  let broken: "status" | "block" | "balloon" | undefined;
  for (const command of asked) {
    const step = stepOf(command);
    if (step.kind === "random") return "unknown";
    if (breaks(step)) {
      broken = groupOf(command);
      break;
    }
  }
  const order = ["status", "block", "balloon"] as const;
  const lost = (group: (typeof order)[number]): Lost | undefined =>
    broken === undefined || order.indexOf(group) < order.indexOf(broken)
      ? undefined
      : group === broken
      ? "broken"
      : "not_asked";
  const failed = (command: Command): boolean =>
    asked.includes(command) && stepOf(command).kind === "error";
  return {
    status: lost("status") ?? (failed("query-status") ? "error_reply" : "ok"),
    block: lost("block") ?? (failed("query-blockstats") ? "error_reply" : "ok"),
    balloon: lost("balloon") ??
      (balloon.kind === "error" ? "error_reply" : balloonValid ? "ok" : "bad_reply"),
    guest: lost("balloon") === undefined && asked.includes("qom-get:guest-stats") &&
      !failed("qom-get:guest-stats"),
  };
}

function expectedOf(s: Scenario): Expected {
  if (s.greeting.kind !== "ok") {
    // The greeting comes first in QMP: an event before it is a protocol error.
    return s.greeting.kind === "random"
      ? { outcome: "unknown" }
      : failedWith([brokenBy(s.greeting)]);
  }
  const capabilities = s.steps[0]!;
  if (capabilities.kind === "random") return { outcome: "unknown" };
  if (capabilities.kind !== "ok" && capabilities.kind !== "event-then-ok") {
    return failedWith([capabilities.kind === "error" ? "protocol" : brokenBy(capabilities)]);
  }
  const values: Partial<Record<Command, OddValue[]>> = {
    "query-stats:vm": [s.vm.pages4k, s.vm.remoteTlbFlush],
    "query-stats:vcpu": s.vcpus.flatMap((v) => [v.exits, v.haltWaitNs]),
  };
  // The KVM stats: a refusal or a bad value fails them and the session goes on to the groups.
  let statsFailure: readonly string[] | undefined;
  for (const command of STATS_COMMANDS) {
    const step = s.steps[COMMANDS.indexOf(command)]!;
    if (step.kind === "random") return { outcome: "unknown" };
    if (breaks(step)) return failedWith([brokenBy(step)]);
    if (step.kind === "error") {
      statsFailure = ["protocol"];
      break;
    }
    if ((values[command] ?? []).some((v) => v.value === undefined)) {
      // A value that is not a u64 fails the parse of the reply.
      statsFailure = ["protocol", "other"];
      break;
    }
  }
  // A session that breaks in the device groups costs the group being asked, not the KVM stats.
  const devices = expectedDevices(s);
  if (devices === "unknown") return { outcome: "unknown" };
  return statsFailure === undefined
    ? { outcome: "ok", devices }
    : { outcome: "failed", reasons: statsFailure, devices };
}

function failedWith(reasons: readonly string[]): Expected {
  return { outcome: "failed", reasons };
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
  if (expected.outcome !== "unknown") checkDevices(value, { s, devices: expected.devices });
}

/** The device groups: exact where valid, each failure counted in its group, none when broken. */
function checkDevices(
  value: (name: string, labels: Record<string, string>) => string | undefined,
  expected: { s: Scenario; devices: DeviceExpectation | undefined },
): void {
  const { s, devices } = expected;
  const bad = { domain: "bad" };
  const problem = (group: string, reason: string) =>
    value("kvm_exporter_qmp_problems", { group, reason });
  const state = value("kvm_vm_state", { ...bad, state: "running" });
  const readBytes = value("kvm_vm_block_read_bytes_total", { ...bad, device: "vd0" });
  const balloon = value("kvm_vm_memory_balloon_bytes", bad);
  const free = value("kvm_vm_memory_unused_bytes", bad);
  if (devices === undefined) {
    // The session broke: nothing of the VM.
    assert.deepEqual([state, readBytes, balloon, free], [
      undefined,
      undefined,
      undefined,
      undefined,
    ]);
    return;
  }
  assert.equal(state, devices.status === "ok" ? "1" : undefined, "state");
  assert.equal(problem("status", "error_reply"), devices.status === "error_reply" ? "1" : "0");
  assert.equal(problem("block", "error_reply"), devices.block === "error_reply" ? "1" : "0");
  for (const group of ["status", "block", "balloon"] as const) {
    assert.equal(
      problem(group, "session_broken"),
      devices[group] === "broken" ? "1" : "0",
      `${group} broken`,
    );
  }
  if (devices.block !== "ok") assert.equal(readBytes, undefined, "no disk");
  if (devices.block === "ok") {
    const valid = deviceValue(s.devices.readBytes);
    assert.equal(readBytes, valid === undefined ? undefined : String(valid), "read bytes");
    assert.equal(problem("block", "bad_value"), valid === undefined ? "1" : "0");
    assert.equal(value("kvm_vm_block_write_bytes_total", { ...bad, device: "vd0" }), "1");
  }
  assert.equal(problem("balloon", "bad_reply"), devices.balloon === "bad_reply" ? "1" : "0");
  assert.equal(
    balloon,
    devices.balloon === "ok" ? String(deviceValue(s.devices.balloon)) : undefined,
    "balloon",
  );
  const freeValid = deviceValue(s.devices.freeMemory);
  const freeShown = devices.guest && freeValid !== undefined && freeValid !== 2n ** 64n - 1n;
  assert.equal(free, freeShown ? String(freeValid) : undefined, "guest free memory");
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
        const bad = startScriptedQmp(`${tmp}/bad.sock`, {
          greeting: render(s.greeting, GREETING, "null"),
          answer(command, id, args) {
            const key = commandKey(command, args);
            if (key === undefined) return undefined;
            if (key === "qom-list:anon") {
              return { text: `{"return": [], "id": ${id}}\r\n`, close: false };
            }
            const index = COMMANDS.indexOf(key);
            return render(s.steps[index]!, `{"return": ${lines[key]}, "id": ${id}}`, id);
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
