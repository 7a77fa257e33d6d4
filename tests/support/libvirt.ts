/**
 * Real libvirtd for tests: starts `virtlogd -d` and `libvirtd -d` when they
 * are not running (there is no systemd here), reports what it started, stops
 * only that, by pid. Also runs transient domains with `virsh create`.
 *
 * @module
 */

import { waitFor } from "./exporter_process.ts";

/** libvirtd's read-only socket (monolithic daemon). */
export const LIBVIRT_SOCKET_RO = "/run/libvirt/libvirt-sock-ro";

const DAEMONS = {
  virtlogd: "/run/virtlogd.pid",
  libvirtd: "/run/libvirtd.pid",
} as const;

type Daemon = keyof typeof DAEMONS;

/** Why real libvirt tests cannot run here, or undefined when they can. */
export function libvirtUnavailable(): string | undefined {
  if (Deno.uid() !== 0) return "libvirtd tests need root";
  for (const tool of ["/usr/sbin/libvirtd", "/usr/sbin/virtlogd", "/usr/bin/virsh"]) {
    try {
      Deno.statSync(tool);
    } catch {
      return `${tool} is missing (apt-get install libvirt-daemon-system libvirt-clients)`;
    }
  }
  return undefined;
}

/** The daemons as a test found or started them. */
export interface LibvirtDaemons {
  /** The daemons this helper started (and will stop). */
  readonly started: readonly Daemon[];
  /** libvirtd's pid now. */
  libvirtdPid(): number | undefined;
  /** SIGKILLs libvirtd and waits until it is gone (only if this helper started it). */
  killLibvirtd(): Promise<void>;
  /** Starts libvirtd again and waits for its read-only socket. */
  startLibvirtd(): Promise<void>;
  /** Stops what this helper started, by pid, and ends this test's turn with the daemons. */
  stop(): Promise<void>;
}

/** Whether a process exists and is not a zombie waiting to be reaped. */
function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** The pid a daemon's pid file names, if that process is alive and is the daemon. */
function runningPid(daemon: Daemon): number | undefined {
  try {
    const pid = Number(Deno.readTextFileSync(DAEMONS[daemon]).trim());
    const comm = Deno.readTextFileSync(`/proc/${pid}/comm`).trim();
    return comm === daemon && alive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

async function run(command: string, args: string[]): Promise<string> {
  const output = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" })
    .output();
  const text = new TextDecoder().decode(output.stdout);
  if (!output.success) {
    const stderr = new TextDecoder().decode(output.stderr).trim();
    throw new Error(`${command} ${args.join(" ")} failed (${output.code}): ${stderr}`);
  }
  return text;
}

async function socketAccepts(path: string): Promise<boolean> {
  try {
    const conn = await Deno.connect({ transport: "unix", path });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

async function startDaemon(daemon: Daemon): Promise<void> {
  await run(`/usr/sbin/${daemon}`, ["-d"]);
  await waitFor(() => runningPid(daemon) !== undefined, { what: `${daemon}'s pid file` });
  if (daemon === "libvirtd") {
    await waitFor(() => socketAccepts(LIBVIRT_SOCKET_RO), {
      what: `${LIBVIRT_SOCKET_RO} to accept`,
      timeoutMs: 30_000,
    });
  }
}

async function stopPid(pid: number, signal: Deno.Signal): Promise<void> {
  try {
    Deno.kill(pid, signal);
  } catch {
    return; // Already gone.
  }
  const gone = () => !alive(pid);
  try {
    await waitFor(gone, { what: `pid ${pid} to exit`, timeoutMs: 15_000 });
  } catch {
    Deno.kill(pid, "SIGKILL");
    await waitFor(gone, { what: `pid ${pid} to exit after SIGKILL` });
  }
}

/**
 * Held by a test between {@linkcode ensureLibvirtDaemons} and its `stop()`: test files run in
 * parallel, and one that stops (or kills) the libvirtd it started must not pull it from under
 * another that found it running. The kernel drops the lock if the test process dies.
 */
const DAEMONS_LOCK = `${Deno.env.get("TMPDIR") ?? "/tmp"}/kvm_exporter_libvirt_daemons.lock`;

/**
 * Makes sure virtlogd and libvirtd run, starting those that do not, for this test alone: the
 * tests that use the real daemons take turns (a lock file), so each starts and stops its own.
 *
 * @returns What runs, and how to stop what was started (which ends this test's turn).
 */
export async function ensureLibvirtDaemons(): Promise<LibvirtDaemons> {
  const lock = await Deno.open(DAEMONS_LOCK, { create: true, write: true });
  await lock.lock(true);
  const started: Daemon[] = [];
  try {
    for (const daemon of ["virtlogd", "libvirtd"] as const) {
      if (runningPid(daemon) !== undefined) continue;
      await startDaemon(daemon);
      started.push(daemon);
    }
  } catch (error) {
    lock.close(); // Closing the file drops the lock.
    throw error;
  }
  return {
    started,
    libvirtdPid: () => runningPid("libvirtd"),
    async killLibvirtd() {
      const pid = runningPid("libvirtd");
      if (!started.includes("libvirtd") || pid === undefined) {
        throw new Error("Refusing to kill a libvirtd this test did not start");
      }
      await stopPid(pid, "SIGKILL");
    },
    async startLibvirtd() {
      if (runningPid("libvirtd") === undefined) await startDaemon("libvirtd");
    },
    async stop() {
      try {
        for (const daemon of [...started].reverse()) {
          const pid = runningPid(daemon);
          if (pid !== undefined) await stopPid(pid, "SIGTERM");
        }
      } finally {
        lock.close();
      }
    },
  };
}

/** Options of {@linkcode createDomain}. */
export interface DomainOptions {
  /** The domain's name. */
  name: string;
  /** Its fixed UUID. */
  uuid: string;
  /** vCPUs. */
  vcpus: number;
  /** `kvm` where /dev/kvm exists, else `qemu` (TCG). */
  type: "kvm" | "qemu";
  /** Extra XML inside `<metadata>`. */
  metadata: string;
  /** Extra XML inside `<devices>` (disks, interfaces); none by default. */
  devices?: string;
  /** The `<memballoon>` element; `<memballoon model='none'/>` by default. */
  memballoon?: string;
}

/** A running transient domain. */
export interface Domain {
  /** The QEMU pid. */
  pid: number;
  /** Destroys the domain (safe to call twice). */
  destroy(): Promise<void>;
}

/**
 * Starts a transient domain, with no disk and no network unless `devices` says
 * (the firmware finds nothing to boot and idles), and waits until its QEMU
 * runs.
 *
 * @param options Name, UUID, vCPUs, type, metadata, devices and balloon.
 * @returns The running domain.
 */
export async function createDomain(options: DomainOptions): Promise<Domain> {
  // A domain left over from an interrupted run holds the UUID.
  await run("/usr/bin/virsh", ["-c", "qemu:///system", "destroy", options.uuid]).catch(() => {});
  const xml = `<domain type='${options.type}'>
  <name>${options.name}</name>
  <uuid>${options.uuid}</uuid>
  <metadata>${options.metadata}</metadata>
  <memory unit='MiB'>64</memory>
  <vcpu>${options.vcpus}</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <video><model type='none'/></video>${options.devices ?? ""}
    ${options.memballoon ?? "<memballoon model='none'/>"}
  </devices>
</domain>
`;
  const file = await Deno.makeTempFile({ suffix: ".xml" });
  try {
    await Deno.writeTextFile(file, xml);
    await run("/usr/bin/virsh", ["-c", "qemu:///system", "create", file]);
  } finally {
    await Deno.remove(file);
  }
  const pidFile = `/run/libvirt/qemu/${options.name}.pid`;
  let pid = 0;
  await waitFor(() => {
    pid = Number(Deno.readTextFileSync(pidFile).trim());
    return pid > 0;
  }, { what: pidFile });
  let destroyed = false;
  return {
    pid,
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      await run("/usr/bin/virsh", ["-c", "qemu:///system", "destroy", options.uuid]).catch(() => {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch {
          // Gone.
        }
      });
    },
  };
}

/**
 * Runs `virsh -r domstats --raw` on one domain and parses `field=value` lines.
 *
 * @param name The domain.
 * @param groups The group flags, e.g. `["--vm", "--vcpu", "--state"]`.
 * @returns Field → value text, in virsh's order.
 */
export async function virshDomstats(name: string, groups: string[]): Promise<Map<string, string>> {
  const text = await run("/usr/bin/virsh", [
    "-r",
    "-c",
    "qemu:///system",
    "domstats",
    "--raw",
    ...groups,
    name,
  ]);
  const fields = new Map<string, string>();
  for (const line of text.split("\n")) {
    const match = /^\s+([^=\s]+)=(.*)$/.exec(line);
    if (match !== null) fields.set(match[1]!, match[2]!);
  }
  return fields;
}

/**
 * The vCPU threads of a QEMU process, by vCPU index, from their names
 * (`CPU N/KVM` or `CPU N/TCG`; libvirt starts QEMU with `debug-threads=on`).
 *
 * @param pid The QEMU pid.
 * @returns vCPU index → thread id.
 */
export function vcpuThreads(pid: number): Map<number, number> {
  const threads = new Map<number, number>();
  for (const entry of Deno.readDirSync(`/proc/${pid}/task`)) {
    const tid = Number(entry.name);
    try {
      const comm = Deno.readTextFileSync(`/proc/${pid}/task/${tid}/comm`).trim();
      const match = /^CPU (\d+)\/(KVM|TCG)$/.exec(comm);
      if (match !== null) threads.set(Number(match[1]), tid);
    } catch {
      // The thread exited.
    }
  }
  return threads;
}

const PROBE = new URL("./libvirt_probe.ts", import.meta.url).pathname;

/**
 * Runs `libvirt_probe.ts` in a child Deno with exactly these permission flags.
 *
 * @param flags The `--allow-*` flags.
 * @param socket The libvirt socket.
 * @returns The probe's JSON line: `{records}` or `{reason, message}`.
 */
export async function probeLibvirt(
  flags: string[],
  socket: string,
): Promise<Record<string, unknown>> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "--no-lock", ...flags, PROBE, socket],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (output.code !== 0) {
    throw new Error(`libvirt_probe.ts failed: ${new TextDecoder().decode(output.stderr)}`);
  }
  return JSON.parse(new TextDecoder().decode(output.stdout));
}

/** Why {@linkcode monitorBacklog} cannot tell, or undefined when it can. */
export function ssUnavailable(): string | undefined {
  for (const path of ["/usr/bin/ss", "/bin/ss", "/usr/sbin/ss"]) {
    try {
      Deno.statSync(path);
      return undefined;
    } catch {
      // Not there.
    }
  }
  return "ss is not installed (apt-get install iproute2)";
}

/**
 * Bytes waiting unread in QEMU's end of its libvirt monitor socket (`ss -x`
 * Recv-Q): above 0 while a stopped QEMU has a command pending.
 *
 * @param pid The QEMU pid.
 * @returns The Recv-Q of its `monitor.sock` connection, 0 when there is none.
 */
export async function monitorBacklog(pid: number): Promise<number> {
  const text = await run("ss", ["-x", "-p"]);
  for (const line of text.split("\n")) {
    if (!line.includes("monitor.sock") || !line.includes(`pid=${pid},`)) continue;
    return Number(line.trim().split(/\s+/)[2] ?? 0);
  }
  return 0;
}
