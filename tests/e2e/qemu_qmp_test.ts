/**
 * The qmp collector against real QEMU monitors: sockets found on the real
 * command lines, a monitor held by another client, QEMU killed mid-scrape.
 * Under KVM the stats themselves are checked too (exits exported for every
 * VM and vCPU, growing between scrapes); under TCG, QEMU answers query-stats
 * with no KVM stats, so only the protocol path is checked there.
 *
 * @module
 */

import { ok, strictEqual } from "node:assert/strict";
import { startExporter, waitFor } from "../support/exporter_process.ts";
import { type FakeQmp, startFakeQmp } from "../support/fake_qmp.ts";
import { type QemuVm, startQemu } from "../support/qemu.ts";
import { seriesValue } from "../support/sample_exporter.ts";
import {
  type Backend,
  kvmBackend,
  ownVmsExporterArgs,
  tcgBackend,
} from "../support/vm_backends.ts";
import { runStateOf } from "../../src/qmp/run_state.ts";

const TIMEOUT_MS = 1000;

/** Connects to a monitor and reads its greeting, holding it the way another tool would. */
async function holdMonitor(path: string): Promise<Deno.UnixConn> {
  const conn = await Deno.connect({ transport: "unix", path });
  const buffer = new Uint8Array(4096);
  let text = "";
  while (!text.includes("\n")) {
    const n = await conn.read(buffer);
    if (n === null) throw new Error("monitor closed before its greeting");
    text += new TextDecoder().decode(buffer.subarray(0, n));
  }
  return conn;
}

function errorsOf(text: string, domain: string): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const reason of ["timeout", "refused", "protocol", "other"]) {
    out[reason] = seriesValue(
      text,
      `kvm_exporter_qmp_errors{domain="${domain}",reason="${reason}"}`,
    );
  }
  return out;
}

function exitsOf(text: string, domain: string): bigint | undefined {
  const value = seriesValue(text, `kvm_stat_exits_count{domain="${domain}"}`);
  return value === undefined ? undefined : BigInt(value);
}

function checkKvmStats(text: string, domain: string, vcpus: number): void {
  ok(exitsOf(text, domain) !== undefined, `exits of ${domain}`);
  for (let i = 0; i < vcpus; i++) {
    ok(
      seriesValue(text, `kvm_stat_vcpu_exits_count{domain="${domain}",vcpu="${i}"}`) !== undefined,
      `exits of ${domain} vCPU ${i}`,
    );
  }
}

function scenario(backend: Backend): void {
  if (backend.skip !== undefined) {
    console.log(`qemu_qmp_test [${backend.name}]: skipped: ${backend.skip}`);
  }
  Deno.test({
    name:
      `main.ts --collector.qmp [${backend.name}] queries real QEMU monitors, each VM on its own`,
    ignore: backend.skip !== undefined,
    async fn() {
      const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_qmp_e2e_" });
      const vms: QemuVm[] = [];
      try {
        const kvm = await backend.kvmDir(tmp);
        const one = await backend.start(kvm, "one", 1, `${tmp}/one.qmp`);
        vms.push(one.vm);
        const three = await backend.start(kvm, "three", 3, `${tmp}/three.qmp`);
        vms.push(three.vm);
        await Deno.writeTextFile(`${tmp}/vm.yaml`, "# names come from -name\n");

        await using exporter = await startExporter([
          "--web.listen-address=127.0.0.1:0",
          `--collector.kvmdebug.dir=${kvm}`,
          `--collector.vmmap.path=${tmp}/vm.yaml`,
          "--path.procfs=/proc",
          "--collector.qmp",
          `--collector.qmp.timeout=${TIMEOUT_MS}ms`,
        ]);
        const scrape = async (): Promise<string> => {
          const response = await fetch(`${exporter.baseUrl}/metrics`);
          strictEqual(response.status, 200);
          return await response.text();
        };

        // 1. Both monitors answer; under KVM every VM and vCPU has exits, and they grow.
        const first = await scrape();
        strictEqual(seriesValue(first, 'kvm_scrape_collector_success{collector="qmp"}'), "1");
        // The sockets come from each QEMU's -qmp, and each QEMU holds its own: none refused.
        for (const reason of ["not_socket", "not_listening", "ambiguous", "no_owner"]) {
          strictEqual(
            seriesValue(first, `kvm_exporter_qmp_skipped_sockets{reason="${reason}"}`),
            "0",
            reason,
          );
        }
        for (const domain of ["one", "three"]) {
          strictEqual(
            JSON.stringify(errorsOf(first, domain)),
            JSON.stringify({ timeout: "0", refused: "0", protocol: "0", other: "0" }),
            domain,
          );
        }
        if (backend.name === "kvm") {
          checkKvmStats(first, "one", 1);
          checkKvmStats(first, "three", 3);
          await waitFor(
            async () => exitsOf(await scrape(), "three")! > exitsOf(first, "three")!,
            {
              timeoutMs: 10_000,
              what: "exits of VM three to grow",
            },
          );
        }

        // 2. Another client holds one's monitor: one is skipped within the timeout, three is not.
        const held = await holdMonitor(`${tmp}/one.qmp`);
        try {
          const text = await scrape();
          strictEqual(errorsOf(text, "one").timeout, "1");
          strictEqual(errorsOf(text, "three").timeout, "0");
          if (backend.name === "kvm") checkKvmStats(text, "three", 3);
        } finally {
          held.close();
        }

        // 3. QEMU killed while a scrape waits on its held monitor: nothing else is lost.
        const held2 = await holdMonitor(`${tmp}/one.qmp`);
        try {
          const pending = scrape();
          // Whether the kill lands before or after the exporter connects, the outcome below holds.
          await new Promise((resolve) => setTimeout(resolve, 100));
          await backend.stop(one.vm, one.dir);
          const text = await pending;
          strictEqual(seriesValue(text, 'kvm_scrape_collector_success{collector="qmp"}'), "1");
          strictEqual(seriesValue(text, 'kvm_scrape_collector_success{collector="kvm_stat"}'), "1");
          strictEqual(errorsOf(text, "three").timeout, "0");
          strictEqual(errorsOf(text, "three").protocol, "0");
          if (backend.name === "kvm") checkKvmStats(text, "three", 3);
        } finally {
          held2.close();
        }
        const after = await scrape();
        ok(!after.includes('domain="one"'), "the killed VM is gone from the next scrape");
        strictEqual(errorsOf(after, "three").refused, "0");
      } finally {
        await Promise.all(vms.map((vm) => vm.stop()));
        await Deno.remove(tmp, { recursive: true });
      }
    },
  });
}

scenario(kvmBackend);
scenario(tcgBackend);

if (kvmBackend.skip !== undefined) {
  console.log(`qemu_qmp_test [glob]: skipped: ${kvmBackend.skip}`);
}

Deno.test({
  name:
    "main.ts --collector.qmp.socket-glob takes a real QEMU's socket by its fds, not an impostor's",
  ignore: kvmBackend.skip !== undefined,
  async fn() {
    const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_qmp_glob_e2e_" });
    let vm: QemuVm | undefined;
    let impostor: FakeQmp | undefined;
    try {
      await Deno.mkdir(`${tmp}/run`);
      // The monitor comes from a config file, so it is not on QEMU's command line: only the
      // kernel's evidence (its listening socket held in QEMU's fds) ties it to the VM.
      await Deno.writeTextFile(
        `${tmp}/monitor.cfg`,
        `[chardev "stats"]\n  backend = "socket"\n  path = "${tmp}/run/vm.qmp"\n` +
          `  server = "on"\n  wait = "off"\n[mon "stats"]\n  chardev = "stats"\n` +
          `  mode = "control"\n`,
      );
      vm = await startQemu({
        name: "globbed",
        smp: 2,
        accel: "kvm",
        readConfig: `${tmp}/monitor.cfg`,
      });
      await waitFor(() => Deno.stat(`${tmp}/run/vm.qmp`).then(() => true, () => false), {
        timeoutMs: 15_000,
        what: "QEMU's monitor socket",
      });
      // First in path order, claiming QEMU's main thread as its vCPU: the old matching took it.
      impostor = startFakeQmp(`${tmp}/run/000.qmp`, { behaviour: "qemu", threadIds: [vm.pid] });
      // Only this VM: the kernel's debugfs holds every test's VMs, whose monitors serve one client.
      await Deno.writeTextFile(`${tmp}/vm.yaml`, `vm_infos:\n  globbed: {pid: ${vm.pid}}\n`);
      await using exporter = await startExporter([
        "--web.listen-address=127.0.0.1:0",
        "--collector.kvmdebug.dir=/sys/kernel/debug/kvm",
        `--collector.vmmap.path=${tmp}/vm.yaml`,
        "--collector.vmmap.only-listed",
        "--path.procfs=/proc",
        "--collector.qmp",
        `--collector.qmp.socket-glob=${tmp}/run/*.qmp`,
      ]);
      const scrape = async (): Promise<string> =>
        await (await fetch(`${exporter.baseUrl}/metrics`)).text();
      let text = "";
      await waitFor(async () => (text = await scrape()).includes('kvm_vm_info{domain="globbed"'), {
        timeoutMs: 15_000,
        what: "the VM to be found",
      });
      checkKvmStats(text, "globbed", 2);
      strictEqual(errorsOf(text, "globbed").protocol, "0");
      strictEqual(seriesValue(text, 'kvm_exporter_qmp_skipped_sockets{reason="no_owner"}'), "1");
      strictEqual(impostor.connections, 0, "the impostor is never queried");
      ok(exporter.stderrText().includes("000.qmp"), exporter.stderrText());
    } finally {
      await vm?.stop();
      await impostor?.close();
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

/** A QMP command for {@linkcode rawQmp}. */
type RawCommand = { execute: string; arguments?: Record<string, unknown> };

/**
 * Runs QMP commands on a monitor with a raw connection of the test's own (not the exporter's
 * client, which it checks), and closes it.
 */
async function rawQmp(path: string, commands: RawCommand[]): Promise<unknown[]> {
  const conn = await Deno.connect({ transport: "unix", path });
  try {
    const lines = conn.readable.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    const nextReply = async (): Promise<Record<string, unknown>> => {
      while (true) {
        const end = buffer.indexOf("\n");
        if (end !== -1) {
          const message = JSON.parse(buffer.slice(0, end)) as Record<string, unknown>;
          buffer = buffer.slice(end + 1);
          if (!("event" in message)) return message;
          continue;
        }
        const { value, done } = await lines.read();
        if (done) throw new Error("monitor closed");
        buffer += value;
      }
    };
    await nextReply(); // The greeting.
    const send = async (command: RawCommand) => {
      await conn.write(new TextEncoder().encode(`${JSON.stringify(command)}\n`));
      return (await nextReply()).return;
    };
    await send({ execute: "qmp_capabilities" });
    const replies: unknown[] = [];
    for (const command of commands) replies.push(await send(command));
    lines.releaseLock();
    return replies;
  } finally {
    conn.close();
  }
}

/** The host's counters of one interface, from /proc/net/dev: [rx bytes, rx packets, tx bytes, tx packets]. */
async function hostCounters(ifname: string): Promise<bigint[]> {
  const text = await Deno.readTextFile("/proc/net/dev");
  const line = text.split("\n").find((l) => l.trim().startsWith(`${ifname}:`));
  if (line === undefined) throw new Error(`${ifname} is not in /proc/net/dev`);
  const f = line.slice(line.indexOf(":") + 1).trim().split(/\s+/).map(BigInt);
  return [f[0]!, f[1]!, f[8]!, f[9]!];
}

async function run(program: string, args: string[]): Promise<{ ok: boolean; stderr: string }> {
  const out = await new Deno.Command(program, { args, stdout: "null", stderr: "piped" }).output();
  return { ok: out.success, stderr: new TextDecoder().decode(out.stderr).trim() };
}

type Blockstats = { qdev?: string; device?: string; stats: Record<string, number> }[];

/**
 * A VM with a virtio disk, a balloon and a tap: the exporter's values against QMP's and the tap's
 * own, read directly before and after a scrape. Under TCG the NIC's iPXE sends DHCP, so the
 * guest's transmit counters are waited for; under this test host's KVM, iPXE stops the guest with
 * a KVM internal error first (a paused VM, reason internal-error), so they are compared as they
 * are.
 */
function devicesScenario(backend: Backend): void {
  Deno.test({
    name:
      `main.ts --collector.qmp [${backend.name}] on a real QEMU with a virtio disk and a tap: state, disk, balloon and network agree with QMP and /proc/net/dev`,
    ignore: backend.skip !== undefined,
    async fn() {
      const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_qmp_devices_e2e_" });
      const tap = `kxt${Deno.pid % 100_000}${backend.name[0]}`;
      let vm: QemuVm | undefined;
      let tapMade = false;
      try {
        const made = await run("qemu-img", [
          "create",
          "-q",
          "-f",
          "qcow2",
          `${tmp}/disk.qcow2`,
          "16M",
        ]);
        ok(made.ok, made.stderr);
        const tuntap = await run("ip", ["tuntap", "add", "dev", tap, "mode", "tap"]);
        tapMade = tuntap.ok;
        if (tapMade) {
          const up = await run("ip", ["link", "set", "dev", tap, "up"]);
          ok(up.ok, up.stderr);
        } else {
          console.log(
            `qemu_qmp_test [devices, ${backend.name}]: no tap device (${tuntap.stderr}): testing the rest`,
          );
        }
        const kvm = await backend.kvmDir(tmp);
        vm = (await backend.start(kvm, "devices", 1, `${tmp}/vm.qmp`, [
          "-drive",
          `file=${tmp}/disk.qcow2,if=none,id=drive0,format=qcow2`,
          "-device",
          "virtio-blk-pci,drive=drive0,id=vd0,bootindex=1",
          "-device",
          "virtio-balloon-pci,id=balloon0",
          ...(tapMade
            ? [
              "-netdev",
              `tap,id=net0,ifname=${tap},script=no,downscript=no`,
              "-device",
              "virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56,id=nic0,bootindex=2",
            ]
            : []),
        ])).vm;
        await Deno.writeTextFile(`${tmp}/vm.yaml`, `vm_infos:\n  devices: {pid: ${vm.pid}}\n`);
        await using exporter = await startExporter([
          ...ownVmsExporterArgs({ kvmDir: kvm, vmYaml: `${tmp}/vm.yaml` }),
        ]);
        const scrape = async (): Promise<string> =>
          await (await fetch(`${exporter.baseUrl}/metrics`)).text();
        const value = (text: string, series: string): bigint => {
          const v = seriesValue(text, series);
          if (v === undefined) throw new Error(`no ${series} in the scrape`);
          return BigInt(v);
        };
        const disk = 'domain="devices",device="vd0"';
        const nic = `domain="devices",interface="${tap}"`;
        // SeaBIOS reads its boot disk; under TCG iPXE then sends DHCP requests. The tap counts only
        // what QEMU reads from it or writes to it.
        const dhcp = tapMade && backend.name === "tcg";
        let text = "";
        await waitFor(async () => {
          text = await scrape();
          const reads = seriesValue(text, `kvm_vm_block_read_requests_total{${disk}}`);
          const sent = seriesValue(text, `kvm_vm_network_transmit_packets_total{${nic}}`);
          return reads !== undefined && BigInt(reads) > 0n &&
            (!tapMade || text.includes(`kvm_vm_network_info{${nic}`)) &&
            (!dhcp || (sent !== undefined && BigInt(sent) > 0n));
        }, { timeoutMs: 60_000, what: "the firmware's disk reads (and DHCP under TCG)" });

        // Each counter lies between a direct reading before the scrape and one after it.
        const blockOf = async (): Promise<Record<string, number>> => {
          const [stats] = await rawQmp(vm!.qmpSocket!, [{ execute: "query-blockstats" }]) as [
            Blockstats,
          ];
          const entry = stats.find((s) => s.qdev?.includes("/vd0/") || s.qdev === "vd0");
          if (entry === undefined) throw new Error(`no vd0 in ${JSON.stringify(stats)}`);
          return entry.stats;
        };
        const before = await blockOf();
        const netBefore = tapMade ? await hostCounters(tap) : [];
        text = await scrape();
        const netAfter = tapMade ? await hostCounters(tap) : [];
        const after = await blockOf();
        const compared: string[] = [];
        for (
          const [family, field] of [
            ["kvm_vm_block_read_bytes_total", "rd_bytes"],
            ["kvm_vm_block_read_requests_total", "rd_operations"],
            ["kvm_vm_block_write_bytes_total", "wr_bytes"],
            ["kvm_vm_block_write_requests_total", "wr_operations"],
            ["kvm_vm_block_flush_requests_total", "flush_operations"],
          ] as const
        ) {
          const ours = value(text, `${family}{${disk}}`);
          ok(
            BigInt(before[field]!) <= ours && ours <= BigInt(after[field]!),
            `${family}: ${before[field]} <= ${ours} <= ${after[field]}`,
          );
          compared.push(`${field} ${before[field]} <= ${ours} <= ${after[field]}`);
        }
        ok(value(text, `kvm_vm_block_read_bytes_total{${disk}}`) > 0n, "SeaBIOS read the disk");
        // The state is QEMU's status as query-status gives it, in libvirt's names (the firmware
        // may have given up and shut the guest down by now: -no-reboot).
        const [status] = await rawQmp(vm.qmpSocket!, [{ execute: "query-status" }]) as [
          { status: string },
        ];
        const expected = runStateOf(status.status);
        const reason = text.split("\n").find((l) => l.startsWith("kvm_vm_state_reason{"));
        ok(
          reason?.includes(`state="${expected.state}",reason="${expected.reason}"`),
          `${reason} for ${status.status}`,
        );
        strictEqual(
          text.split("\n").filter((l) => l.startsWith("kvm_vm_state{") && l.endsWith(" 1")).length,
          1,
        );
        compared.push(`status ${status.status}: ${reason}`);
        strictEqual(seriesValue(text, 'kvm_vm_memory_balloon_bytes{domain="devices"}'), "67108864");
        // No guest driver, so no polling: no guest memory stats, and the exporter never sets it.
        strictEqual(seriesValue(text, 'kvm_vm_memory_unused_bytes{domain="devices"}'), undefined);
        const [interval] = await rawQmp(vm.qmpSocket!, [{
          execute: "qom-get",
          arguments: {
            path: "/machine/peripheral/balloon0",
            property: "guest-stats-polling-interval",
          },
        }]);
        strictEqual(interval, 0, "the polling interval is left as it was");
        if (tapMade) {
          // The tap's receive is the guest's transmit.
          const pairs = [
            ["kvm_vm_network_transmit_bytes_total", 0],
            ["kvm_vm_network_transmit_packets_total", 1],
            ["kvm_vm_network_receive_bytes_total", 2],
            ["kvm_vm_network_receive_packets_total", 3],
          ] as const;
          for (const [family, i] of pairs) {
            const ours = value(text, `${family}{${nic}}`);
            ok(
              netBefore[i]! <= ours && ours <= netAfter[i]!,
              `${family}: ${netBefore[i]} <= ${ours} <= ${netAfter[i]}`,
            );
            compared.push(`${family} ${netBefore[i]} <= ${ours} <= ${netAfter[i]}`);
          }
          strictEqual(
            seriesValue(
              text,
              `kvm_vm_network_info{${nic},mac="52:54:00:12:34:56",model="virtio-net-pci",netdev="net0"}`,
            ),
            "1",
          );
          // As root the exporter reads QEMU's fds: it holds the tap (its fdinfo's iff).
          for (
            const reason of [
              "not_held",
              "ambiguous",
              "unreadable",
              "blocked",
              "missing",
              "bad_line",
            ]
          ) {
            strictEqual(
              seriesValue(text, `kvm_exporter_tap_problems{reason="${reason}"}`),
              "0",
              reason,
            );
          }
        }
        for (const group of ["status", "block", "balloon"]) {
          for (const reason of ["error_reply", "bad_reply"]) {
            strictEqual(
              seriesValue(text, `kvm_exporter_qmp_problems{group="${group}",reason="${reason}"}`),
              "0",
              `${group} ${reason}`,
            );
          }
        }
        console.log(`qemu_qmp_test [devices, ${backend.name}]: ${compared.join("; ")}`);
      } finally {
        await vm?.stop();
        if (tapMade) await run("ip", ["link", "del", "dev", tap]);
        await Deno.remove(tmp, { recursive: true });
      }
    },
  });
}

devicesScenario(kvmBackend);
devicesScenario(tcgBackend);
