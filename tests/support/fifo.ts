/**
 * FIFOs as stat files and command lines: the one read a test can make block
 * on demand, on any Linux. A FIFO's open blocks until a writer opens it.
 *
 * @module
 */

import { REPO_ROOT, treeArgs } from "./exporter_process.ts";

/**
 * Creates a FIFO.
 *
 * @param path Where.
 */
export async function mkfifo(path: string): Promise<void> {
  const output = await new Deno.Command("mkfifo", { args: [path], stderr: "piped" }).output();
  if (!output.success) {
    throw new Error(`mkfifo ${path}: ${new TextDecoder().decode(output.stderr)}`);
  }
}

/**
 * Unblocks whoever is opening a FIFO for reading: opens it for writing (which
 * returns at once when a reader waits) and closes it, so the reader sees EOF.
 *
 * @param path The FIFO.
 */
export async function releaseFifo(path: string): Promise<void> {
  const writer = await Deno.open(path, { write: true });
  writer.close();
}

/**
 * Unblocks whoever is opening a FIFO, like {@linkcode releaseFifo}, but never waits: opened for
 * reading and writing, a FIFO does not block (Linux), so this also returns when nobody is opening
 * it, as a test's cleanup after a failed assertion needs.
 *
 * @param path The FIFO.
 */
export async function unblockFifo(path: string): Promise<void> {
  const both = await Deno.open(path, { read: true, write: true });
  both.close();
}

/**
 * Whether a thread of process `pid` is blocked opening a FIFO (its kernel wait channel is
 * `wait_for_partner`): proof that a read on a FIFO is in flight, without touching the FIFO.
 *
 * @param pid The process; `Deno.pid` for this one.
 * @returns True when one of its threads waits for a FIFO's other end.
 */
export async function blockedOnFifo(pid: number): Promise<boolean> {
  for await (const task of Deno.readDir(`/proc/${pid}/task`)) {
    try {
      const wchan = await Deno.readTextFile(`/proc/${pid}/task/${task.name}/wchan`);
      if (wchan === "wait_for_partner") return true;
    } catch {
      // The thread exited while we listed.
    }
  }
  return false;
}

/**
 * Copies a directory tree (files and dirs only).
 *
 * @param from Source dir.
 * @param to Destination dir (created).
 */
export async function copyTree(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    if (entry.isDirectory) await copyTree(`${from}/${entry.name}`, `${to}/${entry.name}`);
    else await Deno.copyFile(`${from}/${entry.name}`, `${to}/${entry.name}`);
  }
}

/**
 * Copies tests/fixtures/sample into `dir` with a vCPU thread's `schedstat` (procfs, read by the
 * vcpu_time collector) made a FIFO: a scrape blocks opening it until a writer releases it
 * ({@linkcode releaseFifo}). Debugfs stat files are opened non-blocking, so a FIFO among them
 * is skipped at once (`not_regular`); procfs reads keep the blocking open, and this one stands for
 * a read that blocks (a VMM in D state).
 *
 * @param dir Where the copy goes (created).
 * @returns The FIFO's path, and the flags that point the exporter at the copy.
 */
export async function sampleWithFifo(dir: string): Promise<{ fifo: string; args: string[] }> {
  await copyTree(`${REPO_ROOT}/tests/fixtures/sample`, dir);
  const fifo = `${dir}/proc/20431/task/20434/schedstat`;
  await Deno.remove(fifo);
  await mkfifo(fifo);
  return {
    fifo,
    args: treeArgs(dir),
  };
}
