/**
 * The Grafana dashboard and the Prometheus rules use only metric names the
 * exporter emits with `--metrics.naming=prometheus`, and the dashboard is a
 * well-formed, importable one whose PromQL promtool accepts.
 *
 * @module
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import yaml from "js-yaml";
import { type ExporterProcess, startExporter, waitFor } from "../support/exporter_process.ts";
import { startFakeQmp } from "../support/fake_qmp.ts";
import { prometheusPath, startPrometheus } from "../support/prometheus.ts";
import { metricNames, variableMetricNames } from "../support/promql_names.ts";
import { findPromtool, runPromtool } from "../support/promtool.ts";
import { whyNoData } from "../support/guest_reported_families.ts";

const root = new URL("../../", import.meta.url).pathname;
const DASHBOARD = `${root}deploy/grafana/kvm_exporter.json`;
const RULES = `${root}deploy/prometheus/kvm_exporter.rules.yml`;

/** Names Prometheus makes itself, not the exporter. */
const PROMETHEUS_OWN = new Set(["up"]);

/**
 * Every exporter metric name the shipped files use (also in docs/alerts.md). A change here is a
 * change users' dashboards and alerts see.
 */
const SHIPPED_NAMES = [
  "kvm_exporter_build_info",
  "kvm_exporter_config_last_reload_successful",
  "kvm_exporter_kernel_lockdown",
  "kvm_exporter_qmp_errors",
  "kvm_exporter_stat_read_errors",
  "kvm_scrape_collector_duration_seconds",
  "kvm_scrape_collector_success",
  "kvm_vcpu_exits_total",
  "kvm_vcpu_guest_mode",
  "kvm_vcpu_halt_wait_seconds_bucket",
  "kvm_vcpu_halt_wait_seconds_count",
  "kvm_vcpu_halt_wait_seconds_sum",
  "kvm_vcpu_halt_wait_seconds_total",
  "kvm_vcpu_info",
  "kvm_vcpu_lapic_timer_advance_seconds",
  "kvm_vm_block_errors_total",
  "kvm_vm_block_read_bytes_total",
  "kvm_vm_block_read_requests_total",
  "kvm_vm_block_write_bytes_total",
  "kvm_vm_block_write_requests_total",
  "kvm_vm_cpu_seconds_total",
  "kvm_vm_exits_total",
  "kvm_vm_halt_attempted_poll_total",
  "kvm_vm_halt_exits_total",
  "kvm_vm_halt_successful_poll_total",
  "kvm_vm_halt_wait_seconds_total",
  "kvm_vm_halt_wakeup_total",
  "kvm_vm_info",
  "kvm_vm_io_exits_total",
  "kvm_vm_irq_exits_total",
  "kvm_vm_memory_available_bytes",
  "kvm_vm_memory_balloon_bytes",
  "kvm_vm_memory_resident_bytes",
  "kvm_vm_memory_stats_update_timestamp_seconds",
  "kvm_vm_memory_usable_bytes",
  "kvm_vm_mmio_exits_total",
  "kvm_vm_network_receive_bytes_total",
  "kvm_vm_network_receive_drops_total",
  "kvm_vm_network_receive_errors_total",
  "kvm_vm_network_receive_packets_total",
  "kvm_vm_network_transmit_bytes_total",
  "kvm_vm_network_transmit_drops_total",
  "kvm_vm_network_transmit_errors_total",
  "kvm_vm_network_transmit_packets_total",
  "kvm_vm_pages_1g",
  "kvm_vm_pages_2m",
  "kvm_vm_pages_4k",
  "kvm_vm_pf_fixed_total",
  "kvm_vm_pf_guest_total",
  "kvm_vm_process_io_read_bytes_total",
  "kvm_vm_process_io_write_bytes_total",
  "kvm_vm_remote_tlb_flush_total",
  "kvm_vm_signal_exits_total",
  "kvm_vm_state",
  "kvm_vm_state_reason",
  "kvm_vm_tlb_flush_total",
  "process_resident_memory_bytes",
];

interface Target {
  expr?: string;
  datasource?: { type?: string; uid?: string };
}

interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  panels?: Panel[];
}

interface Dashboard {
  schemaVersion: number;
  uid: string;
  panels: Panel[];
  templating: {
    list: {
      name: string;
      type: string;
      query: string | { query: string };
      includeAll?: boolean;
      allValue?: string;
    }[];
  };
}

async function loadDashboard(): Promise<Dashboard> {
  return JSON.parse(await Deno.readTextFile(DASHBOARD)) as Dashboard;
}

function allPanels(panels: Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

/** Every PromQL expression of the dashboard's panels. */
function dashboardExprs(dashboard: Dashboard): string[] {
  return allPanels(dashboard.panels).flatMap((p) => p.targets ?? []).flatMap((t) => t.expr ?? []);
}

function variableQuery(variable: Dashboard["templating"]["list"][number]): string {
  return typeof variable.query === "string" ? variable.query : variable.query.query;
}

/** Recorded names and expressions of the rules file. */
async function loadRules(): Promise<{ recorded: Set<string>; exprs: string[] }> {
  const file = yaml.load(await Deno.readTextFile(RULES)) as {
    groups: { rules: { record?: string; expr: string }[] }[];
  };
  const rules = file.groups.flatMap((g) => g.rules);
  return {
    recorded: new Set(rules.flatMap((r) => r.record ?? [])),
    exprs: rules.map((r) => r.expr),
  };
}

/** The exporter metric names the dashboard and the rules use. */
async function shippedNames(): Promise<string[]> {
  const dashboard = await loadDashboard();
  const { recorded, exprs } = await loadRules();
  const names = new Set([
    ...[...dashboardExprs(dashboard), ...exprs].flatMap(metricNames),
    ...dashboard.templating.list.filter((v) => v.type === "query").flatMap((v) =>
      variableMetricNames(variableQuery(v))
    ),
  ]);
  return [...names].filter((n) => !recorded.has(n) && !PROMETHEUS_OWN.has(n)).sort();
}

/** The sample names (not families) in an exposition: `_bucket`, `_sum`, `_count` included. */
function emittedNames(exposition: string): Set<string> {
  const names = new Set<string>();
  for (const line of exposition.split("\n")) {
    const name = /^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/.exec(line)?.[1];
    if (name !== undefined) names.add(name);
  }
  return names;
}

/**
 * Runs `body` against the exporter in the prometheus naming scheme: the sample tree for debugfs;
 * a fake QMP monitor for what only QMP has (per-vCPU counters, histograms), attached to the
 * sample's target_vm through vm.yaml.
 */
async function withNamesExporter(
  body: (exporter: ExporterProcess) => Promise<void>,
): Promise<void> {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_names_" });
  const qmp = startFakeQmp(`${tmp}/target_vm.qmp`, { behaviour: "qemu" });
  try {
    await Deno.writeTextFile(
      `${tmp}/vm.yaml`,
      `vm_infos:\n  target_vm:\n    kvm_debug_dir: "10620-10"\n    qmp_socket: "${tmp}/target_vm.qmp"\n`,
    );
    await using exporter = await startExporter([
      "--web.listen-address=127.0.0.1:0",
      "--collector.kvmdebug.dir=tests/fixtures/sample/kvm",
      `--collector.vmmap.path=${tmp}/vm.yaml`,
      "--path.procfs=tests/fixtures/sample/proc",
      "--path.sysfs=tests/fixtures/sample/sys",
      "--collector.qmp",
      "--metrics.naming=prometheus",
    ]);
    await body(exporter);
  } finally {
    await qmp.close();
    await Deno.remove(tmp, { recursive: true });
  }
}

Deno.test("the dashboard and rules use exactly the documented exporter metric names", async () => {
  deepStrictEqual(await shippedNames(), SHIPPED_NAMES);
});

Deno.test("the dashboard is importable: recent schema, a data source variable, instance and domain", async () => {
  const dashboard = await loadDashboard();
  ok(dashboard.schemaVersion >= 36, `schemaVersion ${dashboard.schemaVersion}`);
  const variables = dashboard.templating.list;
  deepStrictEqual(variables.map((v) => v.name), ["DS_PROMETHEUS", "instance", "domain"]);
  strictEqual(variables[0]!.type, "datasource");
  strictEqual(variables[0]!.query, "prometheus");
  const panels = allPanels(dashboard.panels);
  const ids = panels.map((p) => p.id);
  strictEqual(new Set(ids).size, ids.length, "panel ids are unique");
  for (const panel of panels.filter((p) => p.type !== "row")) {
    deepStrictEqual(panel.datasource, { type: "prometheus", uid: "${DS_PROMETHEUS}" }, panel.title);
    ok((panel.targets ?? []).length > 0, `${panel.title} has queries`);
    for (const target of panel.targets ?? []) {
      deepStrictEqual(target.datasource, panel.datasource, panel.title);
      // Every query follows the variables, so that picking a host or VM narrows every panel.
      ok(target.expr?.includes('instance=~"$instance"'), `${panel.title}: ${target.expr}`);
    }
  }
  for (const type of ["heatmap", "table", "stat", "timeseries"]) {
    ok(panels.some((p) => p.type === type), `a ${type} panel`);
  }
});

Deno.test("the dashboard's domain variable's All is every domain, not only kvm_vm_info's", async () => {
  // The variable lists kvm_vm_info's domains: the VMs discovered running. Without an allValue,
  // Grafana's All would be that list, hiding libvirt's shut-off domains, which have kvm_vm_state
  // and kvm_vm_state_reason but no kvm_vm_info. Every $domain query selects a per-VM family,
  // whose series all have a domain, so ".*" selects every VM and nothing else.
  const domain = (await loadDashboard()).templating.list.find((v) => v.name === "domain");
  strictEqual(domain?.includeAll, true);
  strictEqual(domain?.allValue, ".*");
  for (const expr of dashboardExprs(await loadDashboard())) {
    if (!expr.includes("$domain")) continue;
    for (const name of metricNames(expr)) {
      ok(/^kvm_(vm|vcpu)_/.test(name), `${name} in a $domain query has no domain label: ${expr}`);
    }
  }
});

const PROMTOOL = findPromtool();
if (PROMTOOL === undefined) {
  console.log("shipped_names_test: dashboard PromQL check skipped: promtool is not installed");
}

Deno.test({
  name: "promtool check rules accepts every dashboard expression",
  ignore: PROMTOOL === undefined,
  async fn() {
    // Grafana's variables replaced by what Grafana would put there with All selected (a
    // variable's allValue, else ".*" for the list of its values); each expression becomes a
    // recording rule, which promtool parses.
    const dashboard = await loadDashboard();
    const all = new Map(dashboard.templating.list.map((v) => [v.name, v.allValue ?? ".*"]));
    const exprs = dashboardExprs(dashboard).map((e) =>
      e.replaceAll("$__rate_interval", "5m").replace(
        /\$\{?(\w+)\}?/g,
        (_, name: string) => all.get(name) ?? ".*",
      )
    );
    const rules = {
      groups: [{ name: "dashboard", rules: exprs.map((expr, i) => ({ record: `d:${i}`, expr })) }],
    };
    const tmp = await Deno.makeTempFile({ suffix: ".yml" });
    try {
      await Deno.writeTextFile(tmp, yaml.dump(rules));
      const { code, out } = await runPromtool(PROMTOOL!, { args: ["check", "rules", tmp] });
      strictEqual(code, 0, out);
      ok(out.includes(`SUCCESS: ${exprs.length} rules found`), out);
    } finally {
      await Deno.remove(tmp);
    }
  },
});

Deno.test({
  name:
    "the exporter with --metrics.naming=prometheus emits every name the dashboard and rules use",
  async fn() {
    await withNamesExporter(async (exporter) => {
      const response = await fetch(`${exporter.baseUrl}/metrics`);
      strictEqual(response.status, 200);
      const emitted = emittedNames(await response.text());
      ok(emitted.has("kvm_vm_info"), [...emitted].join("\n"));
      const shipped = await shippedNames();
      // The guest-reported families need a guest: reported, not failed.
      const missing = shipped.filter((n) => !emitted.has(n) && whyNoData([n]) === undefined);
      deepStrictEqual(missing, [], `not emitted:\n${missing.join("\n")}`);
      const excused = shipped.filter((n) => !emitted.has(n)).map((n) => whyNoData([n]));
      if (excused.length > 0) console.log(`not emitted:\n  ${excused.join("\n  ")}`);
    });
  },
});

const NO_PROMETHEUS = prometheusPath() === undefined;
if (NO_PROMETHEUS) {
  console.log("shipped_names_test: rules evaluation skipped: prometheus is not installed");
}

Deno.test({
  name: "a real Prometheus evaluates every shipped rule on the exporter's output without error",
  ignore: NO_PROMETHEUS,
  async fn() {
    await withNamesExporter(async (exporter) => {
      // The shipped rules file, unchanged, scraped and evaluated every second.
      await using prometheus = await startPrometheus({
        jobs: [{ name: "kvm_exporter", targets: [`127.0.0.1:${exporter.port}`] }],
        ruleFiles: [RULES],
      });
      // Every rule evaluated at least once after two scrapes (rates need two samples).
      await waitFor(async () => {
        const all = await prometheus.rules();
        return all.length > 0 && all.every((r) => r.health !== "unknown") &&
          (await prometheus.query("instance_domain:kvm_vm_exits:rate5m")).length > 0;
      }, { timeoutMs: 30_000, what: "Prometheus to evaluate the rules on two scrapes" });
      const all = await prometheus.rules();
      const bad = all.filter((r) => r.health !== "ok").map((r) => `${r.name}: ${r.lastError}`);
      deepStrictEqual(bad, []);
      const { recorded } = await loadRules();
      strictEqual(all.filter((r) => r.type === "recording").length, recorded.size);
      // The sample's counters stand still, so the poll ratio (which leaves out VMs that did not
      // poll) is empty; every other recorded rule has a series per VM or host.
      for (const name of recorded) {
        if (name.includes("ratio")) continue;
        ok((await prometheus.query(name)).length > 0, `${name} recorded nothing`);
      }
      // One exit rate per VM; one halt-wait p90 per VM with QMP histograms (target_vm).
      const vms = (await prometheus.query("kvm_vm_info")).length;
      strictEqual(vms, 3);
      strictEqual((await prometheus.query("instance_domain:kvm_vm_exits:rate5m")).length, vms);
      const p90 = await prometheus.query("instance_domain:kvm_vcpu_halt_wait_seconds:p90_rate5m");
      deepStrictEqual(p90.map((s) => s.metric.domain), ["target_vm"]);
    });
  },
});
