/**
 * The qmp collector's device groups (run state, disks, balloon) against fake QMP monitors: the
 * values, the switches and filters, and each way a reply can be wrong, costing only its own
 * part: never the VM's KVM stats, the other groups, or the scrape.
 *
 * @module
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { type FakeQmpOptions, startFakeQmp } from "../support/fake_qmp.ts";
import { buildApp, scrapeText, seriesValue } from "../support/sample_exporter.ts";

/** A debugfs tree with VM "vm" (dir 1001-1) and its monitor, and the exporter's flags. */
async function layOut(tmp: string): Promise<string[]> {
  await Deno.mkdir(`${tmp}/kvm/1001-1`, { recursive: true });
  await Deno.writeTextFile(`${tmp}/kvm/1001-1/pages_4k`, "100\n");
  await Deno.writeTextFile(
    `${tmp}/vm.yaml`,
    `vm_infos:\n  vm: {kvm_debug_dir: "1001-1", qmp_socket: "${tmp}/vm.sock"}\n`,
  );
  return [
    `--collector.kvmdebug.dir=${tmp}/kvm`,
    `--collector.vmmap.path=${tmp}/vm.yaml`,
    `--path.procfs=${tmp}/proc`,
    "--collector.qmp",
    "--collector.qmp.timeout=5s",
  ];
}

/** Scrapes once (or `scrapes` times) with a fake monitor; returns each body and the logs. */
async function scrapeWith(
  fake: Omit<FakeQmpOptions, "behaviour"> & { behaviour?: FakeQmpOptions["behaviour"] },
  options: { args?: string[]; scrapes?: number } = {},
): Promise<{ bodies: string[]; logs: string[]; observed: unknown }> {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_qmp_devices_" });
  const monitor = startFakeQmp(`${tmp}/vm.sock`, { behaviour: "qemu", ...fake });
  try {
    const { app, logs, exporter } = await buildApp([...await layOut(tmp), ...options.args ?? []]);
    const bodies: string[] = [];
    for (let i = 0; i < (options.scrapes ?? 1); i++) bodies.push(await scrapeText(app));
    const observed = [...exporter.lastScrape!.observations.values()][0]?.runState;
    return { bodies, logs, observed };
  } finally {
    await monitor.close();
    await Deno.remove(tmp, { recursive: true });
  }
}

const VM = 'domain="vm"';
const DISK = `${VM},device="virtio-disk0"`;

function problems(text: string, group: string, reason: string): string | undefined {
  return seriesValue(text, `kvm_exporter_qmp_problems{group="${group}",reason="${reason}"}`);
}

/** What every case checks: the VM's KVM stats and the scrape are intact. */
function assertVmIntact(text: string): void {
  strictEqual(seriesValue(text, 'kvm_scrape_collector_success{collector="qmp"}'), "1");
  strictEqual(seriesValue(text, `kvm_exporter_qmp_errors{${VM},reason="protocol"}`), "0");
  strictEqual(seriesValue(text, `kvm_stat_vcpu_exits_count{${VM},vcpu="1"}`), "1001");
}

Deno.test("qmp device groups: run state, disks, balloon and guest memory of a VM", async () => {
  const { bodies: [text], observed } = await scrapeWith({});
  assertVmIntact(text!);
  strictEqual(seriesValue(text!, `kvm_vm_state{${VM},state="running"}`), "1");
  strictEqual(seriesValue(text!, `kvm_vm_state{${VM},state="paused"}`), "0");
  strictEqual(
    seriesValue(text!, `kvm_vm_state_reason{${VM},state="running",reason="unknown"}`),
    "1",
  );
  deepStrictEqual(observed, { state: "running", reason: "unknown" });
  strictEqual(seriesValue(text!, `kvm_vm_block_read_bytes_total{${DISK}}`), "5120");
  strictEqual(seriesValue(text!, `kvm_vm_block_read_seconds_total{${DISK}}`), "0.0015");
  strictEqual(seriesValue(text!, `kvm_vm_block_flush_seconds_total{${DISK}}`), "0.00000025");
  strictEqual(seriesValue(text!, `kvm_vm_block_errors_total{${DISK}}`), "3");
  strictEqual(
    seriesValue(
      text!,
      `kvm_vm_block_info{${DISK},drive="",qdev="/machine/peripheral/virtio-disk0/virtio-backend"}`,
    ),
    "1",
  );
  // The block graph's node names change on snapshot, mirror or commit: not a label.
  ok(!text!.includes("node_name="), "no node_name on kvm_vm_block_info");
  // -drive style: named by its device id, the drive's name on the info series.
  strictEqual(seriesValue(text!, `kvm_vm_block_read_requests_total{${VM},device="ide0-1-0"}`), "1");
  ok(!text!.includes("#block-job-target"), "a node no device uses is not a disk");
  strictEqual(seriesValue(text!, `kvm_vm_memory_balloon_bytes{${VM}}`), "1073741824");
  strictEqual(seriesValue(text!, `kvm_vm_memory_unused_bytes{${VM}}`), String(600 * 1024 * 1024));
  strictEqual(seriesValue(text!, `kvm_vm_memory_available_bytes{${VM}}`), String(1020 << 20));
  strictEqual(seriesValue(text!, `kvm_vm_memory_usable_bytes{${VM}}`), String(800 << 20));
  strictEqual(seriesValue(text!, `kvm_vm_memory_minor_faults_total{${VM}}`), "1000");
  strictEqual(seriesValue(text!, `kvm_vm_memory_swap_in_bytes_total{${VM}}`), "0");
  strictEqual(seriesValue(text!, `kvm_vm_memory_swap_out_bytes_total{${VM}}`), undefined);
  strictEqual(
    seriesValue(text!, `kvm_vm_memory_stats_update_timestamp_seconds{${VM}}`),
    "1700000001",
  );
  for (const group of ["status", "block", "balloon"]) {
    strictEqual(problems(text!, group, "error_reply"), "0", group);
    strictEqual(problems(text!, group, "bad_reply"), "0", group);
  }
});

Deno.test("qmp device groups: each switch turns its group off, and its problems", async () => {
  const asked: string[] = [];
  const { bodies: [text] } = await scrapeWith({
    rewrite: (command, reply) => (asked.push(command), reply),
  }, {
    args: [
      "--no-collector.qmp.status",
      "--collector.qmp.block=false",
      "--no-collector.qmp.balloon",
    ],
  });
  assertVmIntact(text!);
  for (const family of ["kvm_vm_state", "kvm_vm_block_", "kvm_vm_memory_", "qmp_problems"]) {
    ok(!text!.includes(family), family);
  }
  deepStrictEqual(
    asked.filter((c) => !c.startsWith("query-stats") && c !== "query-cpus-fast"),
    ["qmp_capabilities"],
    "nothing of a group switched off is asked",
  );
});

Deno.test("qmp device groups: device-include and device-exclude pick the disks", async () => {
  const { bodies: [text] } = await scrapeWith({}, {
    args: ["--collector.qmp.device-include=^(virtio|ide)", "--collector.qmp.device-exclude=^ide"],
  });
  strictEqual(seriesValue(text!, `kvm_vm_block_read_bytes_total{${DISK}}`), "5120");
  ok(!text!.includes('device="ide0-1-0"'));
  strictEqual(problems(text!, "block", "too_many"), "0");
});

const disk = (device: string, stats: Record<string, unknown>) => ({ device, stats });

/** Hostile replies: each costs its own part only, counted under its group and reason. */
const HOSTILE: {
  what: string;
  fake: Omit<FakeQmpOptions, "behaviour">;
  problem: [group: string, reason: string, count: string];
  check: (text: string) => void;
}[] = [
  {
    what: "a query-status of the wrong shape",
    fake: { rewrite: (c, r) => c === "query-status" ? { status: 7 } : r },
    problem: ["status", "bad_reply", "1"],
    check: (text) => {
      ok(!text.includes("kvm_vm_state{"));
      strictEqual(seriesValue(text, `kvm_vm_block_read_bytes_total{${DISK}}`), "5120");
    },
  },
  {
    what: "a status no QEMU has: nostate, with the status as reason",
    fake: { rewrite: (c, r) => c === "query-status" ? { status: "teleporting" } : r },
    problem: ["status", "bad_reply", "0"],
    check: (text) => {
      strictEqual(seriesValue(text, `kvm_vm_state{${VM},state="nostate"}`), "1");
      strictEqual(
        seriesValue(text, `kvm_vm_state_reason{${VM},state="nostate",reason="teleporting"}`),
        "1",
      );
    },
  },
  {
    what: "a query-blockstats that QEMU refuses",
    fake: {
      fail: (c) => c === "query-blockstats" ? { class: "GenericError", desc: "no" } : undefined,
    },
    problem: ["block", "error_reply", "1"],
    check: (text) => {
      ok(!text.includes("kvm_vm_block_"));
      strictEqual(seriesValue(text, `kvm_vm_memory_balloon_bytes{${VM}}`), "1073741824");
    },
  },
  {
    what: "a query-blockstats that is no array",
    fake: { rewrite: (c, r) => c === "query-blockstats" ? { devices: r } : r },
    problem: ["block", "bad_reply", "1"],
    check: (text) => ok(!text.includes("kvm_vm_block_")),
  },
  {
    what: "a huge device count: 256 disks kept",
    fake: {
      rewrite: (c, r) =>
        c === "query-blockstats"
          ? Array.from({ length: 5000 }, (_, i) => disk(`d${i}`, { rd_bytes: i }))
          : r,
    },
    problem: ["block", "too_many", "4744"],
    check: (text) => {
      strictEqual(text.split("\n").filter((l) => l.startsWith("kvm_vm_block_info{")).length, 256);
      strictEqual(seriesValue(text, `kvm_vm_block_read_bytes_total{${VM},device="d255"}`), "255");
      strictEqual(
        seriesValue(text, `kvm_vm_block_read_bytes_total{${VM},device="d256"}`),
        undefined,
      );
    },
  },
  {
    what: "absurd numbers, wrong types and missing fields: only those values",
    fake: {
      rewrite: (c, r) =>
        c === "query-blockstats"
          ? [
            disk("a", {
              rd_bytes: -5,
              wr_bytes: 1.5,
              rd_operations: "12",
              wr_operations: null,
              flush_operations: 1e300,
              rd_total_time_ns: 7,
              failed_rd_operations: 1,
            }),
            disk("b", {}),
            { stats: 3 },
            "disk",
          ]
          : r,
    },
    // a: rd_bytes, wr_bytes, rd_operations, wr_operations, flush_operations, wr_total_time_ns,
    // flush_total_time_ns, failed_wr, failed_flush (9); b: 8 counters; 2 entries that are none.
    problem: ["block", "bad_value", "19"],
    check: (text) => {
      strictEqual(
        seriesValue(text, `kvm_vm_block_read_seconds_total{${VM},device="a"}`),
        "0.000000007",
      );
      strictEqual(seriesValue(text, `kvm_vm_block_read_bytes_total{${VM},device="a"}`), undefined);
      strictEqual(seriesValue(text, `kvm_vm_block_errors_total{${VM},device="a"}`), undefined);
      ok(text.includes(`kvm_vm_block_info{${VM},device="b"`), "b is there, without counters");
    },
  },
  {
    what: "1 MiB of nameless repeats: counted, and the KVM stats stay",
    fake: {
      rewrite: (c, r) =>
        c === "query-blockstats"
          ? Array.from({ length: 43000 }, () => ({ qdev: "a", stats: {} }))
          : r,
    },
    problem: ["block", "duplicate", "42999"],
    check: (text) => {
      strictEqual(problems(text, "block", "bad_value"), "8");
      ok(text.includes(`kvm_vm_block_info{${VM},device="a"`));
    },
  },
  {
    what: "two disks with one name",
    fake: {
      rewrite: (c, r) =>
        c === "query-blockstats" ? [disk("x", { rd_bytes: 1 }), disk("x", { rd_bytes: 2 })] : r,
    },
    problem: ["block", "duplicate", "1"],
    check: (text) =>
      strictEqual(seriesValue(text, `kvm_vm_block_read_bytes_total{${VM},device="x"}`), "1"),
  },
  {
    what: "no balloon device: no balloon, and no problem",
    fake: {
      fail: (c) =>
        c === "query-balloon"
          ? { class: "DeviceNotActive", desc: "No balloon device has been activated" }
          : undefined,
    },
    problem: ["balloon", "error_reply", "0"],
    check: (text) => ok(!text.includes("kvm_vm_memory_")),
  },
  {
    what: "a balloon with absurd actual",
    fake: { rewrite: (c, r) => c === "query-balloon" ? { actual: -1 } : r },
    problem: ["balloon", "bad_reply", "1"],
    check: (text) => ok(!text.includes("kvm_vm_memory_")),
  },
  {
    what: "polling off: the balloon, no guest stats",
    fake: {
      rewrite: (c, r, args) =>
        c === "qom-get" && args?.["property"] === "guest-stats-polling-interval" ? 0 : r,
    },
    problem: ["balloon", "bad_value", "0"],
    check: (text) => {
      strictEqual(seriesValue(text, `kvm_vm_memory_balloon_bytes{${VM}}`), "1073741824");
      ok(!text.includes("kvm_vm_memory_unused_bytes"));
    },
  },
  {
    what: "a guest stat of the wrong type",
    fake: {
      rewrite: (c, r, args) =>
        c === "qom-get" && args?.["property"] === "guest-stats"
          ? { stats: { "stat-free-memory": "much", "stat-disk-caches": 5 }, "last-update": 3 }
          : r,
    },
    problem: ["balloon", "bad_value", "1"],
    check: (text) => {
      strictEqual(seriesValue(text, `kvm_vm_memory_disk_caches_bytes{${VM}}`), "5");
      ok(!text.includes("kvm_vm_memory_unused_bytes"));
    },
  },
  {
    what: "a balloon that vanished from QOM (qom-get refused)",
    fake: {
      fail: (c) => c === "qom-get" ? { class: "DeviceNotFound", desc: "gone" } : undefined,
    },
    problem: ["balloon", "error_reply", "1"],
    check: (text) => {
      strictEqual(seriesValue(text, `kvm_vm_memory_balloon_bytes{${VM}}`), "1073741824");
      ok(!text.includes("kvm_vm_memory_unused_bytes"));
    },
  },
];

Deno.test("qmp device groups: a hostile reply costs only its own part, counted", async (t) => {
  for (const c of HOSTILE) {
    await t.step(c.what, async () => {
      const { bodies: [text], logs } = await scrapeWith(c.fake);
      assertVmIntact(text!);
      const [group, reason, count] = c.problem;
      strictEqual(problems(text!, group, reason), count);
      c.check(text!);
      if (count !== "0") {
        ok(
          logs.some((l) => l.includes("level=warn") && l.includes(`group=${group}`)),
          logs.join(""),
        );
      }
    });
  }
});

Deno.test("qmp device groups: a disk that vanishes between scrapes is gone, the rest stays", async () => {
  let connection = 0;
  const { bodies } = await scrapeWith({
    rewrite: (command, reply) => {
      if (command === "qmp_capabilities") connection++;
      return command === "query-blockstats" && connection > 1
        ? (reply as unknown[]).slice(0, 1)
        : reply;
    },
  }, { scrapes: 2 });
  ok(bodies[0]!.includes('device="ide0-1-0"'));
  ok(!bodies[1]!.includes('device="ide0-1-0"'));
  strictEqual(seriesValue(bodies[1]!, `kvm_vm_block_read_bytes_total{${DISK}}`), "10240");
  strictEqual(problems(bodies[1]!, "block", "bad_value"), "0");
});

Deno.test("qmp device groups: the balloon's QOM path is looked up once per VMM", async () => {
  const asked: string[] = [];
  const { bodies } = await scrapeWith({
    rewrite: (command, reply) => (asked.push(command), reply),
  }, { scrapes: 3 });
  strictEqual(asked.filter((c) => c === "qom-list").length, 1);
  strictEqual(asked.filter((c) => c === "qom-get").length, 6, "interval and stats each scrape");
  strictEqual(seriesValue(bodies[2]!, `kvm_vm_memory_minor_faults_total{${VM}}`), "3000");
});

Deno.test("qmp device groups: on a QEMU without query-stats (before 7.1) the groups still report", async () => {
  const { bodies: [text] } = await scrapeWith({ behaviour: "old-qemu" });
  strictEqual(seriesValue(text!, `kvm_exporter_qmp_errors{${VM},reason="protocol"}`), "1");
  // QMP served the VM: the collector did not fail.
  strictEqual(seriesValue(text!, 'kvm_scrape_collector_success{collector="qmp"}'), "1");
  strictEqual(seriesValue(text!, `kvm_stat_vcpu_exits_count{${VM},vcpu="1"}`), undefined);
  strictEqual(seriesValue(text!, `kvm_vm_state{${VM},state="running"}`), "1");
  strictEqual(seriesValue(text!, `kvm_vm_block_read_bytes_total{${DISK}}`), "5120");
  strictEqual(seriesValue(text!, `kvm_vm_memory_balloon_bytes{${VM}}`), "1073741824");
});

Deno.test("qmp device groups: a VM that answered only a balloon of 0 bytes was reached", async () => {
  const { bodies: [text] } = await scrapeWith({
    behaviour: "old-qemu",
    rewrite: (c, r) => c === "query-balloon" ? { actual: 0 } : r,
  }, { args: ["--no-collector.qmp.status", "--no-collector.qmp.block"] });
  strictEqual(seriesValue(text!, `kvm_vm_memory_balloon_bytes{${VM}}`), "0");
  strictEqual(seriesValue(text!, 'kvm_scrape_collector_success{collector="qmp"}'), "1");
});

Deno.test("qmp device groups: a group that times out costs the device groups, not the KVM stats", async () => {
  const { bodies: [text], logs } = await scrapeWith(
    { hang: (c) => c === "query-blockstats" },
    { args: ["--collector.qmp.timeout=300ms"] },
  );
  assertVmIntact(text!);
  strictEqual(seriesValue(text!, `kvm_exporter_qmp_errors{${VM},reason="timeout"}`), "0");
  // The group asked before it stays; the one that timed out is counted; the next is not asked.
  strictEqual(seriesValue(text!, `kvm_vm_state{${VM},state="running"}`), "1");
  strictEqual(problems(text!, "block", "timeout"), "1");
  ok(!text!.includes("kvm_vm_block_"));
  ok(!text!.includes("kvm_vm_memory_"));
  ok(logs.some((l) => l.includes("group=block") && l.includes("reason=timeout")), logs.join(""));
});
