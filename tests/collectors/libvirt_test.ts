/**
 * The libvirt collector against a fake libvirtd: values, precedence under
 * debugfs, UUID matching, the names on `kvm_vm_info`, and every way the peer
 * can fail, each costing the libvirt collector only.
 *
 * @module
 */

import { ok, strictEqual } from "node:assert/strict";
import {
  type FakeLibvirt,
  type FakeLibvirtBehaviour,
  startFakeLibvirt,
} from "../support/fake_libvirt.ts";
import { SAMPLE_LIBVIRT, SAMPLE_UUID } from "../support/fake_libvirt_sample.ts";
import { buildApp, scrapeText, seriesValue } from "../support/sample_exporter.ts";
import { REMOTE_PROC } from "../../src/libvirt/remote_protocol.ts";

/**
 * A debugfs tree as under lockdown (instant stats only): VM "os" (pid 3001, the sample's UUID on
 * its command line) and VM "web-01" (pid 3002, no UUID; libvirt has a domain of that name with
 * another UUID).
 */
async function layOut(tmp: string, socket: string): Promise<string[]> {
  const kvm = `${tmp}/kvm`;
  for (
    const [pid, argv] of [
      [3001, ["qemu-system-x86_64", "-name", "guest=os", "-uuid", SAMPLE_UUID]],
      [3002, ["qemu-system-x86_64", "-name", "guest=web-01"]],
    ] as const
  ) {
    await Deno.mkdir(`${kvm}/${pid}-1/vcpu0`, { recursive: true });
    await Deno.writeTextFile(`${kvm}/${pid}-1/pages_4k`, "100\n");
    await Deno.writeTextFile(`${kvm}/${pid}-1/vcpu0/guest_mode`, "0\n");
    await Deno.mkdir(`${tmp}/proc/${pid}`, { recursive: true });
    await Deno.writeTextFile(`${tmp}/proc/${pid}/cmdline`, `${argv.join("\0")}\0`);
  }
  await Deno.writeTextFile(`${kvm}/pages_4k`, "200\n");
  await Deno.writeTextFile(`${tmp}/none.yaml`, "vm_infos: {}\n");
  return [
    `--collector.kvmdebug.dir=${kvm}`,
    `--collector.vmmap.path=${tmp}/none.yaml`,
    `--path.procfs=${tmp}/proc`,
    "--collector.libvirt",
    `--collector.libvirt.socket=${socket}`,
    "--collector.libvirt.timeout=300ms",
  ];
}

async function withFake(
  behaviour: FakeLibvirtBehaviour,
  fn: (args: string[], fake: FakeLibvirt, tmp: string) => Promise<void>,
): Promise<void> {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_libvirt_" });
  const fake = startFakeLibvirt(`${tmp}/libvirt-sock-ro`, behaviour, SAMPLE_LIBVIRT);
  try {
    await fn(await layOut(tmp, fake.path), fake, tmp);
  } finally {
    await fake.stop();
    await Deno.remove(tmp, { recursive: true });
  }
}

function seriesCount(text: string, prefix: string): number {
  return text.split("\n").filter((l) => l.startsWith(prefix)).length;
}

Deno.test("libvirt collector exports KVM stats by UUID, below debugfs, summed per VM", async () => {
  await withFake("libvirt", async (args, fake) => {
    const { app } = await buildApp(args);
    const text = await scrapeText(app);
    strictEqual(seriesValue(text, 'kvm_scrape_collector_success{collector="libvirt"}'), "1");
    strictEqual(seriesValue(text, 'kvm_exporter_libvirt_errors{reason="timeout"}'), "0");
    // Under lockdown the counters come from libvirt, u64 exact, HELP naming the source.
    strictEqual(
      seriesValue(text, 'kvm_stat_remote_tlb_flush_count{domain="os"}'),
      "18446744073709551615",
    );
    ok(text.includes("# HELP kvm_stat_remote_tlb_flush_count remote_tlb_flush count from libvirt"));
    // Each vCPU stat summed per VM, as debugfs's VM dir does: 1000 + 1001 + 1002 + 1003.
    strictEqual(seriesValue(text, 'kvm_stat_exits_count{domain="os"}'), "4006");
    strictEqual(seriesValue(text, 'kvm_stat_vcpu_exits_count{domain="os",vcpu="3"}'), "1003");
    strictEqual(seriesValue(text, 'kvm_stat_vcpu_blocking_count{domain="os",vcpu="1"}'), "1");
    // debugfs first: pages_4k and vCPU 0's guest_mode are debugfs's; one series each.
    strictEqual(seriesValue(text, 'kvm_stat_pages_4k_count{domain="os"}'), "100");
    strictEqual(seriesCount(text, 'kvm_stat_pages_4k_count{domain="os"}'), 1);
    // By UUID only: the domain named web-01 has another UUID, the stranger no VM.
    strictEqual(seriesCount(text, 'kvm_stat_exits_count{domain="web-01"}'), 0);
    strictEqual(seriesValue(text, 'kvm_stat_pages_4k_count{domain="web-01"}'), "100");
    ok(!text.includes("stranger"));
    ok(
      text.includes(
        `kvm_vm_info{domain="os",pid="3001",kvm_debug_dir="3001-1",name_source="cmdline",uuid="${SAMPLE_UUID}",libvirt_name="instance-0000002a",nova_name="web-1",nova_project="demo",nova_flavor="m1.small"} 1`,
      ),
      text,
    );
    ok(
      text.includes(
        'kvm_vm_info{domain="web-01",pid="3002",kvm_debug_dir="3002-1",name_source="cmdline"} 1',
      ),
    );

    // One connection across scrapes; the XML read once per VM lifetime.
    await scrapeText(app);
    strictEqual(fake.connections, 1);
    strictEqual(fake.calls.filter((p) => p === REMOTE_PROC.domainGetXmlDesc).length, 1);
    strictEqual(fake.calls.filter((p) => p === REMOTE_PROC.connectGetAllDomainStats).length, 2);
  });
});

Deno.test("libvirt collector in the prometheus scheme: counters in seconds, VM sums, booleans", async () => {
  await withFake("libvirt", async (args) => {
    const { app } = await buildApp([...args, "--metrics.naming=prometheus"]);
    const text = await scrapeText(app);
    strictEqual(seriesValue(text, 'kvm_vm_exits_total{domain="os"}'), "4006");
    ok(text.includes("# TYPE kvm_vm_exits_total counter\n"));
    strictEqual(
      seriesValue(text, 'kvm_vcpu_halt_wait_seconds_total{domain="os",vcpu="1"}'),
      "2.000000001",
    );
    // A stat the catalog lacks is typed by libvirt's suffix and the name's _ns.
    strictEqual(
      seriesValue(text, 'kvm_vcpu_new_stat_seconds_total{domain="os",vcpu="0"}'),
      "0.000000005",
    );
    ok(text.includes("# TYPE kvm_vm_mmu_kicks_spared_total counter\n"));
    ok(text.includes("# TYPE kvm_vm_max_mmu_rmap_size gauge\n"));
    strictEqual(seriesValue(text, 'kvm_vcpu_blocking{domain="os",vcpu="1"}'), "1");
    strictEqual(seriesValue(text, 'kvm_vm_pages_4k{domain="os"}'), "100");
  });
});

const FAILURES: { behaviour: FakeLibvirtBehaviour; reason: string }[] = [
  { behaviour: "garbage", reason: "protocol" },
  { behaviour: "huge-length", reason: "protocol" },
  { behaviour: "short-length", reason: "protocol" },
  { behaviour: "mid-frame", reason: "closed" },
  { behaviour: "unknown-type", reason: "protocol" },
  { behaviour: "error", reason: "remote" },
  { behaviour: "silent", reason: "timeout" },
  { behaviour: "refuse-open", reason: "remote" },
];

Deno.test("libvirt collector: a failing libvirtd costs the libvirt collector only, logged once", async (t) => {
  for (const failure of FAILURES) {
    await t.step(failure.behaviour, async () => {
      await withFake(failure.behaviour, async (args) => {
        const { app, logs } = await buildApp(args);
        for (let i = 0; i < 2; i++) {
          const text = await scrapeText(app);
          strictEqual(seriesValue(text, 'kvm_scrape_collector_success{collector="libvirt"}'), "0");
          strictEqual(
            seriesValue(text, `kvm_exporter_libvirt_errors{reason="${failure.reason}"}`),
            "1",
          );
          strictEqual(seriesValue(text, 'kvm_scrape_collector_success{collector="kvm_stat"}'), "1");
          strictEqual(seriesValue(text, 'kvm_stat_pages_4k_count{domain="os"}'), "100");
          strictEqual(seriesValue(text, "kvm_exporter_scrape_timeouts_total"), "0");
          // The VM is still there, with its UUID, without libvirt's names.
          ok(text.includes(`uuid="${SAMPLE_UUID}"}`), "kvm_vm_info keeps the uuid");
        }
        const failed = logs.filter((l) =>
          /level=(warn|error)/.test(l) && l.includes("collector=libvirt")
        );
        strictEqual(failed.length, 1, failed.join("\n"));
        ok(!failed[0]!.slice(0, -1).includes("\n"));
      });
    });
  }
});

Deno.test("libvirt collector: a silent libvirtd costs at most the scrape deadline", async () => {
  await withFake("silent", async (args) => {
    const { exporter } = await buildApp([
      ...args,
      "--collector.libvirt.timeout=60s",
      "--web.scrape-timeout=500ms",
    ]);
    const families = await exporter.scrape();
    const success = families.find((f) => f.name === "kvm_scrape_collector_success")!;
    const libvirt = success.samples.find((s) => s.labels[0]![1] === "libvirt");
    strictEqual(libvirt?.value, 0);
    const kvmStat = success.samples.find((s) => s.labels[0]![1] === "kvm_stat");
    strictEqual(kvmStat?.value, 1);
    const errors = families.find((f) => f.name === "kvm_exporter_libvirt_errors")!;
    const timeout = errors.samples.find((s) => s.labels[0]![1] === "timeout");
    strictEqual(timeout?.value, 1);
  });
});

Deno.test("libvirt collector recovers by itself across a libvirtd restart and an outage", async () => {
  await withFake("libvirt", async (args, first, tmp) => {
    const { app } = await buildApp(args);
    strictEqual(
      seriesValue(await scrapeText(app), 'kvm_scrape_collector_success{collector="libvirt"}'),
      "1",
    );
    // Restarted between scrapes: the idle connection is dead; the call is retried on a new one.
    await first.stop();
    let fake = startFakeLibvirt(`${tmp}/libvirt-sock-ro`, "libvirt", SAMPLE_LIBVIRT);
    try {
      const text = await scrapeText(app);
      strictEqual(seriesValue(text, 'kvm_scrape_collector_success{collector="libvirt"}'), "1");
      strictEqual(seriesValue(text, 'kvm_stat_exits_count{domain="os"}'), "4006");
      // Down: refused at once; back: the next scrape reconnects.
      await fake.stop();
      const down = await scrapeText(app);
      strictEqual(seriesValue(down, 'kvm_scrape_collector_success{collector="libvirt"}'), "0");
      strictEqual(seriesValue(down, 'kvm_exporter_libvirt_errors{reason="refused"}'), "1");
      strictEqual(seriesValue(down, 'kvm_scrape_collector_success{collector="kvm_stat"}'), "1");
      fake = startFakeLibvirt(`${tmp}/libvirt-sock-ro`, "libvirt", SAMPLE_LIBVIRT);
      const back = await scrapeText(app);
      strictEqual(seriesValue(back, 'kvm_scrape_collector_success{collector="libvirt"}'), "1");
      strictEqual(seriesValue(back, 'kvm_exporter_libvirt_errors{reason="refused"}'), "0");
    } finally {
      await fake.stop();
    }
  });
});

Deno.test("libvirt collector: vm.yaml labels win over libvirt's names", async () => {
  await withFake("libvirt", async (args, _fake, tmp) => {
    await Deno.writeTextFile(
      `${tmp}/vm.yaml`,
      'vm_infos:\n  os: {kvm_debug_dir: "3001-1", labels: {nova_project: "from-yaml"}}\n',
    );
    const { app } = await buildApp([...args, `--collector.vmmap.path=${tmp}/vm.yaml`]);
    const text = await scrapeText(app);
    const info = text.split("\n").find((l) => l.startsWith('kvm_vm_info{domain="os"'))!;
    ok(info.includes('nova_project="from-yaml"') && !info.includes('nova_project="demo"'), info);
    ok(info.includes('nova_name="web-1"'), info);
  });
});

Deno.test("libvirt collector reads a domain's XML again when its VM restarts under a new pid", async () => {
  await withFake("libvirt", async (args, fake, tmp) => {
    const { app } = await buildApp(args);
    await scrapeText(app);
    strictEqual(fake.calls.filter((p) => p === REMOTE_PROC.domainGetXmlDesc).length, 1);
    await Deno.rename(`${tmp}/kvm/3001-1`, `${tmp}/kvm/3011-1`);
    await Deno.rename(`${tmp}/proc/3001`, `${tmp}/proc/3011`);
    const text = await scrapeText(app);
    strictEqual(fake.calls.filter((p) => p === REMOTE_PROC.domainGetXmlDesc).length, 2);
    ok(text.includes('pid="3011",kvm_debug_dir="3011-1",name_source="cmdline",uuid="'), text);
    ok(text.includes('libvirt_name="instance-0000002a"'));
    ok(!text.includes('pid="3001"'));
  });
});
