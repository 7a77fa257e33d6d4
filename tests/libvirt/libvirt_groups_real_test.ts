/**
 * The libvirt collector's state, CPU, memory, disk and network families
 * against real libvirtd: a KVM domain with a qcow2 disk (`qemu-img`) and a tap
 * (`<interface type='ethernet'>`, libvirt makes the tap), and a defined,
 * shut-off domain. The exporter's values are compared with `virsh -r
 * domstats` read after them: counters not above virsh's later reading, static
 * gauges equal. Run under `flock /tmp/realvm.lock`.
 *
 * @module
 */

import { ok, strictEqual } from "node:assert/strict";
import {
  type ExporterProcess,
  LOOPBACK_ANY_PORT,
  startExporter,
  waitFor,
} from "../support/exporter_process.ts";
import { seriesValue } from "../support/sample_exporter.ts";
import {
  createDomain,
  ensureLibvirtDaemons,
  LIBVIRT_SOCKET_RO,
  libvirtUnavailable,
  virshDomstats,
} from "../support/libvirt.ts";
import { qemuUnavailable } from "../support/qemu.ts";

const UUID = "6a1f3b2c-0d4e-4f5a-9b8c-7d6e5f4a3b22";
const NAME = "kvm-exporter-groups";
const OFF_UUID = "6a1f3b2c-0d4e-4f5a-9b8c-7d6e5f4a3b23";
const OFF_NAME = "kvm-exporter-shutoff";
const TAP = "kvmexptap0";
const DISK_BYTES = 64 * 1024 * 1024;
const GROUPS = ["--state", "--cpu-total", "--balloon", "--block", "--interface"];

function kvmUnavailable(): string | undefined {
  try {
    Deno.statSync("/dev/kvm");
    Deno.statSync("/sys/kernel/debug/kvm");
    return undefined;
  } catch {
    return "needs /dev/kvm and debugfs";
  }
}

const unavailable = libvirtUnavailable() ?? qemuUnavailable() ?? kvmUnavailable();
if (unavailable !== undefined) console.log(`libvirt_groups_real_test skipped: ${unavailable}`);

async function run(command: string, args: string[]): Promise<void> {
  const output = await new Deno.Command(command, { args, stdout: "null", stderr: "piped" })
    .output();
  if (!output.success) {
    throw new Error(
      `${command} ${args.join(" ")} failed: ${new TextDecoder().decode(output.stderr)}`,
    );
  }
}

function disk(path: string): string {
  return `
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='${path}'/>
      <target dev='vda' bus='virtio'/>
      <boot order='1'/>
    </disk>`;
}

const INTERFACE = `
    <interface type='ethernet'>
      <mac address='52:54:00:6b:65:01'/>
      <target dev='${TAP}'/>
      <model type='virtio'/>
      <boot order='2'/>
    </interface>`;

/** Defines (not starts) a domain with the disk: libvirt knows it shut off. */
async function defineShutoff(path: string, tmp: string): Promise<void> {
  await run("/usr/bin/virsh", ["-c", "qemu:///system", "undefine", OFF_UUID]).catch(() => {});
  const xml = `<domain type='kvm'>
  <name>${OFF_NAME}</name>
  <uuid>${OFF_UUID}</uuid>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>${disk(path)}
    <memballoon model='none'/>
  </devices>
</domain>
`;
  await Deno.writeTextFile(`${tmp}/shutoff.xml`, xml);
  await run("/usr/bin/virsh", ["-c", "qemu:///system", "define", `${tmp}/shutoff.xml`]);
}

async function scrape(exporter: ExporterProcess): Promise<string> {
  const response = await fetch(`${exporter.baseUrl}/metrics`);
  strictEqual(response.status, 200);
  return await response.text();
}

/** An exposition value in its field's libvirt unit (ns for seconds, KiB for memory) as a BigInt. */
function inUnit(text: string, series: string, unit: "ns" | "KiB" | "one"): bigint {
  const value = seriesValue(text, series);
  ok(value !== undefined, `no ${series}`);
  if (unit === "KiB") return BigInt(value) / 1024n;
  if (unit === "one") return BigInt(value);
  const [whole, fraction = ""] = value.split(".");
  return BigInt(whole!) * 1_000_000_000n + BigInt(fraction.padEnd(9, "0"));
}

/** Exporter series and the libvirt field each comes from. */
function comparisons(
  domain: string,
): { series: string; field: string; unit: "ns" | "KiB" | "one"; counter: boolean }[] {
  const d = `domain="${domain}"`;
  const vda = `{${d},device="vda"}`;
  const tap = `{${d},interface="${TAP}"}`;
  const rows: [string, string, "ns" | "KiB" | "one", boolean][] = [
    [`kvm_vm_cpu_time_seconds_total{${d}}`, "cpu.time", "ns", true],
    [`kvm_vm_cpu_seconds_total{${d},mode="user"}`, "cpu.user", "ns", true],
    [`kvm_vm_cpu_seconds_total{${d},mode="system"}`, "cpu.system", "ns", true],
    [`kvm_vm_memory_balloon_bytes{${d}}`, "balloon.current", "KiB", false],
    [`kvm_vm_memory_maximum_bytes{${d}}`, "balloon.maximum", "KiB", false],
    [`kvm_vm_block_read_requests_total${vda}`, "block.0.rd.reqs", "one", true],
    [`kvm_vm_block_read_bytes_total${vda}`, "block.0.rd.bytes", "one", true],
    [`kvm_vm_block_read_seconds_total${vda}`, "block.0.rd.times", "ns", true],
    [`kvm_vm_block_write_requests_total${vda}`, "block.0.wr.reqs", "one", true],
    [`kvm_vm_block_write_bytes_total${vda}`, "block.0.wr.bytes", "one", true],
    [`kvm_vm_block_write_seconds_total${vda}`, "block.0.wr.times", "ns", true],
    [`kvm_vm_block_flush_requests_total${vda}`, "block.0.fl.reqs", "one", true],
    [`kvm_vm_block_flush_seconds_total${vda}`, "block.0.fl.times", "ns", true],
    [`kvm_vm_block_capacity_bytes${vda}`, "block.0.capacity", "one", false],
    [`kvm_vm_block_allocation_bytes${vda}`, "block.0.allocation", "one", false],
    [`kvm_vm_block_physical_bytes${vda}`, "block.0.physical", "one", false],
    [`kvm_vm_network_receive_bytes_total${tap}`, "net.0.rx.bytes", "one", true],
    [`kvm_vm_network_receive_packets_total${tap}`, "net.0.rx.pkts", "one", true],
    [`kvm_vm_network_receive_errors_total${tap}`, "net.0.rx.errs", "one", true],
    [`kvm_vm_network_receive_drops_total${tap}`, "net.0.rx.drop", "one", true],
    [`kvm_vm_network_transmit_bytes_total${tap}`, "net.0.tx.bytes", "one", true],
    [`kvm_vm_network_transmit_packets_total${tap}`, "net.0.tx.pkts", "one", true],
    [`kvm_vm_network_transmit_errors_total${tap}`, "net.0.tx.errs", "one", true],
    [`kvm_vm_network_transmit_drops_total${tap}`, "net.0.tx.drop", "one", true],
  ];
  return rows.map(([series, field, unit, counter]) => ({ series, field, unit, counter }));
}

/** Counters ≤ virsh's later reading, static gauges equal; prints each pair. */
function compareWithVirsh(text: string, virsh: Map<string, string>): void {
  const lines: string[] = [];
  for (const { series, field, unit, counter } of comparisons(NAME)) {
    const later = virsh.get(field);
    ok(later !== undefined, `virsh has no ${field}`);
    const ours = inUnit(text, series, unit);
    if (counter) ok(ours <= BigInt(later), `${field}: exporter ${ours} > virsh's later ${later}`);
    else strictEqual(ours, BigInt(later), `${field}: exporter ${ours}, virsh ${later}`);
    lines.push(`${field}: exporter ${ours}, virsh ${later}`);
  }
  console.log(lines.join("\n"));
}

Deno.test({
  name: "libvirt collector against real libvirtd: state, CPU, balloon, qcow2 disk and tap vs virsh",
  ignore: unavailable !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const daemons = await ensureLibvirtDaemons();
    console.log(`libvirt daemons started by this test: ${daemons.started.join(", ") || "none"}`);
    const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_libvirt_groups_" });
    await Deno.chmod(tmp, 0o755); // QEMU runs as libvirt-qemu: it must reach the image.
    const image = `${tmp}/disk.qcow2`;
    let domain: Awaited<ReturnType<typeof createDomain>> | undefined;
    let exporter: ExporterProcess | undefined;
    let defined = false;
    try {
      await run("/usr/bin/qemu-img", ["create", "-q", "-f", "qcow2", image, String(DISK_BYTES)]);
      await defineShutoff(image, tmp);
      defined = true;
      domain = await createDomain({
        name: NAME,
        uuid: UUID,
        vcpus: 1,
        type: "kvm",
        metadata: "",
        devices: `${disk(image)}${INTERFACE}`,
        memballoon: "<memballoon model='virtio'><stats period='5'/></memballoon>",
      });
      // SeaBIOS reads the (empty) disk's boot sector, a few seconds in. (iPXE's DHCP did not
      // reach the tap within 20 s here, so the network counters are compared as they are.)
      await waitFor(async () => {
        const fields = await virshDomstats(NAME, GROUPS);
        return BigInt(fields.get("block.0.rd.reqs") ?? "0") > 0n;
      }, { what: "the firmware's read of the boot sector", timeoutMs: 60_000 });
      await Deno.writeTextFile(`${tmp}/vm.yaml`, "vm_infos: {}\n");
      exporter = await startExporter([
        LOOPBACK_ANY_PORT,
        "--collector.kvmdebug.dir=/sys/kernel/debug/kvm",
        `--collector.vmmap.path=${tmp}/vm.yaml`,
        "--collector.libvirt",
        `--collector.libvirt.socket=${LIBVIRT_SOCKET_RO}`,
        "--collector.libvirt.timeout=5s",
      ]);
      const text = await scrape(exporter);
      const later = await virshDomstats(NAME, GROUPS);
      strictEqual(seriesValue(text, 'kvm_scrape_collector_success{collector="libvirt"}'), "1");
      for (const reason of ["type", "range", "unnamed", "duplicate", "too_many"]) {
        strictEqual(
          seriesValue(text, `kvm_exporter_libvirt_skipped_values{reason="${reason}"}`),
          "0",
        );
      }
      strictEqual(seriesValue(text, `kvm_vm_state{domain="${NAME}",state="running"}`), "1");
      strictEqual(
        seriesValue(text, `kvm_vm_state_reason{domain="${NAME}",state="running",reason="booted"}`),
        "1",
      );
      strictEqual(later.get("state.state"), "1");
      strictEqual(
        seriesValue(
          text,
          `kvm_vm_block_info{domain="${NAME}",device="vda",path="${image}",bus="virtio"}`,
        ),
        "1",
      );
      strictEqual(
        seriesValue(
          text,
          `kvm_vm_network_info{domain="${NAME}",interface="${TAP}",mac="52:54:00:6b:65:01",model="virtio"}`,
        ),
        "1",
      );
      ok(inUnit(text, `kvm_vm_memory_resident_bytes{domain="${NAME}"}`, "KiB") > 0n, "rss");
      // A stats period without a guest driver: libvirt says last-update 0, which means never.
      strictEqual(later.get("balloon.last-update"), "0");
      strictEqual(
        seriesValue(text, `kvm_vm_memory_stats_update_timestamp_seconds{domain="${NAME}"}`),
        undefined,
      );
      compareWithVirsh(text, later);
      // docs/metrics.md's cardinality: 9 state + 3 CPU + 3 balloon + 12 for the disk + 9 for the tap.
      const own = text.split("\n").filter((l) =>
        /^kvm_vm_(state|cpu|memory|block|network)/.test(l) && l.includes(`domain="${NAME}"`)
      );
      strictEqual(own.length, 36, own.join("\n"));

      // The shut-off domain: its state and its disk's size, no CPU time.
      const off = await virshDomstats(OFF_NAME, GROUPS);
      const libvirtd = Deno.readTextFileSync(`/proc/${daemons.libvirtdPid()}/stat`);
      const [utime, stime] = libvirtd.slice(libvirtd.lastIndexOf(")") + 2).split(" ").slice(11, 13);
      console.log(`libvirtd's own CPU time: user ${utime} ticks, system ${stime} ticks`);
      console.log(
        `shut-off domain: virsh ${[...off].map(([k, v]) => `${k}=${v}`).join(" ")}; ` +
          `exporter: ${text.split("\n").filter((l) => l.includes(OFF_NAME)).join("; ")}, capacity ${
            seriesValue(text, `kvm_vm_block_capacity_bytes{domain="${OFF_NAME}",device="vda"}`)
          }`,
      );
      strictEqual(off.get("state.state"), "5");
      strictEqual(seriesValue(text, `kvm_vm_state{domain="${OFF_NAME}",state="shutoff"}`), "1");
      strictEqual(
        seriesValue(text, `kvm_vm_cpu_time_seconds_total{domain="${OFF_NAME}"}`),
        undefined,
      );
      const offCapacity = seriesValue(
        text,
        `kvm_vm_block_capacity_bytes{domain="${OFF_NAME}",device="vda"}`,
      );
      strictEqual(offCapacity, off.get("block.0.capacity"));
    } finally {
      await exporter?.stop();
      await domain?.destroy();
      if (defined) {
        await run("/usr/bin/virsh", ["-c", "qemu:///system", "undefine", OFF_UUID]).catch(() => {});
      }
      await Deno.remove(tmp, { recursive: true });
      await daemons.stop();
    }
  },
});
