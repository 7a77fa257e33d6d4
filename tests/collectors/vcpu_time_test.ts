/**
 * The vcpu_time collector on fixture trees: thread ids from debugfs or QMP,
 * schedstat values in seconds in both naming schemes, vanished or odd
 * threads skipped. Agreement with libvirt on a real VM is in
 * tests/libvirt/libvirt_real_test.ts.
 *
 * @module
 */

import { ok, strictEqual } from "node:assert/strict";
import { startFakeQmp } from "../support/fake_qmp.ts";
import { mkfifo, releaseFifo } from "../support/fifo.ts";
import { denoFileSystem, type FileSystem } from "../../src/system/file_system.ts";
import { buildApp, scrapeText, seriesValue } from "../support/sample_exporter.ts";

/**
 * VM "a" (pid 4001): vCPU 0's thread has a schedstat, vCPU 1's thread is gone, vCPU 2's
 * schedstat is garbage, vCPU 3's pid file names a thread of another process. VM "b" (pid 4101)
 * has vCPU dirs without pid files (an older kernel).
 */
async function layOut(tmp: string): Promise<string[]> {
  const kvm = `${tmp}/kvm`;
  const vm = `${kvm}/4001-1`;
  for (const [i, tid] of [4002, 4003, 4004, 4201].entries()) {
    await Deno.mkdir(`${vm}/vcpu${i}`, { recursive: true });
    await Deno.writeTextFile(`${vm}/vcpu${i}/pid`, `${tid}\n`);
  }
  await Deno.mkdir(`${kvm}/4101-1/vcpu0`, { recursive: true });
  await Deno.mkdir(`${kvm}/4101-1/vcpu1`, { recursive: true });
  const task = (pid: number, tid: number) => `${tmp}/proc/${pid}/task/${tid}`;
  for (
    const [pid, tid, text] of [
      [4001, 4002, "52341200117 1905341181 1472\n"],
      [4001, 4004, "garbage\n"],
      [4200, 4201, "1 2 3\n"],
      [4101, 4102, "3000000000 1 10\n"],
      [4101, 4103, "4000000000 2 10\n"],
    ] as const
  ) {
    await Deno.mkdir(task(pid, tid), { recursive: true });
    await Deno.writeTextFile(`${task(pid, tid)}/schedstat`, text);
  }
  for (const [pid, name] of [[4001, "a"], [4101, "b"]] as const) {
    await Deno.writeTextFile(`${tmp}/proc/${pid}/cmdline`, `qemu\0-name\0${name}\0`);
  }
  await Deno.writeTextFile(
    `${tmp}/vm.yaml`,
    `vm_infos:\n  b: {kvm_debug_dir: "4101-1", qmp_socket: "${tmp}/b.sock"}\n`,
  );
  return argsOf(tmp);
}

Deno.test("vcpu_time collector reads each vCPU thread's schedstat, skipping what is gone or odd", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_vcpu_time_" });
  try {
    const { app } = await buildApp(await layOut(tmp));
    const text = await scrapeText(app);
    strictEqual(seriesValue(text, 'kvm_scrape_collector_success{collector="vcpu_time"}'), "1");
    ok(text.includes("# TYPE kvm_vcpu_cpu_seconds_total counter\n"));
    strictEqual(
      seriesValue(text, 'kvm_vcpu_cpu_seconds_total{domain="a",vcpu="0"}'),
      "52.341200117",
    );
    strictEqual(
      seriesValue(text, 'kvm_vcpu_delay_seconds_total{domain="a",vcpu="0"}'),
      "1.905341181",
    );
    for (const vcpu of ["1", "2", "3"]) {
      ok(!text.includes(`seconds_total{domain="a",vcpu="${vcpu}"}`), `vCPU ${vcpu} is skipped`);
    }
    // No pid files and no QMP: nothing for b.
    ok(!text.includes('kvm_vcpu_cpu_seconds_total{domain="b"'));
    // The same names in the prometheus scheme.
    const { app: prom } = await buildApp([...argsOf(tmp), "--metrics.naming=prometheus"]);
    const promText = await scrapeText(prom);
    strictEqual(
      seriesValue(promText, 'kvm_vcpu_delay_seconds_total{domain="a",vcpu="0"}'),
      "1.905341181",
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

function argsOf(tmp: string): string[] {
  return [
    `--collector.kvmdebug.dir=${tmp}/kvm`,
    `--collector.vmmap.path=${tmp}/vm.yaml`,
    `--path.procfs=${tmp}/proc`,
  ];
}

Deno.test("vcpu_time collector takes QMP's thread ids where debugfs has no pid files", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_vcpu_time_" });
  const qmp = startFakeQmp(`${tmp}/b.sock`, { behaviour: "qemu", threadIds: [4102, 4103] });
  try {
    const { app } = await buildApp([...await layOut(tmp), "--collector.qmp"]);
    await scrapeText(app); // QMP reports the thread ids during this scrape.
    const text = await scrapeText(app);
    strictEqual(seriesValue(text, 'kvm_vcpu_cpu_seconds_total{domain="b",vcpu="1"}'), "4");
    strictEqual(
      seriesValue(text, 'kvm_vcpu_delay_seconds_total{domain="b",vcpu="0"}'),
      "0.000000001",
    );
  } finally {
    await qmp.close();
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("--collector.vcpu_time=false turns the collector off", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_vcpu_time_" });
  try {
    const { app } = await buildApp([...await layOut(tmp), "--collector.vcpu_time=false"]);
    const text = await scrapeText(app);
    ok(!text.includes('collector="vcpu_time"'), "no self-metrics");
    ok(!text.includes("kvm_vcpu_cpu_seconds_total"), "no values");
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("vcpu_time collector: a pid file that is a FIFO is skipped at once", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_vcpu_time_" });
  const args = await layOut(tmp);
  const fifo = `${tmp}/kvm/4001-1/vcpu1/pid`;
  await Deno.remove(fifo);
  await mkfifo(fifo);
  try {
    const { app } = await buildApp([...args, "--collector.kvm_stat=false"]);
    const headers = { "X-Prometheus-Scrape-Timeout-Seconds": "10" };
    const text = await (await app.request("/metrics", { headers })).text();
    strictEqual(seriesValue(text, 'kvm_scrape_collector_success{collector="vcpu_time"}'), "1");
    strictEqual(seriesValue(text, "kvm_exporter_blocked_reads"), "0");
    strictEqual(
      seriesValue(text, 'kvm_vcpu_cpu_seconds_total{domain="a",vcpu="0"}'),
      "52.341200117",
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("vcpu_time collector: a schedstat file that blocks (a FIFO) costs one deadline, then is skipped", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_vcpu_time_" });
  const args = await layOut(tmp);
  // vcpu1's thread 4003 has no schedstat in the layout: a FIFO in its place blocks the read.
  await Deno.mkdir(`${tmp}/proc/4001/task/4003`, { recursive: true });
  const fifo = `${tmp}/proc/4001/task/4003/schedstat`;
  await mkfifo(fifo);
  try {
    const { app } = await buildApp([
      ...args,
      "--collector.kvm_stat=false",
      "--web.scrape-timeout=300ms",
    ]);
    const first = await scrapeText(app);
    strictEqual(seriesValue(first, 'kvm_scrape_collector_success{collector="vcpu_time"}'), "0");
    // What was read before the deadline is kept.
    strictEqual(
      seriesValue(first, 'kvm_vcpu_cpu_seconds_total{domain="a",vcpu="0"}'),
      "52.341200117",
    );
    const second = await scrapeText(app);
    strictEqual(seriesValue(second, 'kvm_scrape_collector_success{collector="vcpu_time"}'), "1");
    strictEqual(
      seriesValue(second, 'kvm_vcpu_cpu_seconds_total{domain="a",vcpu="0"}'),
      "52.341200117",
    );
  } finally {
    await releaseFifo(fifo).catch(() => {});
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("vcpu_time collector reads pid files once per VM lifetime, again after a thread goes or a vCPU comes", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_vcpu_time_" });
  try {
    const vcpu = async (i: number): Promise<void> => {
      await Deno.mkdir(`${tmp}/kvm/5001-1/vcpu${i}`, { recursive: true });
      await Deno.writeTextFile(`${tmp}/kvm/5001-1/vcpu${i}/pid`, `${5002 + i}\n`);
      await Deno.mkdir(`${tmp}/proc/5001/task/${5002 + i}`, { recursive: true });
      await Deno.writeTextFile(`${tmp}/proc/5001/task/${5002 + i}/schedstat`, `${i + 1} 0 1\n`);
    };
    await vcpu(0);
    await vcpu(1);
    await Deno.writeTextFile(`${tmp}/proc/5001/cmdline`, "qemu\0-name\0c\0");
    await Deno.writeTextFile(`${tmp}/vm.yaml`, "vm_infos: {}\n");
    const pidReads: string[] = [];
    const fs: FileSystem = {
      ...denoFileSystem,
      readTextFile: (path, options) => {
        if (path.endsWith("/pid")) pidReads.push(path);
        return denoFileSystem.readTextFile(path, options);
      },
    };
    const { app } = await buildApp([...argsOf(tmp), "--collector.kvm_stat=false"], { fs });
    for (let i = 0; i < 3; i++) await scrapeText(app);
    strictEqual(pidReads.length, 2, "read in the first scrape only");
    await Deno.remove(`${tmp}/proc/5001/task/5003`, { recursive: true }); // vCPU 1's thread goes.
    let text = await scrapeText(app);
    ok(!text.includes('vcpu="1"'), text);
    await scrapeText(app);
    strictEqual(pidReads.length, 4, "looked up again after a thread went");
    await vcpu(1);
    await vcpu(2); // Hotplug.
    await scrapeText(app);
    text = await scrapeText(app);
    strictEqual(
      seriesValue(text, 'kvm_vcpu_cpu_seconds_total{domain="c",vcpu="2"}'),
      "0.000000003",
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
