/**
 * The landing page: a status page an operator opens when a VM is missing
 * from a dashboard. Server-rendered HTML, no script.
 *
 * @module
 */

import type { ScrapeReport } from "../collectors/scrape_report.ts";
import type { LockdownMode, LockdownSource } from "../system/lockdown.ts";
import {
  configNote,
  type ConfigState,
  lockdownNote,
  sourcesText,
  vmStatuses,
} from "./status_model.ts";

/** What the status page shows. */
export interface StatusPageData {
  /** Exporter version. */
  version: string;
  /** Path serving metrics. */
  telemetryPath: string;
  /** Kernel lockdown mode. */
  lockdown: LockdownMode;
  /** Where the mode came from; "securityfs" when absent. */
  lockdownSource?: LockdownSource;
  /** vm.yaml: whether the last load succeeded, and where the config in force came from. */
  config: ConfigState;
  /** The enabled collectors' names, in registry order. */
  collectors: readonly string[];
  /** The last scrape to finish, if any: the page never waits for one. */
  scrape: ScrapeReport | undefined;
}

/**
 * Escapes text for HTML element content and attribute values.
 *
 * @param text Any text.
 * @returns The escaped text.
 */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

/**
 * Renders the status page.
 *
 * @param data What to show.
 * @returns A complete HTML document.
 */
export function renderStatusPage(data: StatusPageData): string {
  const e = escapeHtml;
  const collectors = (data.scrape?.collectors ?? []).map((c) =>
    `<tr><td>${e(c.name)}</td><td>${c.durationSeconds.toFixed(4)}</td><td>${
      c.success ? "yes" : "<strong>no</strong>"
    }</td></tr>`
  ).join("\n");
  const vms = (data.scrape === undefined ? [] : vmStatuses(data.scrape, data.collectors)).map((
    vm,
  ) =>
    `<tr><td>${e(vm.domain)}</td><td>${vm.nameSource}</td><td>${vm.pid}</td><td>${
      e(vm.dir)
    }</td><td>${vm.vcpus ?? ""}</td><td>${e(vm.runState)}</td><td>${
      e(sourcesText(vm.sources))
    }</td><td>${e(vm.qmp ?? "")}</td><td>${e(vm.note)}</td></tr>`
  ).join("\n");
  const config = configNote(data.config);
  const lockdown = lockdownNote({
    mode: data.lockdown,
    source: data.lockdownSource,
    enabled: data.collectors,
  });
  const when = data.scrape === undefined
    ? `none has finished yet (<a href="${e(data.telemetryPath)}">scrape now</a>)`
    : e(data.scrape.at.toISOString());
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>KVM Exporter</title>
<style>
body { font-family: sans-serif; margin: 2em; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; }
</style>
</head>
<body>
<h1>KVM Exporter</h1>
<p>Version ${e(data.version)}. <a href="${e(data.telemetryPath)}">Metrics</a></p>
<h2>Host</h2>
<p id="lockdown">Kernel lockdown: ${e(lockdown)}</p>
<p id="config">vm.yaml: ${
    config.problem ? `<strong>${e(config.text)}</strong>` : e(config.text)
  }</p>
<h2>Collectors</h2>
<p id="last-scrape">Last scrape: ${when}</p>
<table id="collectors">
<thead><tr><th>Collector</th><th>Duration (s)</th><th>Success</th></tr></thead>
<tbody>
${collectors}
</tbody>
</table>
<h2>VMs</h2>
<table id="vms">
<thead><tr><th>Name</th><th>Name from</th><th>PID</th><th>Debugfs dir</th><th>vCPUs</th><th>State</th><th>Stats from</th><th>QMP</th><th>Missing</th></tr></thead>
<tbody>
${vms}
</tbody>
</table>
</body>
</html>
`;
}
