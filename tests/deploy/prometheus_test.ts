/**
 * deploy/prometheus: the scrape config, rules and alerts pass promtool, and
 * the unit-test file covers every recording rule and every alert.
 *
 * @module
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import yaml from "js-yaml";
import { findPromtool, runPromtool } from "../support/promtool.ts";

const root = new URL("../../", import.meta.url).pathname;
const dir = `${root}deploy/prometheus`;

const PROMTOOL = findPromtool();
if (PROMTOOL === undefined) {
  console.log("prometheus_test: promtool checks skipped: promtool is not installed");
}

/** Runs promtool in `cwd`, where the files it checks are. */
function promtool(args: string[], cwd: string): Promise<{ code: number; out: string }> {
  return runPromtool(PROMTOOL!, { args, cwd });
}

interface RuleFile {
  groups: { name: string; rules: { record?: string; alert?: string; expr: string }[] }[];
}

interface RuleTestFile {
  tests: {
    promql_expr_test?: { expr: string }[];
    alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[];
  }[];
}

async function loadYaml<T>(path: string): Promise<T> {
  return yaml.load(await Deno.readTextFile(path)) as T;
}

Deno.test({
  name: "promtool check config passes deploy/prometheus/prometheus.yml with the example targets",
  ignore: PROMTOOL === undefined,
  async fn() {
    // The example targets file is not *.yml, so that a copy of the folder scrapes nothing made up;
    // check it as the user will use it.
    const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_prom_" });
    try {
      await Deno.mkdir(`${tmp}/targets`);
      for (const file of ["prometheus.yml", "kvm_exporter.rules.yml"]) {
        await Deno.copyFile(`${dir}/${file}`, `${tmp}/${file}`);
      }
      await Deno.copyFile(`${dir}/targets/kvm_hosts.yml.example`, `${tmp}/targets/kvm_hosts.yml`);
      const { code, out } = await promtool(["check", "config", "prometheus.yml"], tmp);
      strictEqual(code, 0, out);
      ok(out.includes("SUCCESS: 1 rule files found"), out);
      ok(!out.includes("WARNING"), out);
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

Deno.test("deploy/prometheus/targets/kvm_hosts.yml.example is a file_sd list of host:port", async () => {
  const groups = await loadYaml<{ targets: string[]; labels?: Record<string, string> }[]>(
    `${dir}/targets/kvm_hosts.yml.example`,
  );
  ok(Array.isArray(groups) && groups.length > 0);
  for (const group of groups) {
    deepStrictEqual(Object.keys(group).filter((k) => k !== "targets" && k !== "labels"), []);
    for (const target of group.targets) ok(/^[\w.-]+:\d+$/.test(target), target);
    for (const [name, value] of Object.entries(group.labels ?? {})) {
      ok(/^[a-zA-Z_]\w*$/.test(name) && !name.startsWith("__"), name);
      strictEqual(typeof value, "string");
    }
  }
});

Deno.test({
  name: "promtool check rules passes deploy/prometheus/kvm_exporter.rules.yml",
  ignore: PROMTOOL === undefined,
  async fn() {
    const { code, out } = await promtool(["check", "rules", "kvm_exporter.rules.yml"], dir);
    strictEqual(code, 0, out);
    ok(out.includes("SUCCESS"), out);
  },
});

Deno.test({
  name: "promtool test rules passes deploy/prometheus/kvm_exporter.rules.test.yml",
  ignore: PROMTOOL === undefined,
  async fn() {
    const { code, out } = await promtool(["test", "rules", "kvm_exporter.rules.test.yml"], dir);
    strictEqual(code, 0, out);
    ok(out.includes("SUCCESS"), out);
  },
});

Deno.test("kvm_exporter.rules.test.yml tests every recording rule, and every alert firing and not", async () => {
  const rules = await loadYaml<RuleFile>(`${dir}/kvm_exporter.rules.yml`);
  const tests = await loadYaml<RuleTestFile>(`${dir}/kvm_exporter.rules.test.yml`);
  const all = rules.groups.flatMap((g) => g.rules);
  const exprs = tests.tests.flatMap((t) => t.promql_expr_test ?? []).map((t) => t.expr);
  for (const record of all.flatMap((r) => r.record ?? [])) {
    ok(exprs.some((e) => new RegExp(`(^|[^\\w:])${record}([^\\w:]|$)`).test(e)), record);
  }
  const alertTests = tests.tests.flatMap((t) => t.alert_rule_test ?? []);
  for (const alert of all.flatMap((r) => r.alert ?? [])) {
    const mine = alertTests.filter((t) => t.alertname === alert);
    ok(mine.some((t) => t.exp_alerts.length > 0), `${alert} is tested firing`);
    ok(mine.some((t) => t.exp_alerts.length === 0), `${alert} is tested not firing`);
  }
});

Deno.test("every alert has a summary, a description, a severity and a for", async () => {
  const rules = await loadYaml<RuleFile>(`${dir}/kvm_exporter.rules.yml`);
  const alerts = rules.groups.flatMap((g) => g.rules).filter((r) => r.alert !== undefined) as {
    alert: string;
    for?: string;
    labels?: { severity?: string };
    annotations?: { summary?: string; description?: string };
  }[];
  ok(alerts.length >= 6, `${alerts.length} alerts`);
  for (const alert of alerts) {
    ok(/^\d+[mh]$/.test(alert.for ?? ""), `${alert.alert} for: ${alert.for}`);
    ok(["info", "warning", "critical"].includes(alert.labels?.severity ?? ""), alert.alert);
    ok((alert.annotations?.summary ?? "").length > 10, `${alert.alert} summary`);
    ok((alert.annotations?.description ?? "").length > 40, `${alert.alert} description`);
  }
});
