/**
 * The traffic a guest's own firmware makes shows up as rising rates in a
 * real Prometheus scraping the exporter: SeaBIOS reads its boot disk, the
 * NIC's boot ROM (iPXE) sends DHCP requests. Neither guest has anything to
 * boot, and each reboots a second after failing to (`-boot reboot-timeout=1000`),
 * so one reads its disk, and the other sends DHCP, again and again.
 *
 * Under KVM on a host where iPXE stops the guest with a KVM internal error
 * (QEMU then reports `internal-error`: libvirt's paused, reason `unknown`), the exporter's
 * state family says so, and only the disk's rate is asserted: the test
 * prints why.
 *
 * @module
 */

import { ok } from "node:assert/strict";
import { startExporter, waitFor } from "../support/exporter_process.ts";
import { programPath } from "../support/program_path.ts";
import { prometheusPath, startPrometheus } from "../support/prometheus.ts";
import type { QemuVm } from "../support/qemu.ts";
import {
  type Backend,
  kvmBackend,
  ownVmsExporterArgs,
  tcgBackend,
} from "../support/vm_backends.ts";

/** Runs a program; whether it succeeded, and what it said on stderr. */
async function run(program: string, args: string[]): Promise<{ ok: boolean; stderr: string }> {
  const out = await new Deno.Command(program, { args, stdout: "null", stderr: "piped" }).output();
  return { ok: out.success, stderr: new TextDecoder().decode(out.stderr).trim() };
}

/** Why this test cannot run here, if it cannot. */
function skipReason(backend: Backend): string | undefined {
  if (prometheusPath() === undefined) {
    return "prometheus is not installed (apt-get install prometheus)";
  }
  if (programPath("qemu-img") === undefined) return "qemu-img is not installed (qemu-utils)";
  if (programPath("ip") === undefined) return "ip is not installed (iproute2)";
  return backend.skip;
}

/** Makes a tap device and brings it up; the reason when the machine can't. */
async function makeTap(name: string): Promise<string | undefined> {
  const made = await run("ip", ["tuntap", "add", "dev", name, "mode", "tap"]);
  if (!made.ok) return `no tap device: ${made.stderr}`;
  const up = await run("ip", ["link", "set", "dev", name, "up"]);
  return up.ok ? undefined : `tap ${name} does not come up: ${up.stderr}`;
}

/** A guest that reboots a second after failing to boot: its firmware runs again and again. */
const REBOOTING = ["-action", "reboot=reset", "-boot", "reboot-timeout=1000"];

/** The disk guest: a blank qcow2 disk, read by SeaBIOS on every boot. */
async function diskArgs(tmp: string): Promise<string[]> {
  const made = await run("qemu-img", ["create", "-q", "-f", "qcow2", `${tmp}/disk.qcow2`, "16M"]);
  ok(made.ok, made.stderr);
  return [
    ...REBOOTING, // After startQemu's -no-reboot, so this guest reboots.
    "-drive",
    `file=${tmp}/disk.qcow2,if=none,id=drive0,format=qcow2`,
    "-device",
    "virtio-blk-pci,drive=drive0,id=vd0,bootindex=1",
  ];
}

/** The network guest: a NIC with its boot ROM on the tap, sending DHCP on every boot. */
function netArgs(tap: string): string[] {
  return [
    ...REBOOTING,
    "-netdev",
    `tap,id=net0,ifname=${tap},script=no,downscript=no`,
    "-device",
    "virtio-net-pci,netdev=net0,mac=52:54:00:12:34:57,id=nic0,bootindex=1",
  ];
}

type Query = (expr: string) => Promise<{ metric: Record<string, string>; value: string }[]>;

/**
 * Waits until the network guest's transmit rate rises, or until the exporter reports it stopped
 * for good (paused, reason `unknown`: QEMU's `internal-error`, a KVM internal error in iPXE); which
 * one.
 */
async function dhcpOrStopped(query: Query): Promise<"sent" | "stopped"> {
  let outcome: "sent" | "stopped" | undefined;
  await waitFor(async () => {
    const sent = await query('rate(kvm_vm_network_transmit_packets_total{domain="net"}[10s]) > 0');
    const stopped = await query(
      'kvm_vm_state_reason{domain="net",state="paused",reason="unknown"}',
    );
    outcome = sent.length > 0 ? "sent" : stopped.length > 0 ? "stopped" : undefined;
    return outcome !== undefined;
  }, { timeoutMs: 60_000, what: "iPXE's DHCP in Prometheus (or the guest stopped)" });
  return outcome!;
}

for (const backend of [kvmBackend, tcgBackend]) {
  const skip = skipReason(backend);
  if (skip !== undefined) console.log(`guest_traffic_test [${backend.name}] skipped: ${skip}`);
  Deno.test({
    name:
      `the firmware's disk reads and DHCP show as rising rates in a real Prometheus [${backend.name}]`,
    ignore: skip !== undefined,
    async fn() {
      const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_traffic_" });
      const tapName = `kxtr${Deno.pid % 100_000}${backend.name[0]}`;
      const vms: { vm: QemuVm; dir: string }[] = [];
      let noTap: string | undefined;
      try {
        noTap = await makeTap(tapName);
        if (noTap !== undefined) console.log(`guest_traffic_test [${backend.name}]: ${noTap}`);
        const kvm = await backend.kvmDir(tmp);
        vms.push(await backend.start(kvm, "disk", 1, `${tmp}/disk.qmp`, await diskArgs(tmp)));
        if (noTap === undefined) {
          vms.push(await backend.start(kvm, "net", 1, `${tmp}/net.qmp`, netArgs(tapName)));
        }
        const listed = vms.map(({ vm }, i) => `  ${i === 0 ? "disk" : "net"}: {pid: ${vm.pid}}`);
        await Deno.writeTextFile(`${tmp}/vm.yaml`, `vm_infos:\n${listed.join("\n")}\n`);
        await using exporter = await startExporter([
          ...ownVmsExporterArgs({ kvmDir: kvm, vmYaml: `${tmp}/vm.yaml` }),
          "--metrics.naming=prometheus",
        ]);
        await using prometheus = await startPrometheus({
          jobs: [{ name: "kvm_exporter", targets: [`127.0.0.1:${exporter.port}`] }],
        });
        const rising = (series: string) =>
          prometheus.waitForQuery(`rate(${series}[10s])`, (value) => Number(value) > 0, {
            timeoutMs: 60_000,
            what: `${series} rising in Prometheus`,
          });
        await rising('kvm_vm_block_read_requests_total{domain="disk"}');
        await rising('kvm_vm_block_read_bytes_total{domain="disk"}');
        if (noTap !== undefined) return;
        if (await dhcpOrStopped(prometheus.query) === "stopped") {
          console.log(
            `guest_traffic_test [${backend.name}]: no DHCP to see: iPXE stops the guest here with ` +
              "a KVM internal error (kvm_vm_state_reason: paused, unknown); disk asserted",
          );
          return;
        }
        // The tap's receive is the guest's transmit: iPXE's DHCP requests.
        await rising('kvm_vm_network_transmit_bytes_total{domain="net"}');
      } finally {
        for (const { vm, dir } of vms) await backend.stop(vm, dir);
        if (noTap === undefined) await run("ip", ["tuntap", "del", "dev", tapName, "mode", "tap"]);
        await Deno.remove(tmp, { recursive: true });
      }
    },
  });
}
