/**
 * The vm_process collector on fixture trees: each VMM's CPU time, start time, resident memory,
 * threads and storage bytes from procfs, and what each kind of bad input costs: only its own
 * value or its own VM, counted in `kvm_exporter_vm_process_errors`. The real thing is in
 * tests/e2e/qemu_vms_test.ts.
 *
 * @module
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { declareCollector } from "../../src/collectors/collector_declaration.ts";
import { LIBVIRT } from "../../src/collectors/libvirt.ts";
import { COLLECTORS } from "../../src/collectors/registry.ts";
import { VM_PROCESS } from "../../src/collectors/vm_process.ts";
import { VM_FAMILIES } from "../../src/metrics/vm_families.ts";
import { denoFileSystem, type FileSystem } from "../../src/system/file_system.ts";
import { mkfifo, releaseFifo } from "../support/fifo.ts";
import { buildApp, scrapeText, seriesValue } from "../support/sample_exporter.ts";

/** A 52-field stat line of a VMM. */
function statLine(
  pid: number,
  fields: { comm?: string; state?: string; utime: string; stime: string; start: string },
): string {
  return `${pid} (${fields.comm ?? "qemu-system-x86"}) ${fields.state ?? "S"} 1 ${pid} ${pid} 0 ` +
    `-1 138412352 52193 0 12 0 ${fields.utime} ${fields.stime} 0 0 20 0 7 0 ${fields.start} ` +
    "3567435776 1069056 18446744073709551615 1 2 3 0 0 0 0 4096 1260 0 0 0 17 1 0 0 3 0 0 4 5 " +
    "6 7 8 9 10 0\n";
}

function status(rss: string, threads: string): string {
  return `Name:\tqemu-system-x86\nState:\tS (sleeping)\nVmRSS:\t${rss}\nThreads:\t${threads}\n`;
}

const IO = "rchar: 9\nwchar: 9\nread_bytes: 8192\nwrite_bytes: 4096\ncancelled_write_bytes: 0\n";

/** Each VM of the tree: its pid, name and procfs files (absent when undefined). */
interface FixtureVm {
  pid: number;
  name: string;
  stat?: string;
  status?: string;
  io?: string;
}

/**
 * VM "good" has every file; the others each have one thing wrong. `gone` has no process.
 */
const VMS: readonly FixtureVm[] = [
  {
    pid: 5001,
    name: "good",
    stat: statLine(5001, { utime: "12345", stime: "678", start: "4218" }),
    status: status("  2048 kB", "7"),
    io: IO,
  },
  { pid: 5002, name: "gone" },
  {
    pid: 5003,
    name: "garbage-stat",
    stat: "not a stat line\n",
    status: status("1 kB", "1"),
    io: IO,
  },
  {
    pid: 5004,
    name: "zombie",
    stat: statLine(5004, { state: "Z", utime: "1", stime: "1", start: "9" }),
    status: "Name:\tqemu\nState:\tZ (zombie)\nThreads:\t1\n",
    io: IO,
  },
  {
    pid: 5005,
    name: "absurd",
    stat: statLine(5005, {
      comm: "a) (b",
      utime: "99999999999999999999999",
      stime: "5",
      start: "7",
    }),
    status: status("12 MB", "0"),
    io: "read_bytes: 1\nwrite_bytes: x\n",
  },
  {
    pid: 5006,
    name: "no-start",
    stat: statLine(5006, { utime: "1", stime: "2", start: "-" }),
    status: status("1 kB", "1"),
    io: IO,
  },
];

const BOOT = "cpu  1 2 3 4\nintr 5 6\nctxt 7\nbtime 1764720000\nprocesses 9\n";

async function layOut(tmp: string, vms: readonly FixtureVm[] = VMS): Promise<string[]> {
  for (const [i, vm] of vms.entries()) {
    await Deno.mkdir(`${tmp}/kvm/${vm.pid}-${10 + i}`, { recursive: true });
    await Deno.mkdir(`${tmp}/proc/${vm.pid}`, { recursive: true });
    await Deno.writeTextFile(`${tmp}/proc/${vm.pid}/cmdline`, `qemu\0-name\0${vm.name}\0`);
    for (const file of ["stat", "status", "io"] as const) {
      const text = vm[file];
      if (text !== undefined) await Deno.writeTextFile(`${tmp}/proc/${vm.pid}/${file}`, text);
    }
  }
  await Deno.writeTextFile(`${tmp}/proc/stat`, BOOT);
  await Deno.writeTextFile(`${tmp}/vm.yaml`, "# Names come from the command lines.\n");
  return [
    `--collector.kvmdebug.dir=${tmp}/kvm`,
    `--collector.vmmap.path=${tmp}/vm.yaml`,
    `--path.procfs=${tmp}/proc`,
  ];
}

/** The value of each reason of `kvm_exporter_vm_process_errors`. */
function errors(text: string): Record<string, string | undefined> {
  const reasons = ["permission", "vanished", "malformed", "too_large", "not_regular", "blocked"];
  return Object.fromEntries(
    [...reasons, "reused", "other"].map((reason) => [
      reason,
      seriesValue(text, `kvm_exporter_vm_process_errors{reason="${reason}"}`),
    ]),
  );
}

const NO_ERRORS = {
  permission: "0",
  vanished: "0",
  malformed: "0",
  too_large: "0",
  not_regular: "0",
  blocked: "0",
  reused: "0",
  other: "0",
};

/** The series of a VM in the vm_process families. */
function seriesOf(text: string, domain: string): string[] {
  return text.split("\n").filter((line) =>
    /^kvm_vm_(cpu|cpu_time|memory_resident|process)_/.test(line) &&
    line.includes(`domain="${domain}"`)
  );
}

async function withTree(fn: (tmp: string, args: string[]) => Promise<void>): Promise<void> {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_vm_process_" });
  try {
    await fn(tmp, await layOut(tmp));
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

Deno.test("vm_process collector reports each VMM's CPU, start time, memory, threads and I/O", async () => {
  await withTree(async (_tmp, args) => {
    for (const naming of ["compat", "prometheus"]) {
      const { app } = await buildApp([...args, `--metrics.naming=${naming}`]);
      const text = await scrapeText(app);
      strictEqual(seriesValue(text, 'kvm_scrape_collector_success{collector="vm_process"}'), "1");
      ok(text.includes("# TYPE kvm_vm_cpu_seconds_total counter\n"), naming);
      deepStrictEqual(seriesOf(text, "good"), [
        'kvm_vm_cpu_seconds_total{domain="good",mode="system"} 6.78',
        'kvm_vm_cpu_seconds_total{domain="good",mode="user"} 123.45',
        'kvm_vm_cpu_time_seconds_total{domain="good"} 130.23',
        'kvm_vm_memory_resident_bytes{domain="good"} 2097152',
        'kvm_vm_process_io_read_bytes_total{domain="good"} 8192',
        'kvm_vm_process_io_write_bytes_total{domain="good"} 4096',
        'kvm_vm_process_start_time_seconds{domain="good"} 1764720042.18',
        'kvm_vm_process_threads{domain="good"} 7',
      ], naming);
    }
  });
});

Deno.test("vm_process collector: bad input costs its own value or VM, counted by reason", async (t) => {
  await withTree(async (_tmp, args) => {
    const { app, logs } = await buildApp(args);
    const text = await scrapeText(app);
    strictEqual(seriesValue(text, 'kvm_scrape_collector_success{collector="vm_process"}'), "1");
    await t.step("a VM whose process is gone, or a zombie, has no series", () => {
      deepStrictEqual(seriesOf(text, "gone"), []);
      deepStrictEqual(seriesOf(text, "zombie"), []);
    });
    await t.step("a stat line that does not parse, or has no start time, costs the VM", () => {
      deepStrictEqual(seriesOf(text, "garbage-stat"), []);
      deepStrictEqual(seriesOf(text, "no-start"), []);
    });
    await t.step("absurd fields cost their own values only", () => {
      deepStrictEqual(seriesOf(text, "absurd"), [
        'kvm_vm_cpu_seconds_total{domain="absurd",mode="system"} 0.05',
        'kvm_vm_process_io_read_bytes_total{domain="absurd"} 1',
        'kvm_vm_process_start_time_seconds{domain="absurd"} 1764720000.07',
      ]);
    });
    await t.step("each skipped reading is counted by reason", () => {
      // vanished: gone's stat, zombie. malformed: garbage-stat, no-start, and absurd's utime,
      // VmRSS, Threads and write_bytes.
      deepStrictEqual(errors(text), { ...NO_ERRORS, vanished: "2", malformed: "6" });
    });
    await t.step("the good VM is unharmed", () => strictEqual(seriesOf(text, "good").length, 8));
    await t.step(
      "a reason is logged at warn once while it lasts; a vanished process never",
      async () => {
        await scrapeText(app);
        const warned = logs.filter((l) => l.includes("level=warn") && l.includes("vm_process"));
        strictEqual(warned.length, 1, warned.join("\n"));
        ok(warned[0]!.includes("reason=malformed"));
      },
    );
  });
});

Deno.test("vm_process collector skips a VM whose pid is another process now", async () => {
  await withTree(async (tmp, args) => {
    const { app } = await buildApp(args);
    strictEqual(seriesOf(await scrapeText(app), "good").length, 8);
    // The VMM exited and its pid went to a process that started later: not the VM's numbers.
    await Deno.writeTextFile(
      `${tmp}/proc/5001/stat`,
      statLine(5001, { utime: "1", stime: "1", start: "999999" }),
    );
    const text = await scrapeText(app);
    deepStrictEqual(seriesOf(text, "good"), []);
    strictEqual(errors(text).reused, "1");
    ok(seriesOf(text, "absurd").length > 0, "the other VMs are read");
  });
});

Deno.test("vm_process collector reads the boot time once; without it, no start times", async () => {
  await withTree(async (tmp, args) => {
    const { app } = await buildApp(args);
    const start = 'kvm_vm_process_start_time_seconds{domain="good"}';
    strictEqual(seriesValue(await scrapeText(app), start), "1764720042.18");
    // A clock step moves btime; a start time must not move with it.
    await Deno.writeTextFile(`${tmp}/proc/stat`, BOOT.replace("1764720000", "1764720005"));
    strictEqual(seriesValue(await scrapeText(app), start), "1764720042.18");

    await Deno.writeTextFile(`${tmp}/proc/stat`, "cpu  1 2 3 4\n");
    const { app: fresh } = await buildApp(args);
    const text = await scrapeText(fresh);
    strictEqual(seriesValue(text, start), undefined);
    strictEqual(seriesValue(text, 'kvm_vm_cpu_time_seconds_total{domain="good"}'), "130.23");
    strictEqual(errors(text).malformed, "7", "the missing btime, and the six of the bad VMs");
  });
});

Deno.test("vm_process collector: an io file the kernel refuses is counted, never warned about", async () => {
  await withTree(async (_tmp, args) => {
    let ioOpens = 0;
    const refusingIo: FileSystem = {
      ...denoFileSystem,
      readTextFile: (path, options) => {
        if (!path.endsWith("/io")) return denoFileSystem.readTextFile(path, options);
        ioOpens++;
        return Promise.reject(new Deno.errors.PermissionDenied("Permission denied (os error 13)"));
      },
    };
    const { app, logs } = await buildApp(args, { fs: refusingIo });
    const text = await scrapeText(app);
    const good = seriesOf(text, "good");
    ok(!good.some((l) => l.includes("_io_")), good.join("\n"));
    strictEqual(good.length, 6, "cpu by mode, total, resident, threads, start time");
    // good, garbage-stat... only the VMs whose stat was read get to their io: good and absurd.
    strictEqual(errors(text).permission, "2");
    ok(!logs.some((l) => l.includes("level=warn") && l.includes("reason=permission")));
    // A refusal is the kernel's verdict on the VMM's credentials: not asked again, still counted.
    strictEqual(ioOpens, 2);
    strictEqual(errors(await scrapeText(app)).permission, "2");
    strictEqual(ioOpens, 2, "no io opened again");
  });
});

Deno.test("vm_process collector: a file too large or not a regular file costs its own values", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_vm_process_" });
  try {
    const good = VMS[0]!;
    const args = await layOut(tmp, [
      { ...good, status: `${status("1 kB", "1")}${"x".repeat(70_000)}\n` },
      {
        pid: 5101,
        name: "dir-io",
        stat: statLine(5101, { utime: "1", stime: "2", start: "3" }),
        status: status("1 kB", "7"),
      },
    ]);
    await Deno.mkdir(`${tmp}/proc/5101/io`);
    const { app } = await buildApp(args);
    const text = await scrapeText(app);
    deepStrictEqual(errors(text), { ...NO_ERRORS, too_large: "1", not_regular: "1" });
    strictEqual(seriesValue(text, 'kvm_vm_memory_resident_bytes{domain="good"}'), undefined);
    strictEqual(seriesValue(text, 'kvm_vm_process_io_read_bytes_total{domain="good"}'), "8192");
    strictEqual(seriesValue(text, 'kvm_vm_process_threads{domain="dir-io"}'), "7");
    strictEqual(
      seriesValue(text, 'kvm_vm_process_io_read_bytes_total{domain="dir-io"}'),
      undefined,
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("vm_process collector: a file that blocks (a FIFO) costs one deadline, then is skipped as blocked", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_vm_process_" });
  const good = VMS[0]!;
  const args = await layOut(tmp, [good, {
    pid: 5201,
    name: "stuck",
    stat: statLine(5201, { utime: "1", stime: "2", start: "3" }),
    io: IO,
  }]);
  // A VMM in D state holding its memory lock blocks a status read: a FIFO stands for it.
  const fifo = `${tmp}/proc/5201/status`;
  await mkfifo(fifo);
  try {
    const { app } = await buildApp([
      ...args,
      "--no-collector.kvm_stat",
      "--web.scrape-timeout=300ms",
    ]);
    const first = await scrapeText(app);
    strictEqual(seriesValue(first, 'kvm_scrape_collector_success{collector="vm_process"}'), "0");
    strictEqual(seriesOf(first, "good").length, 8, "what was read before the deadline is kept");
    const second = await scrapeText(app);
    strictEqual(seriesValue(second, 'kvm_scrape_collector_success{collector="vm_process"}'), "1");
    strictEqual(errors(second).blocked, "1");
    strictEqual(seriesValue(second, 'kvm_vm_cpu_time_seconds_total{domain="stuck"}'), "0.03");
    strictEqual(seriesValue(second, 'kvm_vm_memory_resident_bytes{domain="stuck"}'), undefined);
    strictEqual(seriesOf(second, "good").length, 8);
  } finally {
    await releaseFifo(fifo).catch(() => {});
    await Deno.remove(tmp, { recursive: true });
  }
});

/** Stands in for libvirt's CPU and RSS: the same families, other values, on by default. */
const LIBVIRT_STAND_IN = declareCollector({
  name: "libvirt_stand_in",
  defaultEnabled: true,
  flags: {},
  create: () => ({
    name: "libvirt_stand_in",
    collect(context, out) {
      for (const vm of context.discovery.vms) {
        out.families.add(VM_FAMILIES.cpuTotal, [["domain", vm.domain]], 1);
        out.families.add(VM_FAMILIES.resident, [["domain", vm.domain]], 2);
      }
      return Promise.resolve();
    },
  }),
});

Deno.test("vm_process is last in the registry: libvirt's values of the shared families win", async () => {
  const names = COLLECTORS.map((c) => c.name);
  strictEqual(names.at(-1), VM_PROCESS);
  const registry = [...COLLECTORS];
  registry.splice(names.indexOf(LIBVIRT) + 1, 0, LIBVIRT_STAND_IN);
  await withTree(async (_tmp, args) => {
    const { app } = await buildApp(args, { registry });
    const text = await scrapeText(app);
    strictEqual(seriesValue(text, 'kvm_vm_cpu_time_seconds_total{domain="good"}'), "1");
    strictEqual(seriesValue(text, 'kvm_vm_memory_resident_bytes{domain="good"}'), "2");
    // What only vm_process has stays.
    strictEqual(seriesValue(text, 'kvm_vm_cpu_seconds_total{domain="good",mode="user"}'), "123.45");
    strictEqual(seriesValue(text, 'kvm_vm_process_threads{domain="good"}'), "7");
  });
});

Deno.test("vm_process leaves CPU time and resident memory to libvirt for good, even in a scrape libvirt misses", async () => {
  // libvirt identifies the VM and answers the first scrape only: in the second, its counter must
  // not be swapped for the procfs one (a different count: Prometheus would see a reset).
  let scrapes = 0;
  const flakyLibvirt = declareCollector({
    name: LIBVIRT,
    defaultEnabled: true,
    flags: {},
    create: () => ({
      name: LIBVIRT,
      collect(context, out) {
        if (++scrapes > 1) return Promise.resolve();
        for (const vm of context.discovery.vms) {
          out.observations.observe(vm.dir, {
            identity: { libvirtName: vm.domain, nova: undefined },
          });
          out.families.add(VM_FAMILIES.cpuTotal, [["domain", vm.domain]], 1);
          out.families.add(VM_FAMILIES.resident, [["domain", vm.domain]], 2);
        }
        return Promise.resolve();
      },
    }),
  });
  const registry = COLLECTORS.map((c) => c.name === LIBVIRT ? flakyLibvirt : c);
  await withTree(async (_tmp, args) => {
    const { app } = await buildApp(args, { registry });
    const first = await scrapeText(app);
    strictEqual(seriesValue(first, 'kvm_vm_cpu_time_seconds_total{domain="good"}'), "1");
    const second = await scrapeText(app);
    strictEqual(seriesValue(second, 'kvm_vm_cpu_time_seconds_total{domain="good"}'), undefined);
    strictEqual(
      seriesValue(second, 'kvm_vm_cpu_seconds_total{domain="good",mode="user"}'),
      undefined,
    );
    strictEqual(seriesValue(second, 'kvm_vm_memory_resident_bytes{domain="good"}'), undefined);
    // What libvirt does not supply stays.
    strictEqual(seriesValue(second, 'kvm_vm_process_threads{domain="good"}'), "7");
  });
});

Deno.test("--no-collector.vm_process turns the collector off", async () => {
  await withTree(async (_tmp, args) => {
    const { app } = await buildApp([...args, "--no-collector.vm_process"]);
    const text = await scrapeText(app);
    ok(!text.includes('collector="vm_process"'), "no self-metrics");
    ok(!text.includes("kvm_vm_cpu_seconds_total"), "no values");
    ok(!text.includes("kvm_exporter_vm_process_errors"), "no error counts");
  });
});
