import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { type DomainStats, parseDomainStats } from "../../src/libvirt/domain_stats.ts";
import { LibvirtClient, LibvirtError } from "../../src/libvirt/libvirt_client.ts";
import { parseNovaMetadata } from "../../src/libvirt/nova_metadata.ts";
import {
  type DomainStatsRecord,
  type TypedParamValue,
  VIR_CONNECT_GET_ALL_DOMAINS_STATS,
  VIR_DOMAIN_STATS,
} from "../../src/libvirt/remote_protocol.ts";
import { readBoundedText } from "../../src/system/bounded_read.ts";
import { MAX_SCHEDSTAT_BYTES, parseSchedstat } from "../../src/collectors/schedstat.ts";
import {
  type ExporterProcess,
  LOOPBACK_ANY_PORT,
  startExporter,
  waitFor,
} from "../support/exporter_process.ts";
import { buildApp, scrapeText, seriesValue } from "../support/sample_exporter.ts";
import {
  createDomain,
  ensureLibvirtDaemons,
  LIBVIRT_SOCKET_RO,
  libvirtUnavailable,
  monitorBacklog,
  probeLibvirt as probe,
  ssUnavailable,
  vcpuThreads,
  virshDomstats,
} from "../support/libvirt.ts";
import { qemuUnavailable } from "../support/qemu.ts";

const UUID = "6a1f3b2c-0d4e-4f5a-9b8c-7d6e5f4a3b21";
const NAME = "kvm-exporter-test";
const HAS_KVM = (() => {
  try {
    Deno.statSync("/dev/kvm");
    return true;
  } catch {
    return false;
  }
})();
const NOVA = `
    <nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">
      <nova:package version="27.1.0"/>
      <nova:name>web-1 &amp; co</nova:name>
      <nova:flavor name="m1.tiny"><nova:memory>64</nova:memory><nova:vcpus>2</nova:vcpus></nova:flavor>
      <nova:owner>
        <nova:user uuid="5a8e1b3e-4c2d-4f6a-8b9c-0d1e2f3a4b5c">alice</nova:user>
        <nova:project uuid="8f7e6d5c-4b3a-4291-8a7b-6c5d4e3f2a1b">demo</nova:project>
      </nova:owner>
    </nova:instance>`;

const STATS = VIR_DOMAIN_STATS.state | VIR_DOMAIN_STATS.vcpu | VIR_DOMAIN_STATS.vm;
const FLAGS = VIR_CONNECT_GET_ALL_DOMAINS_STATS.active | VIR_CONNECT_GET_ALL_DOMAINS_STATS.nowait;
/** USER_HZ is 100 on Linux: libvirt's `vcpu.N.time` comes in 10 ms ticks. */
const TICK_NS = 10_000_000n;

const unavailable = libvirtUnavailable() ?? qemuUnavailable();
if (unavailable !== undefined) console.log(`libvirt_real_test skipped: ${unavailable}`);

async function ourRecord(client: LibvirtClient): Promise<DomainStatsRecord> {
  const records = await client.getAllDomainStats(STATS, FLAGS);
  const record = records.find((r) => r.domain.uuid === UUID);
  ok(record !== undefined, `no record for ${UUID} among ${records.length}`);
  return record;
}

/** virsh prints booleans as yes/no and numbers as decimal. */
function sameValue(ours: TypedParamValue, virsh: string): boolean {
  if (typeof ours === "boolean") return virsh === (ours ? "yes" : "no");
  if (typeof ours === "string") return virsh === ours;
  return /^-?\d+(\.\d+)?$/.test(virsh);
}

/** Whether a field only grows: cumulative and peak KVM stats and libvirt's vCPU times. */
function isCounter(field: string): boolean {
  return /\.(sum|max)$/.test(field) || /^vcpu\.\d+\.(time|wait|delay)$/.test(field);
}

function compareWithVirsh(record: DomainStatsRecord, virsh: Map<string, string>): void {
  deepStrictEqual(record.params.map(([f]) => f).sort(), [...virsh.keys()].sort());
  for (const [field, value] of record.params) {
    const later = virsh.get(field)!;
    ok(sameValue(value, later), `${field}: ours ${value}, virsh ${later}`);
    if (isCounter(field)) {
      ok(
        BigInt(value as bigint) <= BigInt(later),
        `${field}: ours ${value} > virsh's later ${later}`,
      );
    }
  }
}

function summarize(stats: DomainStats, record: DomainStatsRecord): string {
  const groups = new Map<string, number>();
  for (const [field] of record.params) {
    const group = field.split(".")[0]!;
    groups.set(group, (groups.get(group) ?? 0) + 1);
  }
  return `${record.params.length} params (${
    [...groups].map(([g, n]) => `${g} ${n}`).join(", ")
  }); ${stats.vm.length} VM stats, ${stats.vcpus[0]?.kvm.length ?? 0} KVM stats per vCPU`;
}

/** The debugfs dir the exporter reads: the real one under KVM, else one laid out for TCG. */
async function kvmDirFor(qemuPid: number, tmp: string): Promise<string> {
  if (HAS_KVM) return "/sys/kernel/debug/kvm";
  const vm = `${tmp}/kvm/${qemuPid}-99`;
  for (const [index, tid] of vcpuThreads(qemuPid)) {
    await Deno.mkdir(`${vm}/vcpu${index}`, { recursive: true });
    await Deno.writeTextFile(`${vm}/vcpu${index}/pid`, `${tid}\n`);
  }
  return `${tmp}/kvm`;
}

async function scrape(exporter: ExporterProcess): Promise<string> {
  const response = await fetch(`${exporter.baseUrl}/metrics`);
  strictEqual(response.status, 200);
  return await response.text();
}

/** A series' value as a BigInt: counters in compat are integers. */
function integer(text: string, series: string): bigint {
  const value = seriesValue(text, series);
  ok(value !== undefined && /^\d+$/.test(value), `${series} = ${value}`);
  return BigInt(value);
}

/** Seconds as exact nanoseconds, from the exposition's decimal. */
function nanoseconds(text: string, series: string): bigint {
  const value = seriesValue(text, series);
  ok(value !== undefined && /^\d+(\.\d{1,9})?$/.test(value), `${series} = ${value}`);
  const [whole, fraction = ""] = value.split(".");
  return BigInt(whole!) * 1_000_000_000n + BigInt(fraction.padEnd(9, "0"));
}

/** Every counter libvirt reports for the domain, checked against the exporter's scrape before. */
function compareCounters(text: string, virsh: Map<string, string>, domain: string): number {
  let compared = 0;
  const sums = new Map<string, bigint>();
  for (const [field, later] of virsh) {
    const match = /^vcpu\.(\d+)\.([a-z0-9_]+)\.sum$/.exec(field);
    if (match === null) continue;
    const [, vcpu, stat] = match;
    sums.set(stat!, (sums.get(stat!) ?? 0n) + BigInt(later));
    const ours = integer(text, `kvm_stat_vcpu_${stat}_count{domain="${domain}",vcpu="${vcpu}"}`);
    ok(ours <= BigInt(later), `${field}: exporter ${ours} > virsh's later ${later}`);
    compared++;
  }
  for (const [stat, later] of sums) {
    const ours = integer(text, `kvm_stat_${stat}_count{domain="${domain}"}`);
    ok(ours <= later, `VM sum of ${stat}: exporter ${ours} > virsh's later ${later}`);
  }
  return compared;
}

/** vCPU times: delay between libvirt's two readings, CPU time within them give or take 2 ticks. */
function agreeWithLibvirt(text: string, before: Map<string, string>, after: Map<string, string>) {
  const deltas: string[] = [];
  for (const vcpu of [0, 1]) {
    const labels = `{domain="${NAME}",vcpu="${vcpu}"}`;
    const cpu = nanoseconds(text, `kvm_vcpu_cpu_seconds_total${labels}`);
    const delay = nanoseconds(text, `kvm_vcpu_delay_seconds_total${labels}`);
    const field = (fields: Map<string, string>, name: string) =>
      BigInt(fields.get(`vcpu.${vcpu}.${name}`)!);
    const [timeBefore, timeAfter] = [field(before, "time"), field(after, "time")];
    const [delayBefore, delayAfter] = [field(before, "delay"), field(after, "delay")];
    ok(delayBefore <= delay && delay <= delayAfter, `vCPU ${vcpu} delay ${delay}`);
    ok(timeBefore <= cpu, `vCPU ${vcpu}: libvirt's earlier time ${timeBefore} > ours ${cpu}`);
    ok(cpu <= timeAfter + 2n * TICK_NS, `vCPU ${vcpu}: ours ${cpu} > libvirt's later + 2 ticks`);
    deltas.push(
      `vCPU ${vcpu}: cpu − libvirt's earlier time ${
        (cpu - timeBefore) / 1000n
      } µs, libvirt's later − cpu ${(timeAfter - cpu) / 1000n} µs; delay − earlier ${
        (delay - delayBefore) / 1000n
      } µs, later − delay ${(delayAfter - delay) / 1000n} µs`,
    );
  }
  console.log(deltas.join("\n"));
}

/** Prints the libvirt collector's time per scrape next to kvm_stat's, over 10 scrapes. */
async function measure(exporter: ExporterProcess): Promise<void> {
  const times = { libvirt: [] as number[], kvm_stat: [] as number[] };
  for (let i = 0; i < 10; i++) {
    const text = await scrape(exporter);
    for (const collector of ["libvirt", "kvm_stat"] as const) {
      const series = `kvm_scrape_collector_duration_seconds{collector="${collector}"}`;
      times[collector].push(Number(seriesValue(text, series)) * 1000);
    }
  }
  const median = (values: number[]) => values.sort((a, b) => a - b)[5]!.toFixed(2);
  console.log(
    `collector time per scrape, median of 10: libvirt ${median(times.libvirt)} ms, kvm_stat ${
      median(times.kvm_stat)
    } ms`,
  );
}

/** The same host in the prometheus scheme: the VM's exits under lockdown, vCPU times. */
async function checkPrometheusScheme(args: string[]): Promise<void> {
  const { app } = await buildApp([...args, "--metrics.naming=prometheus"]);
  const text = await scrapeText(app);
  ok(seriesValue(text, `kvm_vm_exits_total{domain="${NAME}"}`) !== undefined, "kvm_vm_exits_total");
  ok(seriesValue(text, `kvm_vcpu_delay_seconds_total{domain="${NAME}",vcpu="0"}`) !== undefined);
}

Deno.test({
  name: "LibvirtClient against real libvirtd: stats, XML, schedstat, a libvirtd kill",
  ignore: unavailable !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const daemons = await ensureLibvirtDaemons();
    console.log(`libvirt daemons started by this test: ${daemons.started.join(", ") || "none"}`);
    const client = new LibvirtClient({ path: LIBVIRT_SOCKET_RO, timeoutMs: 10_000 });
    let domain: Awaited<ReturnType<typeof createDomain>> | undefined;
    const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_libvirt_real_" });
    let exporter: ExporterProcess | undefined;
    try {
      domain = await createDomain({
        name: NAME,
        uuid: UUID,
        vcpus: 2,
        type: HAS_KVM ? "kvm" : "qemu",
        metadata: NOVA,
      });
      const qemuPid = domain.pid;
      await waitFor(() => vcpuThreads(qemuPid).size === 2, { what: "two vCPU threads" });

      await t.step("stats match virsh domstats taken right after", async () => {
        const record = await ourRecord(client);
        const virsh = await virshDomstats(NAME, ["--vm", "--vcpu", "--state"]);
        compareWithVirsh(record, virsh);
        const stats = parseDomainStats(record);
        console.log(`libvirt returned ${summarize(stats, record)}`);
        deepStrictEqual(stats.problems, []);
        strictEqual(stats.name, NAME);
        strictEqual(stats.state, 1);
        strictEqual(stats.vcpuCurrent, 2);
        deepStrictEqual(stats.vcpus.map((v) => v.index), [0, 1]);
        for (const vcpu of stats.vcpus) {
          ok(vcpu.timeNs !== undefined && vcpu.delayNs !== undefined && vcpu.waitNs !== undefined);
        }
        if (HAS_KVM) {
          ok(stats.vm.some((s) => s.name === "remote_tlb_flush" && s.type === "sum"));
          for (const vcpu of stats.vcpus) {
            ok(vcpu.kvm.some((s) => s.name === "exits" && s.type === "sum"));
            ok(vcpu.kvm.some((s) => s.name === "blocking" && s.type === "cur"));
          }
        }
      });

      await t.step(
        "20 calls on one reused connection: the domain each time, its CPU time never back",
        async () => {
          const times: number[] = [];
          let cpuNs = 0n;
          for (let i = 0; i < 20; i++) {
            const start = performance.now();
            const stats = parseDomainStats(await ourRecord(client));
            times.push(performance.now() - start);
            const now = stats.vcpus[0]?.timeNs;
            ok(typeof now === "bigint" && now >= cpuNs, `vcpu.0.time ${now} after ${cpuNs}`);
            cpuNs = now;
          }
          times.sort((a, b) => a - b);
          console.log(
            `get-all-domain-stats round trip: median ${times[10]!.toFixed(2)} ms, max ${
              times[19]!.toFixed(2)
            } ms (20 calls, 1 domain)`,
          );
        },
      );

      await t.step(
        "a stats group the daemon lacks is dropped, not refused (libvirt < 8.9 and VM)",
        async () => {
          const unknownGroup = 1 << 15;
          const records = await client.getAllDomainStats(
            VIR_DOMAIN_STATS.state | unknownGroup,
            FLAGS,
          );
          const record = records.find((r) => r.domain.uuid === UUID)!;
          deepStrictEqual(record.params.map(([f]) => f), ["state.state", "state.reason"]);
          // Only VIR_CONNECT_GET_ALL_DOMAINS_STATS_ENFORCE_STATS (1 << 31) makes it an error.
          const error = await client.getAllDomainStats(unknownGroup, FLAGS | 0x80000000).then(
            () => undefined,
            (e: unknown) => e,
          );
          ok(error instanceof LibvirtError && error.reason === "remote", String(error));
          ok(/Stats types bits 0x8000 are not supported/.test(error.message), error.message);
        },
      );

      await t.step("the domain XML carries the Nova metadata", async () => {
        const record = await ourRecord(client);
        deepStrictEqual(parseNovaMetadata(await client.getDomainXml(record.domain)), {
          name: "web-1 & co",
          flavorName: "m1.tiny",
          userName: "alice",
          userUuid: "5a8e1b3e-4c2d-4f6a-8b9c-0d1e2f3a4b5c",
          projectName: "demo",
          projectUuid: "8f7e6d5c-4b3a-4291-8a7b-6c5d4e3f2a1b",
        });
      });

      await t.step(
        "schedstat agrees with vcpu.N.delay (same file) and vcpu.N.time (ticks)",
        async () => {
          const threads = vcpuThreads(qemuPid);
          const before = parseDomainStats(await ourRecord(client));
          const ours = await Promise.all(
            [0, 1].map(async (i) =>
              parseSchedstat(
                await readBoundedText(
                  `/proc/${qemuPid}/task/${threads.get(i)!}/schedstat`,
                  MAX_SCHEDSTAT_BYTES,
                ),
              )
            ),
          );
          const after = parseDomainStats(await ourRecord(client));
          for (const i of [0, 1]) {
            const [b, s, a] = [before.vcpus[i]!, ours[i]!, after.vcpus[i]!];
            // libvirt reads run_delay from the same schedstat: ours lies between its two readings.
            ok(b.delayNs! <= s.delayNs && s.delayNs <= a.delayNs!, `vCPU ${i} delay`);
            // libvirt's time is the thread's utime + stime in ticks, each rounded down.
            strictEqual(b.timeNs! % TICK_NS, 0n, `vCPU ${i} time is in ticks`);
            ok(b.timeNs! <= s.cpuNs, `vCPU ${i}: libvirt time ${b.timeNs} > schedstat ${s.cpuNs}`);
            ok(
              s.cpuNs <= a.timeNs! + 2n * TICK_NS,
              `vCPU ${i}: schedstat ${s.cpuNs} > libvirt's later ${a.timeNs} + 2 ticks`,
            );
          }
        },
      );

      await t.step(
        "the read-only socket needs exactly read, write and unix: net permission",
        async () => {
          const socket = LIBVIRT_SOCKET_RO;
          const answer = await probe([
            `--allow-read=${socket}`,
            `--allow-write=${socket}`,
            `--allow-net=unix:${socket}`,
          ], socket);
          // This test's domain, and any other test's running beside it (tests run in parallel).
          ok(typeof answer.records === "number" && answer.records >= 1, JSON.stringify(answer));
        },
      );

      await t.step({
        name: "NOWAIT skips what needs the domain job while another call holds it",
        ignore: ssUnavailable() !== undefined,
        async fn() {
          // A stopped QEMU never answers its monitor: a read-write call that queries it holds
          // the domain's job until QEMU continues.
          Deno.kill(qemuPid, "SIGSTOP");
          const holder = new Deno.Command("/usr/bin/virsh", {
            args: ["-c", "qemu:///system", "qemu-monitor-command", NAME, "--hmp", "info status"],
            stdout: "null",
            stderr: "null",
          }).spawn();
          try {
            await waitFor(async () => await monitorBacklog(qemuPid) > 0, {
              what: "virsh's command pending on the stopped QEMU's monitor",
            });
            const fields = (await ourRecord(client)).params.map(([f]) => f);
            ok(fields.includes("state.state") && fields.includes("vcpu.1.time"), fields.join(" "));
            deepStrictEqual(fields.filter((f) => /\.(sum|cur|max)$/.test(f)), []);
            console.log(
              `with the job busy, NOWAIT returned ${fields.length} fields: ${fields.join(" ")}`,
            );
          } finally {
            Deno.kill(qemuPid, "SIGCONT");
            await holder.status;
          }
          // The job is free again: the KVM stats are back.
          await waitFor(async () => (await ourRecord(client)).params.length > 100, {
            what: "every field once the job is free",
          });
        },
      });

      await t.step(
        "the exporter with --collector.libvirt: names, counters ≤ virsh's, vCPU times vs libvirt's",
        async () => {
          const args = [
            `--collector.kvmdebug.dir=${await kvmDirFor(qemuPid, tmp)}`,
            `--collector.vmmap.path=${tmp}/vm.yaml`,
            "--collector.libvirt",
            `--collector.libvirt.socket=${LIBVIRT_SOCKET_RO}`,
            "--collector.libvirt.timeout=5s",
          ];
          await Deno.writeTextFile(`${tmp}/vm.yaml`, "vm_infos: {}\n");
          exporter = await startExporter([LOOPBACK_ANY_PORT, ...args]);
          const before = await virshDomstats(NAME, ["--vcpu"]);
          const text = await scrape(exporter);
          const after = await virshDomstats(NAME, ["--vm", "--vcpu"]);
          strictEqual(seriesValue(text, 'kvm_scrape_collector_success{collector="libvirt"}'), "1");
          const info = text.split("\n").find((l) => l.startsWith(`kvm_vm_info{domain="${NAME}"`));
          ok(info !== undefined, "kvm_vm_info of the domain");
          for (
            const label of [
              `uuid="${UUID}"`,
              `libvirt_name="${NAME}"`,
              'nova_name="web-1 & co"',
              'nova_project="demo"',
              'nova_flavor="m1.tiny"',
            ]
          ) ok(info.includes(label), `${label} in ${info}`);
          if (HAS_KVM) {
            const compared = compareCounters(text, after, NAME);
            console.log(`${compared} per-vCPU counters and their VM sums ≤ virsh's later reading`);
            ok(compared > 0);
          }
          agreeWithLibvirt(text, before, after);
          await measure(exporter);
          if (HAS_KVM) await checkPrometheusScheme(args);
        },
      );

      await t.step({
        name: "a killed libvirtd fails the call cleanly; the client recovers when it is back",
        ignore: !daemons.started.includes("libvirtd"),
        async fn() {
          await ourRecord(client);
          await daemons.killLibvirtd();
          const error = await client.getAllDomainStats(STATS, FLAGS).then(
            () => undefined,
            (e: unknown) => e,
          );
          ok(error instanceof LibvirtError, String(error));
          ok(["refused", "closed"].includes(error.reason), error.message);
          ok(!error.message.includes("\n"));
          console.log(`with libvirtd killed: ${error.reason}: ${error.message}`);
          if (exporter !== undefined) {
            const text = await scrape(exporter);
            strictEqual(
              seriesValue(text, 'kvm_scrape_collector_success{collector="libvirt"}'),
              "0",
            );
            strictEqual(seriesValue(text, 'kvm_exporter_libvirt_errors{reason="refused"}'), "1");
            strictEqual(
              seriesValue(text, 'kvm_scrape_collector_success{collector="kvm_stat"}'),
              "1",
            );
            strictEqual(
              seriesValue(text, 'kvm_scrape_collector_success{collector="vcpu_time"}'),
              "1",
            );
            ok(seriesValue(text, `kvm_vcpu_cpu_seconds_total{domain="${NAME}",vcpu="1"}`));
            ok(text.includes(`libvirt_name="${NAME}"`), "the names stay while the VM runs");
          }
          await daemons.startLibvirtd();
          // libvirtd re-attaches to the running QEMU; the same client reconnects.
          await waitFor(async () => (await ourRecord(client)).params.length > 0, {
            what: "stats after the restart",
            timeoutMs: 30_000,
          });
          const running = exporter;
          if (running !== undefined) {
            await waitFor(async () => {
              const text = await scrape(running);
              return seriesValue(text, 'kvm_scrape_collector_success{collector="libvirt"}') === "1";
            }, { what: "the libvirt collector to recover by itself", timeoutMs: 30_000 });
          }
        },
      });
    } finally {
      await exporter?.stop();
      client.close();
      await Deno.remove(tmp, { recursive: true });
      await domain?.destroy();
      await daemons.stop();
    }
  },
});
