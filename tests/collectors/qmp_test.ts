/**
 * The qmp collector against fake QMP monitors: values, merging with debugfs,
 * and every way a monitor can fail, each costing only its own VM.
 *
 * @module
 */

import { ok, strictEqual } from "node:assert/strict";
import { type FakeQmp, type FakeQmpBehaviour, startFakeQmp } from "../support/fake_qmp.ts";
import { waitFor } from "../support/exporter_process.ts";
import { acceptsConnections } from "../support/qemu.ts";
import { buildApp, scrapeText, seriesValue } from "../support/sample_exporter.ts";

/** A debugfs tree as under lockdown (instant stats only) with VMs "good" and "bad", and a vm.yaml. */
async function layOut(tmp: string): Promise<string[]> {
  const kvm = `${tmp}/kvm`;
  for (const dir of ["1001-1", "1002-1"]) {
    await Deno.mkdir(`${kvm}/${dir}/vcpu0`, { recursive: true });
    await Deno.writeTextFile(`${kvm}/${dir}/pages_4k`, "100\n");
    await Deno.writeTextFile(`${kvm}/${dir}/vcpu0/guest_mode`, "0\n");
  }
  await Deno.writeTextFile(`${kvm}/pages_4k`, "200\n");
  await Deno.writeTextFile(
    `${tmp}/vm.yaml`,
    `vm_infos:
  good: {kvm_debug_dir: "1001-1", qmp_socket: "${tmp}/good.sock"}
  bad: {kvm_debug_dir: "1002-1", qmp_socket: "${tmp}/bad.sock"}
`,
  );
  return [
    `--collector.kvmdebug.dir=${kvm}`,
    `--collector.vmmap.path=${tmp}/vm.yaml`,
    `--path.procfs=${tmp}/proc`,
    "--collector.qmp",
    "--collector.qmp.timeout=300ms",
  ];
}

Deno.test("qmp collector exports VM and vCPU stats, debugfs first, histograms kept out", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_qmp_" });
  const good = startFakeQmp(`${tmp}/good.sock`, { behaviour: "qemu" });
  const bad = startFakeQmp(`${tmp}/bad.sock`, { behaviour: "qemu" });
  try {
    const { app } = await buildApp(await layOut(tmp));
    const text = await scrapeText(app);
    strictEqual(seriesValue(text, 'kvm_scrape_collector_success{collector="qmp"}'), "1");
    // What debugfs refuses under lockdown comes from QMP, u64 exact.
    strictEqual(
      seriesValue(text, 'kvm_stat_remote_tlb_flush_count{domain="good"}'),
      "18446744073709551615",
    );
    // Both sources have pages_4k: one series, from debugfs.
    strictEqual(seriesValue(text, 'kvm_stat_pages_4k_count{domain="good"}'), "100");
    strictEqual(
      text.split("\n").filter((l) => l.startsWith('kvm_stat_pages_4k_count{domain="good"}')).length,
      1,
    );
    // What debugfs's VM dir sums over vCPUs, QMP sums too: exits of vCPU 0 and 1.
    strictEqual(seriesValue(text, 'kvm_stat_exits_count{domain="good"}'), "2001");
    strictEqual(seriesValue(text, 'kvm_stat_halt_wait_ns_count{domain="good"}'), "10");
    // Per-vCPU stats, vcpu = cpu-index (device[2] is vCPU 1), booleans as 0/1.
    strictEqual(seriesValue(text, 'kvm_stat_vcpu_exits_count{domain="good",vcpu="0"}'), "1000");
    strictEqual(seriesValue(text, 'kvm_stat_vcpu_exits_count{domain="good",vcpu="1"}'), "1001");
    strictEqual(seriesValue(text, 'kvm_stat_vcpu_guest_mode_count{domain="good",vcpu="1"}'), "1");
    // vcpu0/guest_mode is in debugfs too: debugfs wins.
    strictEqual(seriesValue(text, 'kvm_stat_vcpu_guest_mode_count{domain="good",vcpu="0"}'), "0");
    ok(!text.includes("halt_wait_hist"), "histograms are not exported under the compat names");
    strictEqual(seriesValue(text, 'kvm_exporter_qmp_errors{domain="good",reason="timeout"}'), "0");
    // The counters grow between scrapes: a new connection each time.
    const again = await scrapeText(app);
    strictEqual(seriesValue(again, 'kvm_stat_vcpu_exits_count{domain="good",vcpu="0"}'), "2000");
    strictEqual(good.connections, 2);
  } finally {
    await good.close();
    await bad.close();
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("qmp collector histograms become Prometheus histograms in the prometheus scheme", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_qmp_" });
  const good = startFakeQmp(`${tmp}/good.sock`, { behaviour: "qemu" });
  const bad = startFakeQmp(`${tmp}/bad.sock`, { behaviour: "qemu" });
  try {
    const { app } = await buildApp([...await layOut(tmp), "--metrics.naming=prometheus"]);
    const text = await scrapeText(app);
    ok(text.includes("# TYPE kvm_vcpu_halt_wait_seconds histogram\n"));
    // Buckets [1, 2, 3]: bucket 0 holds 0, bucket 1 holds 1 ns, the last one the rest.
    const series = 'kvm_vcpu_halt_wait_seconds_bucket{domain="good",vcpu="0"';
    strictEqual(seriesValue(text, `${series},le="0"}`), "1");
    strictEqual(seriesValue(text, `${series},le="0.000000001"}`), "3");
    strictEqual(seriesValue(text, `${series},le="+Inf"}`), "6");
    strictEqual(seriesValue(text, 'kvm_vcpu_halt_wait_seconds_count{domain="good",vcpu="0"}'), "6");
    // The sum is halt_wait_ns of the same query, in seconds, exact.
    strictEqual(
      seriesValue(text, 'kvm_vcpu_halt_wait_seconds_sum{domain="good",vcpu="0"}'),
      "0.000000005",
    );
    strictEqual(
      seriesValue(text, 'kvm_vm_halt_wait_seconds_total{domain="good"}'),
      "0.00000001",
    );
    // One value per stat identity, debugfs first: pages_4k and vCPU 0's guest_mode from debugfs.
    strictEqual(seriesValue(text, 'kvm_vm_pages_4k{domain="good"}'), "100");
    strictEqual(seriesValue(text, 'kvm_vcpu_guest_mode{domain="good",vcpu="0"}'), "0");
    strictEqual(seriesValue(text, 'kvm_vcpu_guest_mode{domain="good",vcpu="1"}'), "1");
    strictEqual(seriesValue(text, "kvm_host_pages_4k"), "200");
    strictEqual(seriesValue(text, 'kvm_vm_exits_total{domain="good"}'), "2001");
    // The schema makes remote_tlb_flush a counter, max_mmu_rmap_size a peak gauge.
    ok(text.includes("# TYPE kvm_vm_remote_tlb_flush_total counter\n"));
    ok(text.includes("# TYPE kvm_vm_max_mmu_rmap_size gauge\n"));
    ok(!text.includes("kvm_stat_"), "no compat names");
  } finally {
    await good.close();
    await bad.close();
    await Deno.remove(tmp, { recursive: true });
  }
});

const FAILURES: {
  behaviour: FakeQmpBehaviour | "regular-file" | "missing";
  reason: string;
  log: RegExp;
}[] = [
  { behaviour: "silent", reason: "timeout", log: /timed out/ },
  { behaviour: "regular-file", reason: "refused", log: /bad\.sock/ },
  { behaviour: "missing", reason: "refused", log: /bad\.sock/ },
  { behaviour: "garbage", reason: "protocol", log: /./ },
  { behaviour: "half-line", reason: "closed", log: /closed the connection/ },
  { behaviour: "huge-line", reason: "protocol", log: /./ },
  { behaviour: "not-qemu", reason: "protocol", log: /./ },
  { behaviour: "old-qemu", reason: "protocol", log: /CommandNotFound/ },
];

Deno.test("qmp collector: a failing monitor costs only its own VM", async (t) => {
  for (const failure of FAILURES) {
    await t.step(failure.behaviour, async () => {
      const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_qmp_" });
      const good = startFakeQmp(`${tmp}/good.sock`, { behaviour: "qemu" });
      const bad = failure.behaviour === "regular-file" || failure.behaviour === "missing"
        ? undefined
        : startFakeQmp(`${tmp}/bad.sock`, { behaviour: failure.behaviour });
      if (failure.behaviour === "regular-file") await Deno.writeTextFile(`${tmp}/bad.sock`, "");
      try {
        const { app, logs } = await buildApp(await layOut(tmp));
        const text = await scrapeText(app);
        strictEqual(seriesValue(text, 'kvm_scrape_collector_success{collector="qmp"}'), "1");
        strictEqual(
          seriesValue(text, `kvm_exporter_qmp_errors{domain="bad",reason="${failure.reason}"}`),
          "1",
        );
        strictEqual(
          seriesValue(text, 'kvm_exporter_qmp_errors{domain="good",reason="timeout"}'),
          "0",
        );
        strictEqual(seriesValue(text, 'kvm_stat_vcpu_exits_count{domain="good",vcpu="1"}'), "1001");
        strictEqual(
          seriesValue(text, 'kvm_stat_vcpu_exits_count{domain="bad",vcpu="1"}'),
          undefined,
        );
        strictEqual(
          seriesValue(text, 'kvm_stat_pages_4k_count{domain="bad"}'),
          "100",
          "debugfs still exported",
        );
        const warns = logs.filter((l) => l.includes("level=warn") && l.includes("bad.sock"));
        strictEqual(warns.length, 1, warns.join(""));
        ok(failure.log.test(warns[0]!), warns[0]);
        ok(!warns[0]!.trimEnd().includes("\n"));
        await scrapeText(app);
        strictEqual(
          logs.filter((l) => l.includes("level=warn") && l.includes("bad.sock")).length,
          1,
          "logged once",
        );
      } finally {
        await good.close();
        await bad?.close();
        await Deno.remove(tmp, { recursive: true });
      }
    });
  }
});

/** A debugfs tree with one VM dir for `pid`, named `pve101` by vm.yaml, and the exporter's flags. */
async function layOutGlob(tmp: string, pid: number): Promise<string[]> {
  await Deno.mkdir(`${tmp}/kvm/${pid}-7`, { recursive: true });
  await Deno.writeTextFile(`${tmp}/kvm/${pid}-7/pages_4k`, "1\n");
  await Deno.writeTextFile(`${tmp}/vm.yaml`, `vm_infos:\n  pve101: {pid: ${pid}}\n`);
  await Deno.mkdir(`${tmp}/run`);
  return [
    `--collector.kvmdebug.dir=${tmp}/kvm`,
    `--collector.vmmap.path=${tmp}/vm.yaml`,
    "--path.procfs=/proc",
    "--collector.qmp",
    `--collector.qmp.socket-glob=${tmp}/run/*.qmp`,
  ];
}

Deno.test("qmp collector never takes a glob socket for a VM whose VMM does not hold it", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_qmp_glob_" });
  // A real process is the VM; the fake monitor (in this test process) claims the VM's pid as
  // its vCPU thread, as the old thread-id matching trusted.
  const vmm = new Deno.Command("sleep", { args: ["60"], stdout: "null", stderr: "null" }).spawn();
  let fake: FakeQmp | undefined;
  try {
    const args = await layOutGlob(tmp, vmm.pid);
    fake = startFakeQmp(`${tmp}/run/101.qmp`, { behaviour: "qemu", threadIds: [vmm.pid] });
    const { app, logs } = await buildApp(args);
    for (let scrape = 0; scrape < 2; scrape++) {
      const text = await scrapeText(app);
      strictEqual(seriesValue(text, 'kvm_stat_pages_4k_count{domain="pve101"}'), "1");
      ok(!text.includes("kvm_stat_vcpu_exits_count"), "the impostor's stats are not exported");
      strictEqual(
        seriesValue(text, 'kvm_exporter_qmp_errors{domain="pve101",reason="other"}'),
        undefined,
      );
      strictEqual(seriesValue(text, 'kvm_exporter_qmp_skipped_sockets{reason="no_owner"}'), "1");
    }
    strictEqual(fake.connections, 0, "a socket of unknown owner is never even connected to");
    const warns = logs.filter((l) => l.includes("level=warn") && l.includes("101.qmp"));
    strictEqual(warns.length, 1, warns.join(""));
    ok(warns[0]!.includes("reason=no_owner"), warns[0]);
  } finally {
    vmm.kill("SIGKILL");
    await vmm.status;
    await fake?.close();
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("qmp collector matches a glob socket to the VMM that holds its listener", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_qmp_glob_" });
  let fake: FakeQmp | undefined;
  let moved: Deno.UnixListener | undefined;
  try {
    // This test process is the "VMM": it holds the fake monitor's listening socket. Its vCPU
    // thread ids are made up: they play no part.
    const args = await layOutGlob(tmp, Deno.pid);
    fake = startFakeQmp(`${tmp}/run/101.qmp`, { behaviour: "qemu", threadIds: [1, 2] });
    await Deno.symlink(`${tmp}/run/101.qmp`, `${tmp}/run/102.qmp`);
    await Deno.writeTextFile(`${tmp}/run/103.qmp`, "");
    // A socket moved here: the kernel lists it under the path it was bound to, not this one.
    moved = Deno.listen({ transport: "unix", path: `${tmp}/bound.sock` });
    await Deno.rename(`${tmp}/bound.sock`, `${tmp}/run/104.qmp`);
    const { app, logs } = await buildApp(args);
    const text = await scrapeText(app);
    strictEqual(seriesValue(text, 'kvm_stat_vcpu_exits_count{domain="pve101",vcpu="1"}'), "1001");
    strictEqual(seriesValue(text, 'kvm_exporter_qmp_errors{domain="pve101",reason="other"}'), "0");
    strictEqual(seriesValue(text, 'kvm_exporter_qmp_skipped_sockets{reason="not_socket"}'), "2");
    strictEqual(seriesValue(text, 'kvm_exporter_qmp_skipped_sockets{reason="not_listening"}'), "1");
    strictEqual(seriesValue(text, 'kvm_exporter_qmp_skipped_sockets{reason="no_owner"}'), "0");
    ok(logs.some((l) => l.includes("102.qmp") && l.includes("symbolic link")), logs.join(""));
    // The owner is remembered and confirmed with one readlink: one connection per scrape.
    const before = fake.connections;
    const again = await scrapeText(app);
    strictEqual(seriesValue(again, 'kvm_stat_vcpu_exits_count{domain="pve101",vcpu="1"}'), "2001");
    strictEqual(fake.connections, before + 1);
  } finally {
    moved?.close();
    await fake?.close();
    await Deno.remove(tmp, { recursive: true });
  }
});

const QMP_SUCCESS = 'kvm_scrape_collector_success{collector="qmp"}';

Deno.test("qmp collector reports success 0 when it reaches none of the VMs it tried, per-VM reasons kept", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_qmp_none_" });
  // "good" has no monitor (refused), "bad" one that never answers (timeout).
  const bad = startFakeQmp(`${tmp}/bad.sock`, { behaviour: "silent" });
  try {
    const { app, logs } = await buildApp(await layOut(tmp));
    const text = await scrapeText(app);
    strictEqual(seriesValue(text, QMP_SUCCESS), "0");
    strictEqual(seriesValue(text, 'kvm_exporter_qmp_errors{domain="good",reason="refused"}'), "1");
    strictEqual(seriesValue(text, 'kvm_exporter_qmp_errors{domain="bad",reason="timeout"}'), "1");
    strictEqual(seriesValue(text, 'kvm_stat_pages_4k_count{domain="good"}'), "100", "debugfs");
    const failed = logs.filter((l) => l.includes('msg="Collector failed"'));
    strictEqual(failed.length, 1, logs.join(""));
    ok(failed[0]!.includes("none of the sockets it tried (1 refused, 1 timeout)"), failed[0]);

    // One monitor comes back: the collector succeeds again, the other VM's failure stays its own.
    const good = startFakeQmp(`${tmp}/good.sock`, { behaviour: "qemu" });
    try {
      const again = await scrapeText(app);
      strictEqual(seriesValue(again, QMP_SUCCESS), "1");
      strictEqual(
        seriesValue(again, 'kvm_exporter_qmp_errors{domain="bad",reason="timeout"}'),
        "1",
      );
      ok(logs.some((l) => l.includes('msg="Collector recovered"') && l.includes("collector=qmp")));
    } finally {
      await good.close();
    }
  } finally {
    await bad.close();
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("qmp collector reports success 1 when no VM has a socket to try", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_qmp_untried_" });
  try {
    const args = await layOut(tmp);
    await Deno.writeTextFile(`${tmp}/vm.yaml`, "vm_infos: {}\n");
    const { app } = await buildApp(args);
    const text = await scrapeText(app);
    strictEqual(seriesValue(text, QMP_SUCCESS), "1");
    ok(!text.includes("kvm_exporter_qmp_errors{"), "no VM tried");
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

/** A line of `<procfs>/net/unix` for a socket listening on `path`. */
function unixLine(inode: number, path: string): string {
  return `0000000000000000: 00000002 00000000 00010000 0001 01 ${inode} ${path}\n`;
}

const REFUSED_GLOB_SOCKETS: {
  reason: string;
  /** What the path is: a listening socket, or a regular file. */
  file: "socket" | "regular";
  /** The net/unix lines for the path. */
  listed: (path: string) => string;
  success: string;
}[] = [
  // No VMM holds inode 4242 (the procfs fixture has no fds at all).
  { reason: "no_owner", file: "socket", listed: (p) => unixLine(4242, p), success: "0" },
  { reason: "not_listening", file: "socket", listed: () => "", success: "0" },
  {
    reason: "ambiguous",
    file: "socket",
    listed: (p) => unixLine(4242, p) + unixLine(4343, p),
    success: "0",
  },
  // Not a socket: there was no socket to try.
  { reason: "not_socket", file: "regular", listed: () => "", success: "1" },
];

Deno.test("qmp collector reports success 0 when the only sockets it found were refused by the ownership check", async (t) => {
  for (const c of REFUSED_GLOB_SOCKETS) {
    await t.step(c.reason, async () => {
      const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_qmp_refused_" });
      const path = `${tmp}/run/101.qmp`;
      let listener: Deno.UnixListener | undefined;
      try {
        const args = await layOutGlob(tmp, 4000);
        if (c.file === "socket") listener = Deno.listen({ transport: "unix", path });
        else await Deno.writeTextFile(path, "");
        await Deno.mkdir(`${tmp}/proc/net`, { recursive: true });
        await Deno.writeTextFile(
          `${tmp}/proc/net/unix`,
          "Num       RefCount Protocol Flags    Type St Inode Path\n" + c.listed(path),
        );
        const { app, logs } = await buildApp([...args, `--path.procfs=${tmp}/proc`]);
        const text = await scrapeText(app);
        strictEqual(
          seriesValue(text, `kvm_exporter_qmp_skipped_sockets{reason="${c.reason}"}`),
          "1",
        );
        strictEqual(seriesValue(text, QMP_SUCCESS), c.success);
        const failed = logs.filter((l) => l.includes('msg="Collector failed"'));
        strictEqual(failed.length, c.success === "0" ? 1 : 0, logs.join(""));
        if (c.success === "0") {
          ok(failed[0]!.includes(`none of the sockets it tried (1 ${c.reason})`), failed[0]);
        }
      } finally {
        listener?.close();
        await Deno.remove(tmp, { recursive: true });
      }
    });
  }
});

type Reply = Record<string, unknown>[];

const DUPLICATES: {
  what: string;
  rewrite: (command: string, reply: unknown, args: Record<string, unknown> | undefined) => unknown;
  vcpu0: string;
  vcpu1: string | undefined;
  sum: string;
  log: RegExp;
}[] = [
  {
    what: "two vCPUs with one cpu-index",
    rewrite: (command, reply) =>
      command === "query-cpus-fast"
        ? (reply as Reply).map((cpu) => ({ ...cpu, "cpu-index": 0 }))
        : reply,
    vcpu0: "1000",
    vcpu1: undefined,
    sum: "1000",
    log: /query-cpus-fast lists cpu-index 0 twice/,
  },
  {
    what: "two vCPUs with one qom-path",
    rewrite: (command, reply) =>
      command === "query-cpus-fast"
        ? (reply as Reply).map((cpu) => ({ ...cpu, "qom-path": "/machine/unattached/device[0]" }))
        : reply,
    vcpu0: "1000",
    vcpu1: undefined,
    sum: "1000",
    log: /query-cpus-fast lists qom-path \\"\/machine\/unattached\/device\[0\]\\" twice/,
  },
  {
    what: "two query-stats results for one vCPU",
    rewrite: (command, reply, args) =>
      command === "query-stats" && args?.["target"] === "vcpu"
        ? [...(reply as Reply), { ...(reply as Reply)[0], stats: [{ name: "exits", value: 7 }] }]
        : reply,
    vcpu0: "1000",
    vcpu1: "1001",
    sum: "2001",
    log: /query-stats has qom-path/,
  },
];

Deno.test("qmp collector counts and logs once the vCPUs a monitor reports under a repeated identity", async (t) => {
  for (const c of DUPLICATES) {
    await t.step(c.what, async () => {
      const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_qmp_" });
      const good = startFakeQmp(`${tmp}/good.sock`, { behaviour: "qemu", rewrite: c.rewrite });
      const bad = startFakeQmp(`${tmp}/bad.sock`, { behaviour: "qemu" });
      try {
        const { app, logs } = await buildApp(await layOut(tmp));
        for (let scrape = 1; scrape <= 2; scrape++) {
          const text = await scrapeText(app);
          const vcpu = (n: number): string | undefined =>
            seriesValue(text, `kvm_stat_vcpu_exits_count{domain="good",vcpu="${n}"}`);
          strictEqual(vcpu(0), String(Number(c.vcpu0) + 1000 * (scrape - 1)));
          strictEqual(
            vcpu(1),
            c.vcpu1 === undefined ? undefined : String(Number(c.vcpu1) + 1000 * (scrape - 1)),
          );
          // The VM's sum covers the vCPUs exported, not the repeats.
          if (scrape === 1) {
            strictEqual(seriesValue(text, 'kvm_stat_exits_count{domain="good"}'), c.sum);
          }
          strictEqual(seriesValue(text, 'kvm_exporter_qmp_duplicate_vcpus{domain="good"}'), "1");
          strictEqual(seriesValue(text, 'kvm_exporter_qmp_duplicate_vcpus{domain="bad"}'), "0");
          strictEqual(
            seriesValue(text, 'kvm_exporter_qmp_errors{domain="good",reason="protocol"}'),
            "0",
          );
        }
        const warns = logs.filter((l) => l.includes("level=warn") && l.includes("good.sock"));
        strictEqual(warns.length, 1, warns.join(""));
        ok(c.log.test(warns[0]!), warns[0]);
      } finally {
        await good.close();
        await bad.close();
        await Deno.remove(tmp, { recursive: true });
      }
    });
  }
});

/** A real process that listens on the QMP socket its argv names, as QEMU does (fake_qmp_vmm.ts). */
function spawnFakeVmm(tmp: string, vm: { name: string; socket: string }): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      `--allow-read=${tmp}`,
      `--allow-write=${tmp}`,
      `--allow-net=unix:${vm.socket}`,
      new URL("../support/fake_qmp_vmm.ts", import.meta.url).pathname,
      "-name",
      vm.name,
      "-qmp",
      `unix:${vm.socket},server=on,wait=off`,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
}

/** Kills a test's child processes, if still there, and waits for them. */
async function killAll(children: readonly Deno.ChildProcess[]): Promise<void> {
  for (const child of children) {
    try {
      child.kill("SIGKILL");
    } catch {
      // It exited already (the failure says why).
    }
  }
  await Promise.all(children.map((child) => child.status));
}

/** A VM dir in `tmp/kvm` for each pid (with fd `7 + i`), and an empty vm.yaml. */
async function layOutVmms(tmp: string, pids: readonly number[]): Promise<void> {
  for (const [i, pid] of pids.entries()) {
    await Deno.mkdir(`${tmp}/kvm/${pid}-${7 + i}`, { recursive: true });
    await Deno.writeTextFile(`${tmp}/kvm/${pid}-${7 + i}/pages_4k`, "1\n");
  }
  await Deno.writeTextFile(`${tmp}/vm.yaml`, "vm_infos: {}\n");
}

Deno.test("qmp collector never connects to a socket a VMM's command line names but does not hold", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_qmp_claim_" });
  const socket = `${tmp}/good.qmp`;
  // "good" is a real process that listens on the socket its argv names; "evil" is a process whose
  // argv names good's socket too (whoever starts a VM writes its argv): a shell waiting on stdin.
  const good = spawnFakeVmm(tmp, { name: "good", socket });
  const evil = new Deno.Command("sh", {
    args: [
      "-c",
      "read line",
      "qemu-system-x86_64",
      "-name",
      "evil",
      "-qmp",
      `unix:${socket},server=on,wait=off`,
    ],
    stdin: "piped",
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    await layOutVmms(tmp, [good.pid, evil.pid]);
    await waitFor(() => acceptsConnections(socket), { what: "the fake VMM's monitor" });
    const { app, logs } = await buildApp([
      `--collector.kvmdebug.dir=${tmp}/kvm`,
      `--collector.vmmap.path=${tmp}/vm.yaml`,
      "--path.procfs=/proc",
      "--collector.qmp",
    ]);
    for (let scrape = 1; scrape <= 2; scrape++) {
      const text = await scrapeText(app);
      // Connection 1 was the readiness probe; then exactly one per scrape: good's own.
      strictEqual(
        seriesValue(text, 'kvm_stat_vcpu_exits_count{domain="good",vcpu="1"}'),
        String(1000 * (scrape + 1) + 1),
      );
      strictEqual(seriesValue(text, 'kvm_stat_pages_4k_count{domain="evil"}'), "1");
      ok(!text.includes('kvm_stat_vcpu_exits_count{domain="evil"'), "good's stats not as evil's");
      strictEqual(
        seriesValue(text, 'kvm_exporter_qmp_errors{domain="evil",reason="other"}'),
        undefined,
      );
      strictEqual(seriesValue(text, 'kvm_exporter_qmp_skipped_sockets{reason="no_owner"}'), "1");
    }
    const warns = logs.filter((l) => l.includes("level=warn") && l.includes("good.qmp"));
    strictEqual(warns.length, 1, warns.join(""));
    ok(warns[0]!.includes(`pid ${evil.pid}`) && warns[0]!.includes("reason=no_owner"), warns[0]);
  } finally {
    await evil.stdin.close().catch(() => {});
    await killAll([good, evil]);
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("qmp collector queries a socket its VMM's command line names and the glob finds, as claimed, not skipped", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_qmp_claim_glob_" });
  // As on Proxmox with --collector.qmp.socket-glob=/var/run/qemu-server/*.qmp: each VMM's
  // command line names its monitor, and the glob finds the same path.
  await Deno.mkdir(`${tmp}/run`);
  const socket = `${tmp}/run/101.qmp`;
  const vmm = spawnFakeVmm(tmp, { name: "pve101", socket });
  try {
    await layOutVmms(tmp, [vmm.pid]);
    await waitFor(() => acceptsConnections(socket), { what: "the fake VMM's monitor" });
    const { app, logs } = await buildApp([
      `--collector.kvmdebug.dir=${tmp}/kvm`,
      `--collector.vmmap.path=${tmp}/vm.yaml`,
      "--path.procfs=/proc",
      "--collector.qmp",
      `--collector.qmp.socket-glob=${tmp}/run/*.qmp`,
    ]);
    for (let scrape = 1; scrape <= 2; scrape++) {
      const text = await scrapeText(app);
      strictEqual(
        seriesValue(text, 'kvm_stat_vcpu_exits_count{domain="pve101",vcpu="1"}'),
        String(1000 * (scrape + 1) + 1),
      );
      strictEqual(seriesValue(text, 'kvm_exporter_qmp_skipped_sockets{reason="no_owner"}'), "0");
      strictEqual(seriesValue(text, QMP_SUCCESS), "1");
    }
    const warns = logs.filter((l) => l.includes("level=warn"));
    strictEqual(warns.length, 0, warns.join(""));
  } finally {
    await killAll([vmm]);
    await Deno.remove(tmp, { recursive: true });
  }
});
