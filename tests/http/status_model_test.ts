import assert from "node:assert/strict";
import type { DiscoveredVm } from "../../src/discovery/vm_discovery.ts";
import { mergeObservations, VmObservations } from "../../src/collectors/vm_observations.ts";
import { vmStatuses } from "../../src/http/status_model.ts";

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
  });
  assert.deepEqual(
    rows.map((r) => [r.domain, r.vcpus, r.qmp, r.readErrors]),
    [["web", 2, "ok", 0], ["db", undefined, "timeout", 3], ["idle", undefined, undefined, 0]],
  );
});
