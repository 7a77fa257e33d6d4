/**
 * The collector registry: every collector the exporter has, in precedence
 * order. When two collectors read the same stat, or observe the same thing of
 * a VM, the earlier one wins: debugfs, then QMP, then libvirt for the KVM
 * stats, state, disks and memory; vcpu_time has families of its own. The two
 * procfs fallbacks for any VMM come after libvirt, so that where libvirt knows
 * a VM its values are the ones exported: tap (network counters, which libvirt
 * also has) and vm_process last (CPU time and resident memory, which libvirt
 * also has). tap and vm_process share no family, so their order between them
 * does not matter. Adding a collector is its module, which exports a
 * declaration, and one line here.
 *
 * @module
 */

import type { CollectorRegistry } from "./collector_declaration.ts";
import { KVM_STAT_COLLECTOR } from "./kvm_stat.ts";
import { LIBVIRT_COLLECTOR } from "./libvirt.ts";
import { QMP_COLLECTOR } from "./qmp.ts";
import { TAP_COLLECTOR } from "./tap.ts";
import { VCPU_TIME_COLLECTOR } from "./vcpu_time.ts";
import { VM_PROCESS_COLLECTOR } from "./vm_process.ts";

/** Every collector, in precedence order. */
export const COLLECTORS: CollectorRegistry = [
  KVM_STAT_COLLECTOR,
  QMP_COLLECTOR,
  LIBVIRT_COLLECTOR,
  VCPU_TIME_COLLECTOR,
  TAP_COLLECTOR,
  VM_PROCESS_COLLECTOR,
];
