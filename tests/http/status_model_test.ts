/**
 * The status page's model: per VM its run state, the sources of its stats and
 * what is missing; the lockdown and vm.yaml lines. Advice to enable a
 * collector only for one that is off.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { DiscoveredVm } from "../../src/discovery/vm_discovery.ts";
import {
  mergeObservations,
  type VmObservation,
  VmObservations,
} from "../../src/collectors/vm_observations.ts";
import type { ScrapeReport } from "../../src/collectors/scrape_report.ts";
import {
  configNote,
  type ConfigState,
  lockdownNote,
  sourcesText,
  vmStatuses,
} from "../../src/http/status_model.ts";
import type { LockdownMode, LockdownSource } from "../../src/system/lockdown.ts";
import type { StatSource } from "../../src/stats/stat.ts";

function vm(dir: string, domain: string): DiscoveredVm {
  return {
    dir,
    pid: Number(dir.split("-")[0]),
    cmdlineName: undefined,
    domain,
    nameSource: "dir",
    entry: undefined,
    renamedFrom: undefined,
    path: `/kvm/${dir}`,
    qmpSockets: [],
  };
}

/** One VM "web" (dir 1-10) as a scrape saw it. */
interface Scene {
  /** What each collector observed of the VM, in registry order. */
  observed?: [string, VmObservation][];
  /** Its stats by source. */
  stats?: [StatSource, number][];
  readErrors?: number;
}

function report(scene: Scene): ScrapeReport {
  const byCollector = (scene.observed ?? []).map(([name, observation]) => {
    const observations = new VmObservations();
    observations.observe("1-10", observation);
    return [name, observations] as const;
  });
  return {
    at: new Date(0),
    collectors: [],
    vms: [vm("1-10", "web")],
    observations: mergeObservations(byCollector),
    readErrorsByDomain: new Map([["web", scene.readErrors ?? 0]]),
    statSources: new Map([["1-10", new Map(scene.stats ?? [])]]),
  };
}

const VM_CASES: {
  name: string;
  scene: Scene;
  enabled: string[];
  runState: string;
  sources: string;
  note: string;
}[] = [
  {
    name: "unlocked, debugfs only",
    scene: { stats: [["debugfs", 120]] },
    enabled: ["kvm_stat", "vcpu_time"],
    runState: "unknown",
    sources: "debugfs 120",
    note: "",
  },
  {
    name: "locked down, QMP supplies what debugfs refuses",
    scene: {
      observed: [["qmp", { outcome: "ok" }]],
      stats: [["debugfs", 12], ["qmp", 96]],
      readErrors: 56,
    },
    enabled: ["kvm_stat", "qmp", "vcpu_time"],
    runState: "unknown",
    sources: "QMP 96, debugfs 12",
    note: "debugfs refuses 56; QMP supplies them",
  },
  {
    name: "locked down, libvirt supplies it and reports the run state",
    scene: {
      observed: [["libvirt", { runState: { state: "paused", reason: "io_error" } }]],
      stats: [["debugfs", 12], ["libvirt", 60]],
      readErrors: 56,
    },
    enabled: ["kvm_stat", "libvirt", "vcpu_time"],
    runState: "paused (io_error)",
    sources: "libvirt 60, debugfs 12",
    note: "debugfs refuses 56; libvirt supplies them",
  },
  {
    name: "locked down, QMP on but no socket for this VM: only libvirt to enable",
    scene: { stats: [["debugfs", 12]], readErrors: 56 },
    enabled: ["kvm_stat", "qmp", "vcpu_time"],
    runState: "unknown",
    sources: "debugfs 12",
    note: "56 stats not readable in debugfs; no QMP socket for it; enable --collector.libvirt",
  },
  {
    name: "locked down, QMP times out and libvirt has nothing: no advice, both are on",
    scene: {
      observed: [["qmp", { outcome: "timeout" }]],
      stats: [["debugfs", 12]],
      readErrors: 56,
    },
    enabled: ["kvm_stat", "qmp", "libvirt", "vcpu_time"],
    runState: "unknown",
    sources: "debugfs 12",
    note: "56 stats not readable in debugfs; QMP: timeout; libvirt has no stats of it",
  },
  {
    name: "locked down, neither QMP nor libvirt on",
    scene: { stats: [["debugfs", 12]], readErrors: 56 },
    enabled: ["kvm_stat", "vcpu_time"],
    runState: "unknown",
    sources: "debugfs 12",
    note: "56 stats not readable in debugfs; enable --collector.qmp or --collector.libvirt",
  },
  {
    name: "QMP answers with no KVM stats (TCG)",
    scene: { observed: [["qmp", { outcome: "ok" }]], readErrors: 3 },
    enabled: ["kvm_stat", "qmp", "libvirt"],
    runState: "unknown",
    sources: "none",
    note:
      "3 stats not readable in debugfs; QMP answers with no KVM stats; libvirt has no stats of it",
  },
  {
    name: "the process source, and a run state whose reason says nothing more (unknown)",
    scene: {
      observed: [
        ["qmp", { outcome: "ok", runState: { state: "running", reason: "unknown" } }],
        ["vm_process", { outcome: "ok" }],
      ],
      stats: [["qmp", 80]],
    },
    enabled: ["kvm_stat", "qmp", "vm_process"],
    runState: "running",
    sources: "QMP 80, process",
    note: "",
  },
  {
    name: "the process source failing is not a source",
    scene: { observed: [["vm_process", { outcome: "permission" }]], stats: [["debugfs", 5]] },
    enabled: ["kvm_stat", "vm_process"],
    runState: "unknown",
    sources: "debugfs 5",
    note: "",
  },
  {
    name: "a run state whose reason is its own name",
    scene: { observed: [["qmp", { runState: { state: "running", reason: "running" } }]] },
    enabled: ["qmp"],
    runState: "running",
    sources: "none",
    note: "",
  },
  {
    name: "a run state without a reason",
    scene: { observed: [["libvirt", { runState: { state: "shutoff", reason: "" } }]] },
    enabled: ["libvirt"],
    runState: "shutoff",
    sources: "none",
    note: "",
  },
];

for (const c of VM_CASES) {
  Deno.test(`vmStatuses() ${c.name}`, () => {
    const [row] = vmStatuses(report(c.scene), c.enabled);
    assert.deepEqual(
      { runState: row?.runState, sources: sourcesText(row?.sources ?? []), note: row?.note },
      { runState: c.runState, sources: c.sources, note: c.note },
    );
  });
}

Deno.test("vmStatuses() shows each VM with the vCPU count and QMP outcome collectors observed", () => {
  const debugfs = new VmObservations();
  debugfs.observe("1-10", { vcpus: 2 });
  const qmp = new VmObservations();
  qmp.observe("1-10", { vcpus: 8, outcome: "ok" });
  qmp.observe("2-11", { outcome: "timeout" });
  const rows = vmStatuses({
    at: new Date(0),
    collectors: [],
    vms: [vm("1-10", "web"), vm("2-11", "db"), vm("3-12", "idle")],
    observations: mergeObservations([["kvm_stat", debugfs], ["qmp", qmp]]),
    readErrorsByDomain: new Map([["db", 3]]),
    statSources: new Map(),
  }, ["kvm_stat", "qmp"]);
  assert.deepEqual(
    rows.map((r) => [r.domain, r.vcpus, r.qmp, r.readErrors]),
    [["web", 2, "ok", 0], ["db", undefined, "timeout", 3], ["idle", undefined, undefined, 0]],
  );
});

const LOCKDOWN_CASES: {
  mode: LockdownMode;
  source: LockdownSource | undefined;
  enabled: string[];
  note: string;
}[] = [
  {
    mode: "none",
    source: "securityfs",
    enabled: ["kvm_stat"],
    note: "off: every debugfs stat can be read",
  },
  {
    mode: "integrity",
    source: "securityfs",
    enabled: ["kvm_stat"],
    note:
      "integrity: debugfs hides cumulative, peak and histogram stats; instant stats and vCPU files still work; enable --collector.qmp or --collector.libvirt for the rest",
  },
  {
    mode: "integrity",
    source: "debugfs",
    enabled: ["kvm_stat", "qmp"],
    note:
      "integrity (inferred from EPERM on debugfs): debugfs hides cumulative, peak and histogram stats; instant stats and vCPU files still work; the qmp collector supplies the rest",
  },
  {
    mode: "confidentiality",
    source: "securityfs",
    enabled: ["kvm_stat", "qmp", "libvirt"],
    note:
      "confidentiality: debugfs hides cumulative, peak and histogram stats; instant stats and vCPU files still work; the qmp and libvirt collectors supply the rest",
  },
  {
    mode: "unknown",
    source: "unknown",
    enabled: ["kvm_stat"],
    note: "unknown (/sys/kernel/security/lockdown not readable)",
  },
];

for (const c of LOCKDOWN_CASES) {
  Deno.test(`lockdownNote() ${c.mode} from ${c.source} with ${c.enabled.join(", ")}`, () => {
    assert.equal(lockdownNote({ mode: c.mode, source: c.source, enabled: c.enabled }), c.note);
  });
}

const CONFIG_CASES: { config: ConfigState; text: string; problem: boolean }[] = [
  {
    config: { ok: true, origin: "file", path: "/etc/vm.yaml" },
    text: 'loaded from "/etc/vm.yaml"',
    problem: false,
  },
  {
    config: { ok: true, origin: "absent", path: "/etc/vm.yaml" },
    text: 'none at "/etc/vm.yaml": VMs are named from their command lines',
    problem: false,
  },
  {
    config: { ok: true, origin: "not_readable", path: "/etc/vm.yaml" },
    text:
      'not read (no read permission for "/etc/vm.yaml"): VMs are named from their command lines',
    problem: false,
  },
  {
    config: { ok: false, origin: "file", path: "/etc/vm.yaml" },
    text: 'last reload of "/etc/vm.yaml" failed; the config before it is in force',
    problem: true,
  },
  {
    config: { ok: true, origin: undefined, path: "/etc/vm.yaml" },
    text: "not loaded yet",
    problem: false,
  },
];

for (const c of CONFIG_CASES) {
  Deno.test(`configNote() ${c.config.ok ? c.config.origin : "after a failed reload"}`, () => {
    assert.deepEqual(configNote(c.config), { text: c.text, problem: c.problem });
  });
}
