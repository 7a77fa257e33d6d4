/**
 * The libvirt collector against a fake libvirtd: values, precedence under
 * debugfs, UUID matching, the names on `kvm_vm_info`, and every way the peer
 * can fail, each costing the libvirt collector only.
 *
 * @module
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import {
  type FakeLibvirt,
  type FakeLibvirtBehaviour,
  type FakeLibvirtData,
  type FakeParam,
  startFakeLibvirt,
} from "../support/fake_libvirt.ts";
import {
  SAMPLE_LIBVIRT,
  SAMPLE_PARAMS,
  SAMPLE_UUID,
  SHUTOFF_PARAMS,
} from "../support/fake_libvirt_sample.ts";
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
  data: FakeLibvirtData = SAMPLE_LIBVIRT,
): Promise<void> {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_libvirt_" });
  const fake = startFakeLibvirt(`${tmp}/libvirt-sock-ro`, behaviour, data);
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

Deno.test("libvirt collector reports every domain's state, CPU, memory, disks and interfaces", async () => {
  await withFake("libvirt", async (args) => {
    const { app, exporter } = await buildApp(args);
    const text = await scrapeText(app);
    const os = (family: string, labels = "") =>
      seriesValue(text, `${family}{domain="os"${labels}}`);
    // The discovered VM under its own label, not libvirt's instance-0000002a.
    strictEqual(os("kvm_vm_state", ',state="running"'), "1");
    strictEqual(os("kvm_vm_state", ',state="paused"'), "0");
    strictEqual(os("kvm_vm_state_reason", ',state="running",reason="booted"'), "1");
    strictEqual(os("kvm_vm_cpu_time_seconds_total"), "30.500000123");
    strictEqual(os("kvm_vm_cpu_seconds_total", ',mode="user"'), "21");
    strictEqual(os("kvm_vm_cpu_seconds_total", ',mode="system"'), "9");
    // KiB in, bytes out; faults are counts, the update time seconds.
    strictEqual(os("kvm_vm_memory_balloon_bytes"), String(4_194_304 * 1024));
    strictEqual(os("kvm_vm_memory_maximum_bytes"), String(8_388_608 * 1024));
    strictEqual(os("kvm_vm_memory_resident_bytes"), String(1_200_000 * 1024));
    strictEqual(os("kvm_vm_memory_swap_out_bytes_total"), "4096");
    strictEqual(os("kvm_vm_memory_major_faults_total"), "812");
    strictEqual(os("kvm_vm_memory_stats_update_timestamp_seconds"), "1764770000");
    const vda = ',device="vda"';
    strictEqual(os("kvm_vm_block_read_bytes_total", vda), "300000000");
    strictEqual(os("kvm_vm_block_read_seconds_total", vda), "5.000000001");
    strictEqual(os("kvm_vm_block_flush_seconds_total", vda), "0.075");
    strictEqual(os("kvm_vm_block_capacity_bytes", vda), "21474836480");
    // The path is libvirt's, the bus the domain XML's: both in the very first scrape.
    strictEqual(
      os("kvm_vm_block_info", `${vda},path="/var/lib/nova/instances/3c1e8a52/disk",bus="virtio"`),
      "1",
    );
    const tap = ',interface="tap1f4ecfdb-9f"';
    strictEqual(os("kvm_vm_network_receive_bytes_total", tap), "123456");
    strictEqual(os("kvm_vm_network_transmit_packets_total", tap), "900");
    strictEqual(os("kvm_vm_network_receive_drops_total", tap), "2");
    strictEqual(os("kvm_vm_network_info", `${tap},mac="fa:16:3e:4b:1c:2d",model="virtio"`), "1");
    // A shut-off domain no VM has: under its libvirt name, its state and disk sizes.
    strictEqual(seriesValue(text, 'kvm_vm_state{domain="old-vm",state="shutoff"}'), "1");
    strictEqual(
      seriesValue(text, 'kvm_vm_state_reason{domain="old-vm",state="shutoff",reason="shutdown"}'),
      "1",
    );
    strictEqual(
      seriesValue(text, 'kvm_vm_block_capacity_bytes{domain="old-vm",device="vda"}'),
      "1073741824",
    );
    strictEqual(seriesCount(text, 'kvm_vm_cpu_time_seconds_total{domain="old-vm"}'), 0);
    strictEqual(seriesValue(text, 'kvm_exporter_libvirt_skipped_values{reason="type"}'), "0");
    // The run state is an observation of the discovered VM.
    deepStrictEqual(exporter.lastScrape?.observations.get("3001-1")?.runState, {
      state: "running",
      reason: "booted",
    });
  });
});

Deno.test("libvirt collector: a domain named like another VM's label is not reported under it", async () => {
  const data: FakeLibvirtData = {
    ...SAMPLE_LIBVIRT,
    domains: [
      { domain: { name: "instance-0000002a", uuid: SAMPLE_UUID, id: 3 }, params: SAMPLE_PARAMS },
      {
        domain: { name: "web-01", uuid: "99999999-0000-4000-8000-000000000001", id: 5 },
        params: [["state.state", "int", 3], ["state.reason", "int", 5]],
      },
      {
        domain: { name: "global", uuid: "99999999-0000-4000-8000-000000000003", id: 6 },
        params: [["state.state", "int", 3], ["state.reason", "int", 5]],
      },
    ],
  };
  await withFake("libvirt", async (args) => {
    const { app, logs } = await buildApp(args);
    const text = await scrapeText(app);
    strictEqual(seriesCount(text, 'kvm_vm_state{domain="web-01"'), 0);
    strictEqual(seriesCount(text, 'kvm_vm_state{domain="global"'), 0);
    strictEqual(seriesValue(text, 'kvm_vm_state{domain="os",state="running"}'), "1");
    ok(logs.some((l) => l.includes("another VM's domain label") && l.includes("web-01")));
  }, data);
});

Deno.test("libvirt collector: a VM that stops keeps its domain label while libvirt lists it", async () => {
  const shutOff = (name: string): FakeLibvirtData["domains"] => [
    { domain: { name, uuid: SAMPLE_UUID, id: -1 }, params: SHUTOFF_PARAMS },
  ];
  await withFake("libvirt", async (args, fake, tmp) => {
    const { app } = await buildApp(args);
    const running = await scrapeText(app);
    strictEqual(seriesValue(running, 'kvm_vm_state{domain="os",state="running"}'), "1");
    // Shut off: no longer discovered, still the same series under "os", not instance-0000002a.
    await Deno.remove(`${tmp}/kvm/3001-1`, { recursive: true });
    await Deno.remove(`${tmp}/proc/3001`, { recursive: true });
    fake.domains = shutOff("instance-0000002a");
    const stopped = await scrapeText(app);
    strictEqual(seriesValue(stopped, 'kvm_vm_state{domain="os",state="shutoff"}'), "1");
    strictEqual(seriesValue(stopped, 'kvm_vm_state{domain="os",state="running"}'), "0");
    ok(!stopped.includes('domain="instance-0000002a"'), stopped);
    // A domain whose libvirt name is that label may not take it.
    fake.domains = [
      ...shutOff("instance-0000002a"),
      {
        domain: { name: "os", uuid: "99999999-0000-4000-8000-000000000009", id: -1 },
        params: SHUTOFF_PARAMS,
      },
    ];
    const namesake = await scrapeText(app);
    strictEqual(seriesCount(namesake, 'kvm_vm_state{domain="os",state="shutoff"}'), 1);
    // Undefined (libvirt no longer lists it): forgotten; defined again, it has its libvirt name.
    fake.domains = [];
    await scrapeText(app);
    fake.domains = shutOff("instance-0000002a");
    const redefined = await scrapeText(app);
    strictEqual(
      seriesValue(redefined, 'kvm_vm_state{domain="instance-0000002a",state="shutoff"}'),
      "1",
    );
    strictEqual(seriesCount(redefined, 'kvm_vm_state{domain="os"'), 0);
  });
});

const SWITCHES: { args: string[]; gone: string[]; kept: string[] }[] = [
  {
    // Every domain's state, nothing else: a domain no VM has keeps its memory and disk sizes.
    args: ["--no-collector.libvirt.state"],
    gone: ["kvm_vm_state{", "kvm_vm_state_reason{"],
    kept: [
      "kvm_vm_cpu_",
      'kvm_vm_memory_maximum_bytes{domain="old-vm"}',
      'kvm_vm_block_capacity_bytes{domain="old-vm",device="vda"}',
    ],
  },
  { args: ["--no-collector.libvirt.cpu"], gone: ["kvm_vm_cpu_"], kept: ["kvm_vm_state{"] },
  {
    args: ["--no-collector.libvirt.balloon"],
    gone: ["kvm_vm_memory_"],
    kept: ["kvm_vm_block_"],
  },
  {
    args: ["--collector.libvirt.block=false"],
    gone: ["kvm_vm_block_"],
    kept: ["kvm_vm_network_"],
  },
  {
    args: ["--no-collector.libvirt.interface"],
    gone: ["kvm_vm_network_"],
    kept: ["kvm_vm_block_"],
  },
  {
    args: ["--collector.libvirt.device-exclude=^vd"],
    gone: ["kvm_vm_block_"],
    kept: ["kvm_vm_network_"],
  },
  {
    args: ["--collector.libvirt.device-include=^sd", "--collector.libvirt.interface-include=tap"],
    gone: ["kvm_vm_block_"],
    kept: ["kvm_vm_network_receive_bytes_total{"],
  },
  {
    args: ["--collector.libvirt.interface-exclude=^tap"],
    gone: ["kvm_vm_network_"],
    kept: ['kvm_vm_block_info{domain="os",device="vda"'],
  },
];

Deno.test("libvirt collector: group switches and device patterns drop only their series", async (t) => {
  for (const c of SWITCHES) {
    await t.step(c.args.join(" "), async () => {
      await withFake("libvirt", async (args) => {
        const { app } = await buildApp([...args, ...c.args]);
        const text = await scrapeText(app);
        for (const prefix of c.gone) strictEqual(seriesCount(text, prefix), 0, prefix);
        for (const prefix of c.kept) ok(seriesCount(text, prefix) > 0, prefix);
        strictEqual(seriesValue(text, 'kvm_stat_exits_count{domain="os"}'), "4006");
      });
    });
  }
});

/** The sample VM's KVM and state fields, and `extra` for its groups. */
function sampleWith(extra: FakeParam[]): FakeLibvirtData {
  const kept = SAMPLE_PARAMS.filter(([field]) => /^(state|vcpu|vm)\./.test(field));
  return {
    ...SAMPLE_LIBVIRT,
    domains: [{
      domain: { name: "instance-0000002a", uuid: SAMPLE_UUID, id: 3 },
      params: [...kept, ...extra],
    }],
  };
}

function disks(count: number, from = 0): FakeParam[] {
  return Array.from({ length: count }, (_, i): FakeParam[] => [
    [`block.${from + i}.name`, "string", `d${from + i}`],
    [`block.${from + i}.rd.reqs`, "ullong", BigInt(from + i)],
  ]).flat();
}

const HOSTILE: {
  what: string;
  extra: FakeParam[];
  skipped: Record<string, string>;
  check: (text: string) => void;
}[] = [
  {
    what: "300 disks and a million interfaces claimed: 256 disks kept",
    extra: [["block.count", "uint", 300], ["net.count", "uint", 1_000_000], ...disks(300)],
    skipped: { too_many: "88" },
    check: (text) => {
      strictEqual(seriesCount(text, "kvm_vm_block_read_requests_total{"), 256);
      strictEqual(
        seriesValue(text, 'kvm_vm_block_read_requests_total{domain="os",device="d255"}'),
        "255",
      );
    },
  },
  {
    what: "absurd numbers: a balloon beyond 64 bits of bytes, a negative counter",
    extra: [
      ["balloon.current", "ullong", 18446744073709551615n],
      ["balloon.maximum", "ullong", 1024n],
      ["cpu.time", "llong", -1n],
      ["cpu.user", "ullong", 18446744073709551615n],
    ],
    skipped: { range: "2" },
    check: (text) => {
      strictEqual(seriesCount(text, "kvm_vm_memory_balloon_bytes{"), 0);
      strictEqual(seriesValue(text, 'kvm_vm_memory_maximum_bytes{domain="os"}'), "1048576");
      strictEqual(seriesCount(text, "kvm_vm_cpu_time_seconds_total{"), 0);
      strictEqual(
        seriesValue(text, 'kvm_vm_cpu_seconds_total{domain="os",mode="user"}'),
        "18446744073.709551615",
      );
    },
  },
  {
    what: "missing fields: a disk without a name, one with a name only",
    extra: [["block.0.rd.reqs", "ullong", 5n], ["block.1.name", "string", "vdb"]],
    skipped: { unnamed: "1" },
    check: (text) => {
      strictEqual(seriesValue(text, 'kvm_vm_block_info{domain="os",device="vdb"}'), "1");
      strictEqual(seriesCount(text, "kvm_vm_block_read_requests_total{"), 0);
    },
  },
  {
    what: "wrong value types: a string counter, a number for a name, a double",
    extra: [
      ["net.0.name", "string", "vnet0"],
      ["net.0.rx.bytes", "string", "12"],
      ["net.0.tx.bytes", "ullong", 7n],
      ["net.1.name", "uint", 1],
      ["balloon.rss", "double", 1.5],
    ],
    skipped: { type: "3", unnamed: "1" },
    check: (text) => {
      strictEqual(seriesCount(text, "kvm_vm_network_receive_bytes_total{"), 0);
      strictEqual(
        seriesValue(text, 'kvm_vm_network_transmit_bytes_total{domain="os",interface="vnet0"}'),
        "7",
      );
      strictEqual(seriesCount(text, "kvm_vm_memory_resident_bytes{"), 0);
    },
  },
  {
    what: "a state libvirt does not define",
    extra: [["state.state", "int", 42]],
    skipped: { range: "1" },
    check: (text) => strictEqual(seriesCount(text, "kvm_vm_state{"), 8), // The first state.state.
  },
];

Deno.test("libvirt collector: a hostile libvirtd's bad values cost only themselves", async (t) => {
  for (const c of HOSTILE) {
    await t.step(c.what, async () => {
      await withFake("libvirt", async (args) => {
        const { app } = await buildApp(args);
        const text = await scrapeText(app);
        strictEqual(seriesValue(text, 'kvm_scrape_collector_success{collector="libvirt"}'), "1");
        strictEqual(seriesValue(text, 'kvm_stat_exits_count{domain="os"}'), "4006");
        for (const reason of ["type", "range", "unnamed", "duplicate", "too_many"]) {
          strictEqual(
            seriesValue(text, `kvm_exporter_libvirt_skipped_values{reason="${reason}"}`),
            c.skipped[reason] ?? "0",
            reason,
          );
        }
        c.check(text);
      }, sampleWith(c.extra));
    });
  }
});

Deno.test("libvirt collector: a bad field is logged once, though its value changes every scrape", async () => {
  await withFake("libvirt", async (args, fake) => {
    const { app, logs } = await buildApp(args);
    for (let scrape = 0; scrape < 3; scrape++) {
      fake.domains = sampleWith([
        ["balloon.rss", "string", `junk-${scrape}`],
        ["cpu.time", "llong", BigInt(-1 - scrape)],
      ]).domains;
      const text = await scrapeText(app);
      strictEqual(seriesValue(text, 'kvm_exporter_libvirt_skipped_values{reason="type"}'), "1");
      strictEqual(seriesValue(text, 'kvm_exporter_libvirt_skipped_values{reason="range"}'), "1");
    }
    const warned = logs.filter((l) => l.includes("level=warn") && l.includes("libvirt field"));
    strictEqual(warned.length, 2, warned.join("\n"));
    ok(warned.some((l) => l.includes("balloon.rss") && l.includes("junk-0")), warned.join("\n"));
    ok(warned.some((l) => l.includes("cpu.time") && l.includes("-1")), warned.join("\n"));
  });
});

Deno.test("libvirt collector: a disk or interface that vanishes between scrapes just goes", async () => {
  const both: FakeParam[] = [
    ...disks(2),
    ["net.0.name", "string", "vnet0"],
    ["net.0.rx.pkts", "ullong", 1n],
  ];
  await withFake("libvirt", async (args, fake) => {
    const { app } = await buildApp(args);
    const before = await scrapeText(app);
    strictEqual(seriesCount(before, "kvm_vm_block_info{"), 2);
    strictEqual(seriesCount(before, "kvm_vm_network_info{"), 1);
    fake.domains = sampleWith(disks(1)).domains;
    const after = await scrapeText(app);
    strictEqual(seriesValue(after, 'kvm_scrape_collector_success{collector="libvirt"}'), "1");
    strictEqual(seriesCount(after, "kvm_vm_block_info{"), 1);
    strictEqual(seriesCount(after, 'kvm_vm_block_read_requests_total{domain="os",device="d1"}'), 0);
    strictEqual(seriesCount(after, "kvm_vm_network_"), 0);
    strictEqual(seriesValue(after, 'kvm_exporter_libvirt_skipped_values{reason="unnamed"}'), "0");
  }, sampleWith(both));
});

Deno.test("libvirt collector reads the XML again for a disk plugged in since, once", async () => {
  const xml = (disks: string[]) =>
    `<domain><devices>${
      disks.map((d) => `<disk><target dev='${d}' bus='scsi'/></disk>`).join("")
    }</devices></domain>`;
  await withFake("libvirt", async (args, fake) => {
    const { app } = await buildApp(args);
    const xmlReads = () => fake.calls.filter((p) => p === REMOTE_PROC.domainGetXmlDesc).length;
    await scrapeText(app);
    strictEqual(xmlReads(), 1);
    // vdb plugged in: libvirt names it, the XML read before lacks it; read again, this scrape.
    fake.domains = sampleWith(disks(2)).domains;
    fake.xml = xml(["d0", "d1"]);
    const plugged = await scrapeText(app);
    strictEqual(xmlReads(), 2);
    strictEqual(seriesValue(plugged, 'kvm_vm_block_info{domain="os",device="d1",bus="scsi"}'), "1");
    // A disk the XML never has (a peer that disagrees with itself): one read per set of names.
    fake.domains = sampleWith(disks(3)).domains;
    await scrapeText(app);
    const after = await scrapeText(app);
    strictEqual(xmlReads(), 3);
    strictEqual(seriesValue(after, 'kvm_vm_block_info{domain="os",device="d2"}'), "1");
    strictEqual(seriesValue(after, 'kvm_vm_block_info{domain="os",device="d0",bus="scsi"}'), "1");
  }, sampleWith(disks(1)));
});

Deno.test("libvirt collector: an XML that does not parse costs the bus and MAC only", async () => {
  await withFake("libvirt", async (args, fake) => {
    fake.xml = "<domain><devices><disk>";
    const { app, logs } = await buildApp(args);
    const text = await scrapeText(app);
    strictEqual(seriesValue(text, 'kvm_scrape_collector_success{collector="libvirt"}'), "1");
    ok(text.includes('kvm_vm_block_info{domain="os",device="vda",path="'), text);
    ok(!text.includes('bus="'));
    ok(logs.some((l) => l.includes("Cannot read the domain XML")));
    await scrapeText(app);
    strictEqual(fake.calls.filter((p) => p === REMOTE_PROC.domainGetXmlDesc).length, 1);
  });
});
