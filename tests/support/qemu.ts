/**
 * Starts real QEMU VMs for tests and always stops them by pid.
 *
 * @module
 */

import { waitFor } from "./exporter_process.ts";
import { programPath } from "./program_path.ts";

/** A running QEMU process. */
export interface QemuVm {
  /** The QEMU pid. */
  pid: number;
  /** The QMP socket path, if one was asked for. */
  qmpSocket: string | undefined;
  /** Kills QEMU (SIGKILL) and waits for it to exit. Safe to call twice. */
  stop(): Promise<void>;
  /** Same as stop(), for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** Options of {@linkcode startQemu}. */
export interface QemuOptions {
  /** The `-name guest=` value, before QEMU's `,,` escaping. */
  name: string;
  /** vCPUs. */
  smp: number;
  /** "kvm" needs /dev/kvm; "tcg" runs anywhere, slowly. */
  accel: "kvm" | "tcg";
  /** Where to put a QMP socket (`-qmp unix:PATH,server=on,wait=off`). */
  qmpSocket?: string;
  /** A config file for `-readconfig` (devices and monitors that do not show on the command line). */
  readConfig?: string;
  /** More arguments (disks, NICs), after the others. */
  extraArgs?: readonly string[];
}

/** Why real QEMU/KVM tests cannot run here, or undefined when they can. */
export function kvmUnavailable(): string | undefined {
  try {
    Deno.statSync("/dev/kvm");
  } catch {
    return "no /dev/kvm on this machine";
  }
  return qemuUnavailable();
}

/** Why QEMU tests cannot run here, or undefined when they can. */
export function qemuUnavailable(): string | undefined {
  return programPath("qemu-system-x86_64") === undefined
    ? "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)"
    : undefined;
}

/**
 * Starts QEMU with no disk unless `extraArgs` adds one (the firmware boots and idles) and waits until it
 * runs (and its QMP socket exists, if asked for).
 *
 * @param options Name, vCPUs, accelerator, QMP socket.
 * @returns The running VM.
 */
export async function startQemu(options: QemuOptions): Promise<QemuVm> {
  const args = [
    "-accel",
    options.accel,
    "-name",
    `guest=${options.name.replaceAll(",", ",,")},debug-threads=on`,
    "-m",
    "64",
    "-smp",
    String(options.smp),
    "-nodefaults",
    "-display",
    "none",
    "-no-reboot",
  ];
  if (options.readConfig !== undefined) args.push("-readconfig", options.readConfig);
  if (options.qmpSocket !== undefined) {
    args.push("-qmp", `unix:${options.qmpSocket.replaceAll(",", ",,")},server=on,wait=off`);
  }
  args.push(...options.extraArgs ?? []);
  const child = new Deno.Command("qemu-system-x86_64", {
    args,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let stopped = false;
  const status = child.status;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    try {
      child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    await status;
    await child.stderr.cancel().catch(() => {});
  };
  try {
    let exited = false;
    status.then(() => exited = true);
    await waitFor(async () => {
      if (exited) throw new Error(`QEMU exited at start: ${options.name}`);
      if (options.qmpSocket === undefined) return true;
      return await acceptsConnections(options.qmpSocket);
    }, { timeoutMs: 15_000, what: `QEMU ${options.name} to start` });
  } catch (error) {
    await stop();
    throw error;
  }
  return { pid: child.pid, qmpSocket: options.qmpSocket, stop, [Symbol.asyncDispose]: stop };
}

/**
 * Whether a unix socket accepts a connection: QEMU creates the socket file at bind(), a moment
 * before listen(), so the file alone does not say a client may connect yet.
 *
 * @param path The socket.
 * @returns True once a connection was accepted (and closed again).
 */
export async function acceptsConnections(path: string): Promise<boolean> {
  try {
    (await Deno.connect({ transport: "unix", path })).close();
    return true;
  } catch {
    return false;
  }
}
