/**
 * Soak: 5,000 scrapes of the real main.ts process on a generated 10-VM tree. Open fds and RSS
 * are sampled from procfs every 500 scrapes, between batches (no scrape in flight). Open fds
 * other than sockets (files, pipes, epoll, eventfds, timers) must be exactly equal from the first
 * sample on (after a warm-up of 500 scrapes); sockets at most those of the idle process (the
 * listener, the runtime's own) plus two per client (fetch's pool replaces keep-alive connections
 * as it likes, and the server closes the old ones a moment later); RSS must stay within the
 * bound below. The numbers are printed.
 *
 * @module
 */

import assert from "node:assert/strict";
import { parseExposition } from "../support/exposition_parser.ts";
import { LOOPBACK_ANY_PORT, startExporter, treeArgs } from "../support/exporter_process.ts";

const SCRAPES = 5_000;
const SAMPLE_EVERY = 500;
/** Scrapes in flight at once: one keep-alive connection each, so the fd count is stable. */
const CLIENTS = 2;
const MB = 1024 * 1024;

/**
 * RSS may grow by at most half its post-warm-up size or 40 MB, whichever is more: V8 sizes its
 * heap lazily and a young process's RSS grows for a while without leaking. Measured here
 * (2 cores, shared): see the printed samples and the commit message.
 */
function rssBound(first: number): number {
  return Math.max(first * 1.5, first + 40 * MB);
}

const VM_STATS = Array.from({ length: 12 }, (_, i) => `stat_${i}`);
const VCPU_STATS = Array.from({ length: 6 }, (_, i) => `vcpu_stat_${i}`);

/** A debugfs tree with 10 VMs of 2 vCPUs (252 stat files) and their command lines. */
async function layOutTree(tmp: string): Promise<string[]> {
  await Deno.mkdir(`${tmp}/kvm`, { recursive: true });
  for (const stat of VM_STATS) await Deno.writeTextFile(`${tmp}/kvm/${stat}`, "1\n");
  for (let vm = 0; vm < 10; vm++) {
    const pid = 4000 + vm;
    const dir = `${tmp}/kvm/${pid}-${10 + vm}`;
    for (const vcpu of [0, 1]) {
      await Deno.mkdir(`${dir}/vcpu${vcpu}`, { recursive: true });
      for (const stat of VCPU_STATS) {
        await Deno.writeTextFile(`${dir}/vcpu${vcpu}/${stat}`, `${vm * 100 + vcpu}\n`);
      }
    }
    for (const stat of VM_STATS) await Deno.writeTextFile(`${dir}/${stat}`, `${vm}\n`);
    await Deno.mkdir(`${tmp}/proc/${pid}`, { recursive: true });
    await Deno.writeTextFile(
      `${tmp}/proc/${pid}/cmdline`,
      ["qemu-system-x86_64", "-name", `guest=vm-${vm},debug-threads=on`, ""].join("\0"),
    );
  }
  return treeArgs(tmp);
}

/** What a process holds: VmRSS in bytes, open sockets, and its other open fds. */
interface Sample {
  rss: number;
  sockets: number;
  otherFds: number;
}

async function sample(pid: number): Promise<Sample> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kb = Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1]);
  let sockets = 0;
  let otherFds = 0;
  for await (const entry of Deno.readDir(`/proc/${pid}/fd`)) {
    let target: string;
    try {
      target = await Deno.readLink(`/proc/${pid}/fd/${entry.name}`);
    } catch {
      continue; // Closed between the listing and now: a connection going away.
    }
    if (target.startsWith("socket:")) sockets++;
    else otherFds++;
  }
  return { rss: kb * 1024, sockets, otherFds };
}

const hasProcfs = await Deno.stat("/proc/self/status").then(() => true, () => false);
if (!hasProcfs) console.log("soak_test skipped: no /proc to sample RSS and fds from");

Deno.test({
  name: "main.ts soak: 5,000 scrapes of 10 VMs, open fds and RSS flat",
  ignore: !hasProcfs,
  fn: async () => {
    const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_soak_" });
    const client = Deno.createHttpClient({ poolMaxIdlePerHost: CLIENTS });
    try {
      await Deno.writeTextFile(`${tmp}/vm.yaml`, "");
      const args = await layOutTree(tmp);
      await using exporter = await startExporter([...args, LOOPBACK_ANY_PORT]);
      const url = `${exporter.baseUrl}/metrics`;
      let begun = 0;
      let done = 0;
      const scrape = async (): Promise<void> => {
        const response = await fetch(url, { client });
        const body = await response.text();
        assert.equal(response.status, 200, body);
        // Parsing every body would dominate the run; every 100th is checked in full.
        if (++done % 100 === 0) {
          const families = parseExposition(body);
          const vms = families.find((f) => f.name === "kvm_vm_info")?.samples.length;
          assert.equal(vms, 10);
        }
      };
      const idle = await sample(exporter.pid);
      const samples: ({ scrapes: number } & Sample)[] = [];
      const started = performance.now();
      while (done < SCRAPES) {
        const batchEnd = begun + SAMPLE_EVERY;
        await Promise.all(Array.from({ length: CLIENTS }, async () => {
          while (begun < batchEnd) {
            begun++;
            await scrape();
          }
        }));
        samples.push({ scrapes: done, ...await sample(exporter.pid) });
      }
      const seconds = (performance.now() - started) / 1000;
      console.log(`soak: ${done} scrapes in ${seconds.toFixed(1)} s (${CLIENTS} clients)`);
      console.log(
        `  idle: RSS ${
          (idle.rss / MB).toFixed(1)
        } MB, fds ${idle.otherFds} + ${idle.sockets} sockets`,
      );
      for (const s of samples) {
        console.log(
          `  after ${s.scrapes}: RSS ${(s.rss / MB).toFixed(1)} MB, ` +
            `fds ${s.otherFds} + ${s.sockets} sockets`,
        );
      }
      const first = samples[0]!;
      const last = samples.at(-1)!;
      assert.deepEqual(
        samples.map((s) => s.otherFds),
        samples.map(() => first.otherFds),
        "open fds other than sockets flat",
      );
      for (const s of samples) {
        assert.ok(s.sockets <= idle.sockets + 2 * CLIENTS, `sockets: ${s.sockets}`);
      }
      assert.ok(
        last.rss <= rssBound(first.rss),
        `RSS ${(last.rss / MB).toFixed(1)} MB > bound ${(rssBound(first.rss) / MB).toFixed(1)} MB`,
      );
      await exporter.stop();
    } finally {
      client.close();
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
