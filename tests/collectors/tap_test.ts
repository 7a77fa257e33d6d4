/**
 * The tap collector on fixture trees: each VM's taps from its command line, their counters from
 * its VMM's net/dev from the guest's point of view, the interface filters, and each way net/dev
 * can fail a tap (a bad line, a tap gone, a net/dev that cannot be read), costing only that tap.
 *
 * @module
 */

import { ok, strictEqual } from "node:assert/strict";
import { denoFileSystem, type FileSystem } from "../../src/system/file_system.ts";
import { mkfifo, releaseFifo } from "../support/fifo.ts";
import { buildApp, scrapeText, seriesValue } from "../support/sample_exporter.ts";

const HEAD = "Inter-|   Receive                                                |  Transmit\n" +
  " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n";

const argv = (...args: string[]) => args.map((a) => `${a}\0`).join("");

/**
 * VM "pve" (pid 5001, Proxmox): taps tap100i0 (good), tap100i1 (bad line), tap100i2 (not in
 * net/dev). VM "plain" (pid 5101): tap "vm1tap" (good) and "skipme". VM "gone" (pid 5201): a
 * tap, and no net/dev. VM "none" (pid 5301): no tap. VM "thief" (pid 5401) names "stolen0",
 * which its fds, readable here, do not hold. The others' fds cannot be read (no fd dir).
 */
async function layOut(tmp: string): Promise<string[]> {
  const procs: [pid: number, cmdline: string, netDev: string | undefined][] = [
    [
      5001,
      argv(
        "/usr/bin/kvm",
        "-id",
        "100",
        "-name",
        "pve,debug-threads=on",
        "-netdev",
        "type=tap,id=net0,ifname=tap100i0,script=/var/lib/qemu-server/pve-bridge,vhost=on",
        "-device",
        "virtio-net-pci,mac=BC:24:11:00:00:01,netdev=net0,id=net0",
        "-netdev",
        "type=tap,id=net1,ifname=tap100i1",
        "-netdev",
        "type=tap,id=net2",
      ),
      HEAD + "    lo: 1 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0\n" +
      "tap100i0: 1000 10 1 2 0 0 0 0 5000 50 3 4 0 0 0 0\n" +
      "tap100i1: 1000 10 oops\n",
    ],
    [
      5101,
      argv(
        "qemu-system-x86_64",
        "-name",
        "plain",
        "-nic",
        "tap,ifname=vm1tap,model=e1000,mac=52:54:00:00:00:02",
        "-netdev",
        "tap,id=n9,ifname=skipme",
      ),
      HEAD + "vm1tap: 18446744073709551615 7 0 0 0 0 0 0 9 8 0 0 0 0 0 0\n" +
      "skipme: 1 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0\n",
    ],
    [
      5201,
      argv("qemu-system-x86_64", "-name", "gone", "-netdev", "tap,id=a,ifname=tapg"),
      undefined,
    ],
    [5301, argv("qemu-system-x86_64", "-name", "none"), HEAD],
    [
      5401,
      argv("qemu-system-x86_64", "-name", "thief", "-netdev", "tap,id=a,ifname=stolen0"),
      HEAD + "stolen0: 1 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0\n",
    ],
  ];
  for (const [pid, cmdline, netDev] of procs) {
    await Deno.mkdir(`${tmp}/kvm/${pid}-1`, { recursive: true });
    await Deno.mkdir(`${tmp}/proc/${pid}/net`, { recursive: true });
    await Deno.writeTextFile(`${tmp}/proc/${pid}/cmdline`, cmdline);
    if (netDev !== undefined) await Deno.writeTextFile(`${tmp}/proc/${pid}/net/dev`, netDev);
  }
  // thief's fds can be read: a socket and a tun fd attached to another tap, none to stolen0.
  await Deno.mkdir(`${tmp}/proc/5401/fd`);
  await Deno.mkdir(`${tmp}/proc/5401/fdinfo`);
  await Deno.symlink("socket:[123]", `${tmp}/proc/5401/fd/3`);
  await Deno.symlink("/dev/net/tun", `${tmp}/proc/5401/fd/4`);
  await Deno.writeTextFile(`${tmp}/proc/5401/fdinfo/4`, "pos:\t0\nflags:\t0104002\niff:\tother0\n");
  return [
    `--collector.kvmdebug.dir=${tmp}/kvm`,
    `--path.procfs=${tmp}/proc`,
  ];
}

async function withTree(
  args: string[],
  run: (scrape: () => Promise<string>, tmp: string, logs: string[]) => Promise<void>,
  fs?: FileSystem,
): Promise<void> {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_tap_" });
  try {
    const { app, logs } = await buildApp([...await layOut(tmp), ...args], fs ? { fs } : {});
    await run(() => scrapeText(app), tmp, logs);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

const PVE = 'domain="pve",interface="tap100i0"';

Deno.test("tap collector reports each tap from the guest's point of view", async () => {
  await withTree([], async (scrape, _tmp, logs) => {
    const text = await scrape();
    strictEqual(seriesValue(text, 'kvm_scrape_collector_success{collector="tap"}'), "1");
    // The tap received 1000 bytes from the guest: the guest sent them.
    strictEqual(seriesValue(text, `kvm_vm_network_transmit_bytes_total{${PVE}}`), "1000");
    strictEqual(seriesValue(text, `kvm_vm_network_transmit_packets_total{${PVE}}`), "10");
    strictEqual(seriesValue(text, `kvm_vm_network_transmit_errors_total{${PVE}}`), "1");
    strictEqual(seriesValue(text, `kvm_vm_network_transmit_drops_total{${PVE}}`), "2");
    strictEqual(seriesValue(text, `kvm_vm_network_receive_bytes_total{${PVE}}`), "5000");
    strictEqual(seriesValue(text, `kvm_vm_network_receive_packets_total{${PVE}}`), "50");
    strictEqual(seriesValue(text, `kvm_vm_network_receive_errors_total{${PVE}}`), "3");
    strictEqual(seriesValue(text, `kvm_vm_network_receive_drops_total{${PVE}}`), "4");
    strictEqual(
      seriesValue(
        text,
        `kvm_vm_network_info{${PVE},mac="bc:24:11:00:00:01",model="virtio-net-pci",netdev="net0"}`,
      ),
      "1",
    );
    strictEqual(
      seriesValue(text, 'kvm_vm_network_transmit_bytes_total{domain="plain",interface="vm1tap"}'),
      "18446744073709551615",
    );
    // A bad line, a tap not in net/dev (Proxmox's name for net2), a net/dev not readable.
    strictEqual(seriesValue(text, 'kvm_exporter_tap_problems{reason="bad_line"}'), "1");
    strictEqual(seriesValue(text, 'kvm_exporter_tap_problems{reason="missing"}'), "1");
    strictEqual(seriesValue(text, 'kvm_exporter_tap_problems{reason="unreadable"}'), "1");
    strictEqual(seriesValue(text, 'kvm_exporter_tap_problems{reason="not_held"}'), "1");
    strictEqual(seriesValue(text, 'kvm_exporter_tap_problems{reason="ambiguous"}'), "0");
    ok(!text.includes('interface="stolen0"'));
    ok(!text.includes('interface="tap100i1"'));
    ok(!text.includes('interface="tap100i2"'));
    ok(!text.includes('domain="none"'.concat(",interface")));
    strictEqual(logs.filter((l) => l.includes("net/dev")).length, 1, logs.join(""));
    await scrape();
    strictEqual(logs.filter((l) => l.includes("net/dev")).length, 1, "logged once");
  });
});

Deno.test("tap collector: a tap its VMM opens after the VM shows is taken once it holds it", async () => {
  await withTree([], async (scrape, tmp) => {
    strictEqual(seriesValue(await scrape(), 'kvm_exporter_tap_problems{reason="not_held"}'), "1");
    await Deno.symlink("/dev/net/tun", `${tmp}/proc/5401/fd/5`);
    await Deno.writeTextFile(`${tmp}/proc/5401/fdinfo/5`, "iff:\tstolen0\n");
    const text = await scrape();
    strictEqual(seriesValue(text, 'kvm_exporter_tap_problems{reason="not_held"}'), "0");
    strictEqual(
      seriesValue(text, 'kvm_vm_network_receive_bytes_total{domain="thief",interface="stolen0"}'),
      "1",
    );
  });
});

Deno.test("tap collector: a tap its VMM never holds (hot-unplugged) is not looked for in its fds every scrape", async () => {
  let fdinfoReads = 0;
  const fs: FileSystem = {
    ...denoFileSystem,
    readTextFile: (path, options) => {
      if (path.includes("/5401/fdinfo/")) fdinfoReads++;
      return denoFileSystem.readTextFile(path, options);
    },
  };
  await withTree([], async (scrape) => {
    for (let i = 0; i < 10; i++) {
      strictEqual(seriesValue(await scrape(), 'kvm_exporter_tap_problems{reason="not_held"}'), "1");
    }
    // A scan, then a few at the next scrapes (QEMU opens its taps a moment after the VM shows),
    // then at most one a minute.
    ok(fdinfoReads <= 4, `${fdinfoReads} scans of thief's fds in 10 scrapes`);
  }, fs);
});

Deno.test("tap collector: a tap that vanishes between scrapes costs only itself", async () => {
  await withTree([], async (scrape, tmp) => {
    ok((await scrape()).includes(`kvm_vm_network_info{${PVE}`));
    await Deno.writeTextFile(`${tmp}/proc/5001/net/dev`, HEAD);
    const text = await scrape();
    ok(!text.includes(`{${PVE}}`));
    strictEqual(seriesValue(text, 'kvm_exporter_tap_problems{reason="missing"}'), "3");
    strictEqual(
      seriesValue(text, 'kvm_vm_network_receive_bytes_total{domain="plain",interface="vm1tap"}'),
      "9",
    );
  });
});

Deno.test("tap collector: interface-include and -exclude pick the taps; off is off", async () => {
  await withTree([
    "--collector.tap.interface-include=^(tap|vm|skip)",
    "--collector.tap.interface-exclude=^skip|^tap100i[12]$",
  ], async (scrape) => {
    const text = await scrape();
    ok(text.includes(`kvm_vm_network_info{${PVE}`));
    ok(text.includes('interface="vm1tap"'));
    ok(!text.includes('interface="skipme"'));
    strictEqual(seriesValue(text, 'kvm_exporter_tap_problems{reason="bad_line"}'), "0");
    strictEqual(seriesValue(text, 'kvm_exporter_tap_problems{reason="missing"}'), "0");
  });
  await withTree(["--no-collector.tap"], async (scrape) => {
    const text = await scrape();
    ok(!text.includes("kvm_vm_network_"));
    ok(!text.includes("kvm_exporter_tap_problems"));
  });
});

Deno.test("tap collector: a tap two VMs name is neither's", async () => {
  await withTree([], async (scrape, tmp) => {
    await Deno.mkdir(`${tmp}/kvm/5501-1`);
    await Deno.mkdir(`${tmp}/proc/5501/net`, { recursive: true });
    await Deno.writeTextFile(
      `${tmp}/proc/5501/cmdline`,
      argv("qemu-system-x86_64", "-name", "twin", "-netdev", "tap,id=x,ifname=vm1tap"),
    );
    await Deno.writeTextFile(
      `${tmp}/proc/5501/net/dev`,
      HEAD + "vm1tap: 18446744073709551615 7 0 0 0 0 0 0 9 8 0 0 0 0 0 0\n",
    );
    const text = await scrape();
    ok(!text.includes('interface="vm1tap"'));
    strictEqual(seriesValue(text, 'kvm_exporter_tap_problems{reason="ambiguous"}'), "2");
    ok(text.includes(`kvm_vm_network_info{${PVE}`), "the others are still there");
  });
});

Deno.test("tap collector: a net/dev read that blocks costs one deadline, then counts as blocked", async () => {
  await withTree(
    ["--no-collector.kvm_stat", "--web.scrape-timeout=300ms"],
    async (scrape, tmp, logs) => {
      // A read that never returns: a FIFO with no writer stands for it.
      const fifo = `${tmp}/proc/5101/net/dev`;
      await Deno.remove(fifo);
      await mkfifo(fifo);
      try {
        const first = await scrape();
        strictEqual(seriesValue(first, 'kvm_scrape_collector_success{collector="tap"}'), "0");
        const second = await scrape();
        strictEqual(seriesValue(second, 'kvm_scrape_collector_success{collector="tap"}'), "1");
        // plain's two taps: blocked, not unreadable (only gone's tap is).
        strictEqual(seriesValue(second, 'kvm_exporter_tap_problems{reason="blocked"}'), "2");
        strictEqual(seriesValue(second, 'kvm_exporter_tap_problems{reason="unreadable"}'), "1");
        ok(second.includes(`kvm_vm_network_info{${PVE}`), "the others are still there");
        ok(logs.some((l) => l.includes("blocked")), logs.join(""));
      } finally {
        await releaseFifo(fifo).catch(() => {});
      }
    },
  );
});

Deno.test("tap collector reads net/dev once per network namespace per scrape", async () => {
  let netDevReads = 0;
  const fs: FileSystem = {
    ...denoFileSystem,
    readTextFile: (path, options) => {
      if (path.endsWith("/net/dev")) netDevReads++;
      return denoFileSystem.readTextFile(path, options);
    },
  };
  await withTree([], async (scrape, tmp) => {
    // As on Proxmox: pve, plain and three more VMMs in the host's namespace, whose net/dev lists
    // every VM's taps. gone's ns/net cannot be read: its net/dev is read on its own.
    const extra = [5601, 5602, 5603];
    const host = HEAD + "tap100i0: 1000 10 1 2 0 0 0 0 5000 50 3 4 0 0 0 0\n" +
      "tap100i1: 1000 10 oops\n" +
      "vm1tap: 18446744073709551615 7 0 0 0 0 0 0 9 8 0 0 0 0 0 0\n" +
      "skipme: 1 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0\n" +
      extra.map((pid) => `x${pid}: ${pid} 1 0 0 0 0 0 0 ${pid} 1 0 0 0 0 0 0\n`).join("");
    for (const pid of [5001, 5101, ...extra]) {
      await Deno.mkdir(`${tmp}/proc/${pid}/ns`, { recursive: true });
      await Deno.mkdir(`${tmp}/proc/${pid}/net`, { recursive: true });
      await Deno.symlink("net:[4026531840]", `${tmp}/proc/${pid}/ns/net`);
      await Deno.writeTextFile(`${tmp}/proc/${pid}/net/dev`, host);
    }
    for (const pid of extra) {
      await Deno.mkdir(`${tmp}/kvm/${pid}-1`);
      await Deno.writeTextFile(
        `${tmp}/proc/${pid}/cmdline`,
        argv("qemu-system-x86_64", "-name", `vm${pid}`, "-netdev", `tap,id=a,ifname=x${pid}`),
      );
    }
    for (let i = 1; i <= 3; i++) {
      netDevReads = 0;
      const text = await scrape();
      strictEqual(netDevReads, 2, `scrape ${i}: the host namespace's, and gone's own`);
      strictEqual(seriesValue(text, `kvm_vm_network_transmit_bytes_total{${PVE}}`), "1000");
      strictEqual(
        seriesValue(text, 'kvm_vm_network_receive_bytes_total{domain="plain",interface="vm1tap"}'),
        "9",
      );
      for (const pid of extra) {
        strictEqual(
          seriesValue(
            text,
            `kvm_vm_network_transmit_bytes_total{domain="vm${pid}",interface="x${pid}"}`,
          ),
          `${pid}`,
        );
      }
      strictEqual(seriesValue(text, 'kvm_exporter_tap_problems{reason="bad_line"}'), "1");
      strictEqual(seriesValue(text, 'kvm_exporter_tap_problems{reason="missing"}'), "1");
      strictEqual(seriesValue(text, 'kvm_exporter_tap_problems{reason="unreadable"}'), "1");
    }
    // The VMM read through exits: the next VM of the namespace reads the same file.
    await Deno.remove(`${tmp}/proc/5001/net/dev`);
    netDevReads = 0;
    const text = await scrape();
    strictEqual(netDevReads, 3);
    strictEqual(seriesValue(text, 'kvm_exporter_tap_problems{reason="unreadable"}'), "1");
    strictEqual(
      seriesValue(text, 'kvm_vm_network_transmit_bytes_total{domain="vm5603",interface="x5603"}'),
      "5603",
    );
  }, fs);
});
