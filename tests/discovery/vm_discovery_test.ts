import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { CMDLINE_READ_CONCURRENCY, VmDiscovery } from "../../src/discovery/vm_discovery.ts";
import { createLogger } from "../../src/log/logger.ts";
import { denoFileSystem, type FileSystem } from "../../src/system/file_system.ts";
import { ReadGuard } from "../../src/system/read_guard.ts";
import { waitFor } from "../support/exporter_process.ts";
import { mkfifo, releaseFifo } from "../support/fifo.ts";

async function tree(tmp: string, dirs: Record<string, string>): Promise<void> {
  for (const [dir, name] of Object.entries(dirs)) {
    await Deno.mkdir(`${tmp}/kvm/${dir}`, { recursive: true });
    const pid = dir.split("-")[0];
    await Deno.mkdir(`${tmp}/proc/${pid}`, { recursive: true });
    await Deno.writeTextFile(`${tmp}/proc/${pid}/cmdline`, `qemu\0-name\0guest=${name}\0`);
  }
}

Deno.test("VmDiscovery reads a command line once per dir, forgets it when the dir goes, warns once per rename", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_discovery_" });
  try {
    await tree(tmp, { "10-1": "web", "20-1": "web" });
    const reads: string[] = [];
    const fs: FileSystem = {
      ...denoFileSystem,
      readTextFile: (path, options) => {
        reads.push(path.slice(tmp.length));
        return denoFileSystem.readTextFile(path, options);
      },
    };
    const logs: string[] = [];
    const discovery = new VmDiscovery({
      kvmdebugDir: `${tmp}/kvm`,
      procfs: `${tmp}/proc`,
      fs,
      logger: createLogger({ write: (line) => logs.push(line) }),
    });
    const config = { entries: [] };
    const names = async (): Promise<string[]> =>
      (await discovery.discover(config, false)).vms.map((vm) => vm.domain);

    deepStrictEqual(await names(), ["web", "web@20-1"]);
    deepStrictEqual(await names(), ["web", "web@20-1"]);
    deepStrictEqual(reads.sort(), ["/proc/10/cmdline", "/proc/20/cmdline"], "once per dir");
    strictEqual(logs.filter((l) => l.includes("Two VMs resolve to one name")).length, 1);

    // VM 20-1 exits; a new VM reuses pid 20 with another name: its command line is read anew.
    await Deno.remove(`${tmp}/kvm/20-1`);
    deepStrictEqual(await names(), ["web"]);
    await tree(tmp, { "20-1": "db" });
    deepStrictEqual(await names(), ["web", "db"]);
    strictEqual(reads.filter((r) => r === "/proc/20/cmdline").length, 2);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("VmDiscovery names a VM by its dir while its command line is a FIFO, past the deadline", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_discovery_" });
  try {
    await tree(tmp, { "10-1": "web", "20-1": "db" });
    await Deno.remove(`${tmp}/proc/20/cmdline`);
    await mkfifo(`${tmp}/proc/20/cmdline`);
    const reads = new ReadGuard();
    const discovery = new VmDiscovery({
      kvmdebugDir: `${tmp}/kvm`,
      procfs: `${tmp}/proc`,
      fs: denoFileSystem,
      logger: createLogger({ write: () => {} }),
      reads,
    });
    const names = async (signal = AbortSignal.timeout(300)): Promise<string[]> =>
      (await discovery.discover({ entries: [] }, false, signal)).vms.map((vm) => vm.domain);
    // Before: the read blocked discovery, and the scrape, for good.
    deepStrictEqual(await names(), ["web", "20-1"]);
    strictEqual(reads.blocked, 1);
    // A read blocked past one deadline is not waited for again, even without a deadline.
    const never = new AbortController().signal;
    let guard: ReturnType<typeof setTimeout> | undefined;
    const again = await Promise.race([
      names(never),
      new Promise<string>((resolve) => guard = setTimeout(() => resolve("waited"), 10_000)),
    ]);
    clearTimeout(guard);
    deepStrictEqual(again, ["web", "20-1"]);
    strictEqual(reads.blocked, 1, "not read again while blocked");
    await releaseFifo(`${tmp}/proc/20/cmdline`);
    await waitFor(() => reads.blocked === 0, { what: "the blocked read to return" });
    // What it returned was no command line: not kept, so a readable one names the VM next time.
    await Deno.remove(`${tmp}/proc/20/cmdline`);
    await Deno.writeTextFile(`${tmp}/proc/20/cmdline`, "qemu\0-name\0guest=db\0");
    deepStrictEqual(await names(), ["web", "db"]);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("VmDiscovery gives a VM its command-line name once a blocked read returns", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_discovery_" });
  try {
    await tree(tmp, { "10-1": "web" });
    // A VMM in D state: its cmdline read returns only when the test says (a real host does this
    // only by chance).
    let release = (): void => {};
    const released = new Promise<void>((resolve) => release = resolve);
    const fs: FileSystem = {
      ...denoFileSystem,
      readTextFile: async (path, options) => {
        await released;
        return await denoFileSystem.readTextFile(path, options);
      },
    };
    const discovery = new VmDiscovery({
      kvmdebugDir: `${tmp}/kvm`,
      procfs: `${tmp}/proc`,
      fs,
      logger: createLogger({ write: () => {} }),
    });
    const discover = (): Promise<string[]> =>
      discovery.discover({ entries: [] }, false, AbortSignal.timeout(100)).then((d) =>
        d.vms.map((vm) => `${vm.domain}:${vm.nameSource}`)
      );
    deepStrictEqual(await discover(), ["10-1:dir"]);
    release();
    await waitFor(async () => (await discover())[0] === "web:cmdline", {
      what: "the name from the command line",
    });
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("VmDiscovery exposes the VMM's -uuid on each VM that has one", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_discovery_" });
  try {
    await tree(tmp, { "10-1": "web", "20-1": "db" });
    await Deno.writeTextFile(
      `${tmp}/proc/10/cmdline`,
      "qemu\0-name\0guest=web\0-uuid\0" + "6A1F3B2C-0D4E-4F5A-9B8C-7D6E5F4A3B21\0",
    );
    const discovery = new VmDiscovery({
      kvmdebugDir: `${tmp}/kvm`,
      procfs: `${tmp}/proc`,
      fs: denoFileSystem,
      logger: createLogger({ write: () => {} }),
    });
    const { vms } = await discovery.discover({ entries: [] }, false);
    deepStrictEqual(vms.map((vm) => [vm.domain, vm.uuid]), [
      ["web", "6a1f3b2c-0d4e-4f5a-9b8c-7d6e5f4a3b21"],
      ["db", undefined],
    ]);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("VmDiscovery retries a command line whose read failed, and keeps its -uuid and -qmp once read", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_discovery_" });
  try {
    await tree(tmp, { "10-1": "web", "20-1": "db", "30-1": "app" });
    await Deno.writeTextFile(
      `${tmp}/proc/20/cmdline`,
      "qemu\0-name\0guest=db\0-uuid\0" + "6a1f3b2c-0d4e-4f5a-9b8c-7d6e5f4a3b21\0" +
        "-qmp\0unix:/run/db.qmp,server=on,wait=off\0",
    );
    // Out of fds for one pass: the read fails as Deno reports EMFILE.
    let failing = true;
    const fs: FileSystem = {
      ...denoFileSystem,
      readTextFile: (path, options) =>
        failing && /\/[23]0\/cmdline$/.test(path)
          ? Promise.reject(Object.assign(new Error("Too many open files (os error 24)"), {
            code: "EMFILE",
          }))
          : denoFileSystem.readTextFile(path, options),
    };
    const logs: string[] = [];
    const discovery = new VmDiscovery({
      kvmdebugDir: `${tmp}/kvm`,
      procfs: `${tmp}/proc`,
      fs,
      logger: createLogger({ write: (line) => logs.push(line) }),
    });
    const discover = async () => {
      const found = await discovery.discover({ entries: [] }, false);
      return {
        vms: found.vms.map((vm) => [vm.domain, vm.nameSource, vm.uuid, vm.qmpSockets.join()]),
        errors: [...found.cmdlineErrors],
      };
    };
    const failed = {
      vms: [
        ["web", "cmdline", undefined, ""],
        ["20-1", "dir", undefined, ""],
        ["30-1", "dir", undefined, ""],
      ],
      errors: [["20-1", "other"], ["30-1", "other"]],
    };
    deepStrictEqual(await discover(), failed);
    deepStrictEqual(await discover(), failed, "tried again, still failing");
    // One cause, one line: not one per VM, nor per scrape.
    const warns = logs.filter((l) => l.includes("level=warn") && l.includes("/cmdline"));
    strictEqual(warns.length, 1, logs.join(""));
    ok(warns[0]!.includes("Too many open files"), warns[0]);
    failing = false;
    deepStrictEqual(await discover(), {
      vms: [
        ["web", "cmdline", undefined, ""],
        ["db", "cmdline", "6a1f3b2c-0d4e-4f5a-9b8c-7d6e5f4a3b21", "/run/db.qmp"],
        ["app", "cmdline", undefined, ""],
      ],
      errors: [],
    });
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("VmDiscovery reads at most CMDLINE_READ_CONCURRENCY command lines at once", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_discovery_" });
  try {
    const vms = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`${i + 1}-1`, `vm${i}`]));
    await tree(tmp, vms);
    let open = 0;
    let most = 0;
    const fs: FileSystem = {
      ...denoFileSystem,
      readTextFile: async (path, options) => {
        most = Math.max(most, ++open);
        try {
          await new Promise((resolve) => setTimeout(resolve, 0));
          return await denoFileSystem.readTextFile(path, options);
        } finally {
          open--;
        }
      },
    };
    const discovery = new VmDiscovery({
      kvmdebugDir: `${tmp}/kvm`,
      procfs: `${tmp}/proc`,
      fs,
      logger: createLogger({ write: () => {} }),
    });
    const found = await discovery.discover({ entries: [] }, false);
    strictEqual(found.vms.filter((vm) => vm.nameSource === "cmdline").length, 100);
    strictEqual(most, CMDLINE_READ_CONCURRENCY);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("VmDiscovery counts as blocked only the command-line reads that started, not those queued for a slot", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_discovery_" });
  try {
    const count = CMDLINE_READ_CONCURRENCY + 24;
    await tree(
      tmp,
      Object.fromEntries(Array.from({ length: count }, (_, i) => [`${100 + i}-1`, `vm${i}`])),
    );
    let release!: () => void;
    const gate = new Promise<void>((resolve) => release = resolve);
    let started = 0;
    const fs: FileSystem = {
      ...denoFileSystem,
      readTextFile: async (path, options) => {
        started++;
        await gate; // Every command line hangs, as on a host out of file descriptors.
        return await denoFileSystem.readTextFile(path, options);
      },
    };
    const reads = new ReadGuard();
    const discovery = new VmDiscovery({
      kvmdebugDir: `${tmp}/kvm`,
      procfs: `${tmp}/proc`,
      fs,
      logger: createLogger({ write: () => {} }),
      reads,
    });
    const found = await discovery.discover({ entries: [] }, false, AbortSignal.timeout(300));
    strictEqual(found.vms.length, count);
    strictEqual(started, CMDLINE_READ_CONCURRENCY, "reads started: one per slot");
    // Before: every read queued for a slot at the deadline counted as blocked too, and the guard
    // then refused other reads of the scrape.
    strictEqual(reads.blocked, CMDLINE_READ_CONCURRENCY);
    release();
    await waitFor(() => reads.blocked === 0, { what: "the started reads to return" });
    const named = await discovery.discover({ entries: [] }, false, AbortSignal.timeout(5000));
    strictEqual(named.vms.filter((vm) => vm.nameSource !== "dir").length, count);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("VmDiscovery names the VMs again only when the VM dirs or vm.yaml change", async (t) => {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_discovery_" });
  try {
    await tree(tmp, { "10-1": "web", "20-1": "db" });
    const discovery = new VmDiscovery({
      kvmdebugDir: `${tmp}/kvm`,
      procfs: `${tmp}/proc`,
      fs: denoFileSystem,
      logger: createLogger({ write: () => {} }),
    });
    const listed = { entries: [] };
    const renamed = { entries: [{ name: "shop", kvmDebugDir: "20-1", labels: {} }] };
    let last = await discovery.discover(listed, false);
    const steps: {
      name: string;
      change: () => Promise<unknown>;
      config: typeof listed | typeof renamed;
      same: boolean;
      domains: string[];
    }[] = [
      { name: "nothing changed", change: async () => {}, config: listed, same: true, domains: [] },
      {
        name: "a VM starts",
        change: () => tree(tmp, { "30-1": "app" }),
        config: listed,
        same: false,
        domains: ["web", "db", "app"],
      },
      { name: "steady again", change: async () => {}, config: listed, same: true, domains: [] },
      {
        name: "vm.yaml names one",
        change: async () => {},
        config: renamed,
        same: false,
        domains: ["web", "shop", "app"],
      },
      {
        name: "a VM exits",
        change: () => Deno.remove(`${tmp}/kvm/10-1`),
        config: renamed,
        same: false,
        domains: ["shop", "app"],
      },
    ];
    for (const step of steps) {
      await t.step(step.name, async () => {
        await step.change();
        const found = await discovery.discover(step.config, false);
        strictEqual(found.vms === last.vms, step.same);
        if (!step.same) deepStrictEqual(found.vms.map((vm) => vm.domain), step.domains);
        last = found;
      });
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
