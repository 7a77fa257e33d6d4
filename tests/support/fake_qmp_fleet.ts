/**
 * The sample debugfs tree with a fake QMP monitor per VM serving every stat
 * of the catalog: histograms and every other QMP stat on a machine without
 * /dev/kvm.
 *
 * @module
 */

import { type FakeQmp, startFakeQmp } from "./fake_qmp.ts";
import { fixtureArgs } from "./sample_exporter.ts";

/** The sample tree's VM dirs and the names the fleet's vm.yaml gives them. */
export const FLEET_VMS: ReadonlyArray<readonly [dir: string, domain: string]> = [
  ["10620-10", "target_vm"],
  ["20431-12", "web-01"],
  ["31007-9", "db-01"],
];

/** A running fleet. */
export interface FakeQmpFleet {
  /** Flags that point the exporter at the sample tree, this vm.yaml and the QMP collector. */
  args: string[];
  /** The temp dir holding the sockets and vm.yaml. */
  dir: string;
  /** Stops the monitors and removes the temp dir. */
  close(): Promise<void>;
}

/**
 * Starts one fake QMP monitor per sample VM and writes a vm.yaml naming
 * them.
 *
 * @returns The fleet.
 */
export async function startFakeQmpFleet(): Promise<FakeQmpFleet> {
  const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_fleet_" });
  const monitors: FakeQmp[] = [];
  let yaml = "vm_infos:\n";
  for (const [vmDir, domain] of FLEET_VMS) {
    const socket = `${dir}/${domain}.sock`;
    monitors.push(startFakeQmp(socket, { behaviour: "qemu-catalog" }));
    yaml += `  ${domain}: {kvm_debug_dir: "${vmDir}", qmp_socket: "${socket}"}\n`;
  }
  await Deno.writeTextFile(`${dir}/vm.yaml`, yaml);
  return {
    args: [
      ...fixtureArgs("sample"),
      `--collector.vmmap.path=${dir}/vm.yaml`,
      "--collector.qmp",
    ],
    dir,
    async close() {
      await Promise.all(monitors.map((m) => m.close()));
      await Deno.remove(dir, { recursive: true });
    },
  };
}
