/**
 * Every panel of the shipped Grafana dashboard and every recording rule has
 * data on this host: real QEMU VMs under KVM (each with a qcow2 virtio disk, a
 * balloon and a tap interface where the machine allows them), the exporter
 * with `--collector.qmp` in the prometheus naming, and a real Prometheus
 * scraping it with the shipped rules. Every target's expression (Grafana's
 * variables replaced as Grafana would) and every recording rule's expression
 * is run through Prometheus's HTTP API; the test fails naming each query that
 * returns nothing.
 *
 * Queries over families only a guest OS can fill are listed in
 * `tests/support/guest_reported_families.ts`: reported, not failed.
 *
 * @module
 */

import { deepStrictEqual, ok } from "node:assert/strict";
import yaml from "js-yaml";
import { whyNoData } from "../support/guest_reported_families.ts";
import { startExporter, waitFor } from "../support/exporter_process.ts";
import { programPath } from "../support/program_path.ts";
import { prometheusPath, type PrometheusProcess, startPrometheus } from "../support/prometheus.ts";
import { metricNames } from "../support/promql_names.ts";
import { type QemuVm, startQemu } from "../support/qemu.ts";
import { kvmBackend } from "../support/vm_backends.ts";

const root = new URL("../../", import.meta.url).pathname;
const DASHBOARD = `${root}deploy/grafana/kvm_exporter.json`;
const RULES = `${root}deploy/prometheus/kvm_exporter.rules.yml`;
const DEBUGFS_KVM = "/sys/kernel/debug/kvm";

/** What Grafana puts for `$__rate_interval` at a 1 s scrape interval and a 6 h range. */
const RATE_INTERVAL = "20s";

/** How long every query has to show data: rates need two scrapes, the day's rules one record. */
const DATA_TIMEOUT_MS = 60_000;

/** The VMs: name and vCPUs. */
const VMS = [["alpha", 2], ["beta", 1]] as const;

const SKIP = prometheusPath() === undefined
  ? "prometheus is not installed (apt-get install prometheus)"
  : kvmBackend.skip;
if (SKIP !== undefined) console.log(`dashboard_coverage_test: skipped: ${SKIP}`);

/** One query to run: where it comes from, and its PromQL. */
interface CoverageQuery {
  where: string;
  expr: string;
}

interface Panel {
  title: string;
  targets?: { expr?: string; refId?: string }[];
  panels?: Panel[];
}

/** Grafana's values for the dashboard's variables. */
interface Variables {
  instance: string;
  domains: readonly string[];
}

/** Escapes regex metacharacters, as Grafana does for a multi-value variable in `=~`. */
function regexEscape(text: string): string {
  return text.replace(/[\\^$*+?.()|[\]{}]/g, "\\\\$&");
}

/** The dashboard's template variables, as far as "All" goes. */
interface TemplateVariable {
  name: string;
  includeAll?: boolean;
  allValue?: string;
}

/**
 * Replaces Grafana's variables the way Grafana does, `instance` set to one host and `domain` to
 * "All": the variable's `allValue` as it stands (unescaped) where it has one, else `(a|b)` of its
 * escaped values.
 */
function substitute(
  expr: string,
  variables: Variables,
  templating: readonly TemplateVariable[],
): string {
  const values = (list: readonly string[]): string =>
    list.length === 1 ? regexEscape(list[0]!) : `(${list.map(regexEscape).join("|")})`;
  const domain = templating.find((v) => v.name === "domain");
  const allDomains = domain?.includeAll === true && domain.allValue !== undefined
    ? domain.allValue
    : values(variables.domains);
  return expr
    .replaceAll("$__rate_interval", RATE_INTERVAL)
    .replaceAll("$instance", values([variables.instance]))
    .replaceAll("$domain", allDomains);
}

function allPanels(panels: readonly Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

/** Every target of every panel, variables replaced. */
async function dashboardQueries(variables: Variables): Promise<CoverageQuery[]> {
  const dashboard = JSON.parse(await Deno.readTextFile(DASHBOARD)) as {
    panels: Panel[];
    templating: { list: TemplateVariable[] };
  };
  return allPanels(dashboard.panels).flatMap((panel) =>
    (panel.targets ?? []).flatMap((target) =>
      target.expr === undefined ? [] : [{
        where: `panel "${panel.title}" ${target.refId ?? ""}`.trimEnd(),
        expr: substitute(target.expr, variables, dashboard.templating.list),
      }]
    )
  );
}

/** Every recording rule's expression. */
async function ruleQueries(): Promise<CoverageQuery[]> {
  const file = yaml.load(await Deno.readTextFile(RULES)) as {
    groups: { rules: { record?: string; expr: string }[] }[];
  };
  return file.groups.flatMap((g) => g.rules).flatMap((rule) =>
    rule.record === undefined ? [] : [{ where: `rule ${rule.record}`, expr: rule.expr }]
  );
}

/** What the VMs could be given on this machine, and why not where they could not. */
interface Devices {
  /** Why the VMs have no disk, if they have none. */
  noDisk: string | undefined;
  /** Why the VMs have no tap interface, if they have none. */
  noTap: string | undefined;
}

async function availableDevices(): Promise<Devices> {
  const noDisk = programPath("qemu-img") === undefined
    ? "qemu-img is not installed (apt-get install qemu-utils)"
    : undefined;
  return { noDisk, noTap: await tapUnavailable() };
}

/** Why no tap device can be made here (no /dev/net/tun, no CAP_NET_ADMIN), or undefined. */
async function tapUnavailable(): Promise<string | undefined> {
  const ip = programPath("ip");
  if (ip === undefined) return "ip is not installed (apt-get install iproute2)";
  // Made and removed at once, as QEMU will make the VMs' own: the same checks, the same rights.
  const probe = `${tapName(9)}p`;
  const made = await new Deno.Command(ip, {
    args: ["tuntap", "add", "dev", probe, "mode", "tap"],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!made.success) {
    return `this machine cannot make a tap device: ${new TextDecoder().decode(made.stderr).trim()}`;
  }
  await new Deno.Command(ip, { args: ["link", "del", probe], stdout: "null", stderr: "null" })
    .output();
  return undefined;
}

/** Why a query may be empty on this machine, beyond the families awaited. */
function missingDevice(names: readonly string[], devices: Devices): string | undefined {
  if (names.some((n) => n.startsWith("kvm_vm_block_"))) return devices.noDisk;
  if (names.some((n) => n.startsWith("kvm_vm_network_"))) return devices.noTap;
  return undefined;
}

/** A tap name unique to this test run (at most 15 bytes). */
function tapName(index: number): string {
  return `kvcov${Deno.pid % 100_000}n${index}`;
}

/** The QEMU arguments for a VM's disk, balloon and tap interface. */
async function deviceArgs(
  vm: { tmp: string; name: string; index: number },
  devices: Devices,
): Promise<string[]> {
  // The balloon: QMP's query-balloon answers only with one.
  const args = ["-device", "virtio-balloon-pci,id=balloon0"];
  if (devices.noDisk === undefined) {
    // SeaBIOS reads the disk's boot sector: the guest's own reads.
    const image = `${vm.tmp}/${vm.name}.qcow2`;
    const made = await new Deno.Command("qemu-img", {
      args: ["create", "-q", "-f", "qcow2", image, "16M"],
      stdout: "null",
      stderr: "piped",
    }).output();
    ok(made.success, new TextDecoder().decode(made.stderr));
    args.push(
      "-drive",
      `file=${image},if=none,id=disk0,format=qcow2`,
      "-device",
      "virtio-blk-pci,drive=disk0",
    );
  }
  if (devices.noTap === undefined) {
    // No boot ROM (romfile=): Debian's QEMU may lack iPXE, and the counters exist without traffic.
    args.push(
      "-netdev",
      `tap,id=net0,ifname=${tapName(vm.index)},script=no,downscript=no`,
      "-device",
      "virtio-net-pci,netdev=net0,romfile=",
    );
  }
  return args;
}

/** Starts a VM under KVM and waits for its debugfs dir with every vCPU. */
async function startVm(
  vm: { tmp: string; name: string; index: number; smp: number },
  devices: Devices,
): Promise<{ qemu: QemuVm; dir: string }> {
  const qemu = await startQemu({
    name: vm.name,
    smp: vm.smp,
    accel: "kvm",
    qmpSocket: `${vm.tmp}/${vm.name}.qmp`,
    extraArgs: await deviceArgs(vm, devices),
  });
  let dir = "";
  try {
    await waitFor(async () => {
      for await (const e of Deno.readDir(DEBUGFS_KVM)) {
        if (e.name.startsWith(`${qemu.pid}-`)) dir = e.name;
      }
      if (dir === "") return false;
      let vcpus = 0;
      for await (const e of Deno.readDir(`${DEBUGFS_KVM}/${dir}`)) {
        if (/^vcpu\d+$/.test(e.name)) vcpus++;
      }
      return vcpus === vm.smp;
    }, { timeoutMs: 15_000, what: `the debugfs dir of ${vm.name} with ${vm.smp} vCPUs` });
  } catch (error) {
    await qemu.stop();
    throw error;
  }
  return { qemu, dir };
}

/** Brings a VM's tap up on the host: QEMU makes it down, with `script=no`. */
async function tapUp(index: number): Promise<void> {
  const ip = programPath("ip");
  if (ip === undefined) return; // Down, its counters still exist.
  await new Deno.Command(ip, {
    args: ["link", "set", tapName(index), "up"],
    stdout: "null",
    stderr: "null",
  }).output();
}

/** A query's result, once data arrived or the deadline passed. */
interface Outcome {
  query: CoverageQuery;
  hasData: boolean;
  /** Why it may be empty here, if it may. */
  excuse: string | undefined;
}

/** Runs every query until each one that must have data has it, or the deadline passes. */
async function runQueries(
  prometheus: PrometheusProcess,
  queries: readonly CoverageQuery[],
  devices: Devices,
): Promise<Outcome[]> {
  const outcomes = queries.map((query) => {
    const names = metricNames(query.expr);
    return { query, hasData: false, excuse: whyNoData(names) ?? missingDevice(names, devices) };
  });
  const poll = async (): Promise<boolean> => {
    for (const outcome of outcomes.filter((o) => !o.hasData)) {
      outcome.hasData = (await prometheus.query(outcome.query.expr)).length > 0;
    }
    return outcomes.every((o) => o.hasData || o.excuse !== undefined);
  };
  try {
    await waitFor(poll, { timeoutMs: DATA_TIMEOUT_MS, what: "every query to have data" });
  } catch {
    // Reported below, query by query.
  }
  for (const outcome of outcomes.filter((o) => !o.hasData && o.excuse === undefined)) {
    outcome.excuse = await nothingToDivideBy(prometheus, outcome.query.expr);
  }
  return outcomes;
}

/**
 * Why a ratio has no data though its series exist: its denominator, kept only where above 0
 * (`x / (rate(y[...]) > 0)`, so that no ratio is 0/0), is 0 for every VM. The halt-poll success
 * ratio is so on idle firmware: KVM polls only once a vCPU's halts get shorter than
 * `halt_poll_ns` (200 µs), and SeaBIOS halts for 55 ms timer ticks.
 */
async function nothingToDivideBy(
  prometheus: PrometheusProcess,
  expr: string,
): Promise<string | undefined> {
  // One level of parentheses may nest inside, as in a label matcher's `=~"(alpha|beta)"`.
  const denominator = /\((rate\((?:[^()]|\([^()]*\))*\)) > 0\)/.exec(expr)?.[1];
  if (denominator === undefined) return undefined;
  const samples = await prometheus.query(denominator);
  if (samples.length === 0 || samples.some((s) => Number(s.value) !== 0)) return undefined;
  return `its denominator ${denominator} is 0 on ${samples.length} series: nothing to divide by`;
}

function describe(outcome: Outcome): string {
  return `${outcome.query.where}: ${outcome.query.expr}`;
}

/** Logs which queries had data, and which were empty and why. */
function report(outcomes: readonly Outcome[], lockdown: string): void {
  const lines = outcomes.map((o) =>
    `  ${o.hasData ? "data " : "EMPTY"} ${describe(o)}${
      !o.hasData && o.excuse !== undefined ? `\n        (${o.excuse})` : ""
    }`
  );
  console.log(`dashboard coverage, kernel lockdown ${lockdown}:\n${lines.join("\n")}`);
}

Deno.test({
  name: "every dashboard panel and recording rule has data from real KVM VMs with --collector.qmp",
  ignore: SKIP !== undefined,
  async fn() {
    const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_coverage_" });
    const vms: QemuVm[] = [];
    try {
      const devices = await availableDevices();
      for (const reason of [devices.noDisk, devices.noTap]) {
        if (reason !== undefined) console.log(`dashboard_coverage_test: ${reason}`);
      }
      let vmYaml = "vm_infos:\n";
      for (const [index, [name, smp]] of VMS.entries()) {
        const { qemu, dir } = await startVm({ tmp, name, index, smp }, devices);
        vms.push(qemu);
        if (devices.noTap === undefined) await tapUp(index);
        vmYaml += `  ${name}: {kvm_debug_dir: "${dir}", qmp_socket: "${tmp}/${name}.qmp"}\n`;
      }
      // Only our VMs: other tests may run VMs on this host at the same time.
      await Deno.writeTextFile(`${tmp}/vm.yaml`, vmYaml);
      await using exporter = await startExporter([
        "--web.listen-address=127.0.0.1:0",
        `--collector.kvmdebug.dir=${DEBUGFS_KVM}`,
        `--collector.vmmap.path=${tmp}/vm.yaml`,
        "--collector.vmmap.only-listed",
        "--path.procfs=/proc",
        "--collector.qmp",
        "--metrics.naming=prometheus",
      ]);
      const instance = `127.0.0.1:${exporter.port}`;
      await using prometheus = await startPrometheus({
        jobs: [{ name: "kvm_exporter", targets: [instance] }],
        ruleFiles: [RULES],
      });
      await prometheus.waitForQuery("up", (v) => v === "1", { timeoutMs: 30_000 });
      const domains = VMS.map(([name]) => name);
      const queries = [...await dashboardQueries({ instance, domains }), ...await ruleQueries()];
      const outcomes = await runQueries(prometheus, queries, devices);
      const lockdown = (await prometheus.query("kvm_exporter_kernel_lockdown == 1"))[0]?.metric;
      report(outcomes, `${lockdown?.["mode"]} (from ${lockdown?.["source"]})`);

      const empty = outcomes.filter((o) => !o.hasData && o.excuse === undefined).map(describe);
      deepStrictEqual(empty, [], `queries with no data:\n${empty.join("\n")}`);
    } finally {
      await Promise.all(vms.map((vm) => vm.stop()));
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
