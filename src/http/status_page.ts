/**
 * The landing page: a status page an operator opens when a VM is missing
 * from a dashboard. Server-rendered HTML, no script.
 *
 * @module
 */

import type { ScrapeReport } from "../collectors/scrape_report.ts";
import type { LockdownMode, LockdownSource } from "../system/lockdown.ts";
import { vmStatuses } from "./status_model.ts";

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
  /** Whether the last vm.yaml load succeeded. */
  configOk: boolean;
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

const LOCKDOWN_NOTES: Record<LockdownMode, string> = {
  none: "off: every debugfs stat can be read",
  integrity:
    "integrity: debugfs hides cumulative, peak and histogram stats; instant stats and vCPU files still work (enable the qmp collector for the rest)",
  confidentiality:
    "confidentiality: debugfs hides cumulative, peak and histogram stats; instant stats and vCPU files still work (enable the qmp collector for the rest)",
  unknown: "unknown (/sys/kernel/security/lockdown not readable)",
};

function lockdownNote(mode: LockdownMode, source: LockdownSource | undefined): string {
  if (source !== "debugfs") return LOCKDOWN_NOTES[mode];
  // securityfs was silent: the mode was inferred, and "integrity" may be confidentiality.
  const [name, rest] = LOCKDOWN_NOTES[mode].split(/:(.*)/s);
  return `${name} (inferred from EPERM on debugfs):${rest ?? ""}`;
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
  const vms = (data.scrape === undefined ? [] : vmStatuses(data.scrape)).map((vm) =>
    `<tr><td>${e(vm.domain)}</td><td>${vm.nameSource}</td><td>${vm.pid}</td><td>${
      e(vm.dir)
    }</td><td>${vm.vcpus ?? ""}</td><td>${vm.readErrors}</td><td>${e(vm.qmp ?? "")}</td></tr>`
  ).join("\n");
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
<p id="lockdown">Kernel lockdown: ${e(lockdownNote(data.lockdown, data.lockdownSource))}</p>
<p id="config">vm.yaml: ${data.configOk ? "loaded" : "<strong>last reload failed</strong>"}</p>
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
<thead><tr><th>Name</th><th>Name from</th><th>PID</th><th>Debugfs dir</th><th>vCPUs</th><th>Unreadable stats</th><th>QMP</th></tr></thead>
<tbody>
${vms}
</tbody>
</table>
</body>
</html>
`;
}
