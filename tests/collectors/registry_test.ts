/**
 * Adding a collector is one module and one registry line: a collector
 * declared here, added to a copy of the registry, gets its switch and flags
 * in `--help`, reads its environment variables, and shows in a scrape.
 *
 * @module
 */

import assert from "node:assert/strict";
import { flag, FlagError } from "../../src/cli/flag.ts";
import { helpText, parseFlags } from "../../src/cli/flags.ts";
import { declareCollector } from "../../src/collectors/collector_declaration.ts";
import { COLLECTORS } from "../../src/collectors/registry.ts";
import { buildApp, fixtureArgs } from "../support/sample_exporter.ts";

/** A collector that reports one gauge per VM, labelled with its flag's value. */
const CANARY = declareCollector({
  name: "canary",
  defaultEnabled: false,
  flags: {
    greeting: flag({
      name: "collector.canary.greeting",
      type: "string",
      default: "hello",
      help: "What the canary says",
    }),
    repeats: flag({ name: "collector.canary.repeats", type: "int", default: 1, help: "How often" }),
  },
  create: ({ greeting, repeats }) => ({
    name: "canary",
    collect(context, out) {
      for (const vm of context.discovery.vms) {
        out.families.add(
          { name: "kvm_canary_greeting", help: "The canary's greeting.", type: "gauge" },
          [["domain", vm.domain], ["greeting", greeting.repeat(repeats)]],
          1,
        );
        out.observations.observe(vm.dir, { vcpus: 99 });
      }
      return Promise.resolve();
    },
  }),
});

/** The exporter's registry and one line more. */
const REGISTRY = [...COLLECTORS, CANARY];

Deno.test("helpText() lists a registered collector's switch and flags, with generated help", () => {
  const lines = helpText(REGISTRY).split("\n");
  const line = (flagText: string): string | undefined =>
    lines.find((l) => l.trimStart().startsWith(flagText));
  assert.match(
    line("--collector.canary ")!,
    /Enable the canary collector \(default: disabled\)\.$/,
  );
  assert.match(
    line("--collector.canary.greeting string")!,
    /What the canary says \(default "hello"\)/,
  );
  assert.match(line("--collector.canary.repeats int")!, /How often \(default 1\)/);
  assert.equal(helpText().includes("canary"), false, "not in the exporter's own help");
});

Deno.test("parseFlags() reads a registered collector's flags from the environment", () => {
  const env: Record<string, string> = {
    KVM_EXPORTER_COLLECTOR_CANARY: "true",
    KVM_EXPORTER_COLLECTOR_CANARY_GREETING: "hi",
    KVM_EXPORTER_COLLECTOR_CANARY_REPEATS: "2",
  };
  const command = parseFlags([], (name) => env[name], REGISTRY);
  assert.ok(command.kind === "run");
  const canary = command.options.collectors.find((c) => c.name === "canary");
  assert.deepEqual({ enabled: canary?.enabled, values: canary?.values }, {
    enabled: true,
    values: { greeting: "hi", repeats: 2 },
  });
  assert.throws(
    () =>
      parseFlags(
        [],
        (name) => ({ ...env, KVM_EXPORTER_COLLECTOR_CANARY_REPEATS: "two" })[name],
        REGISTRY,
      ),
    (e: unknown) =>
      e instanceof FlagError &&
      e.message.includes("environment variable KVM_EXPORTER_COLLECTOR_CANARY_REPEATS"),
  );
  assert.throws(() => parseFlags(["--collector.canary"], () => undefined), FlagError);
});

Deno.test("createExporter() runs a registered collector: its output is in the scrape, last in order", async () => {
  const { app, exporter } = await buildApp(
    [...fixtureArgs("sample"), "--collector.canary.repeats=3"],
    { registry: REGISTRY, env: { KVM_EXPORTER_COLLECTOR_CANARY: "1" } },
  );
  const text = await (await app.request("/metrics")).text();
  assert.match(text, /^kvm_canary_greeting\{domain="[^"]+",greeting="hellohellohello"\} 1$/m);
  assert.match(text, /^kvm_scrape_collector_success\{collector="canary"\} 1$/m);
  const report = exporter.lastScrape!;
  assert.deepEqual(report.collectors.map((c) => c.name), [
    "kvm_stat",
    "vcpu_time",
    "tap",
    "vm_process",
    "canary",
  ]);
  // kvm_stat comes first in the registry: its vCPU count wins over the canary's 99.
  const counts = [...report.observations.values()].map((o) => o.vcpus);
  assert.ok(counts.length > 0 && counts.every((n) => n !== 99), `${counts}`);
});
