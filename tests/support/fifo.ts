/**
 * FIFOs as stat files, command lines and config files: the one read a test can make block
 * on demand, on any Linux. A FIFO's open blocks until a writer opens it. Also a child that
 * swaps a FIFO in and out of paths ({@linkcode startSwapper}), for reads that race it.
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

/** Options of {@linkcode startSwapper}. */
export interface SwapperOptions {
  /** The paths to swap, each with the regular file whose content it holds between swaps. */
  targets: { path: string; good: string }[];
  /** The FIFO put in each path's place in turn (hard-linked, so it is never used up). */
  fifo: string;
}

/** A child process swapping a FIFO in and out of paths, stopped by `await using`. */
export interface Swapper extends AsyncDisposable {
  /** The child's pid. */
  readonly pid: number;
}

/**
 * Starts a child process that, as fast as it can until stopped, puts a FIFO in each target's
 * place and then the good file back (each swap is a `link` and an atomic `rename`, so the path
 * never goes missing): a reader that checks a path's type and then opens it loses that race
 * often. Stopping it (`await using`, or on failure) kills it by pid and puts every good file
 * back.
 *
 * @param options The paths, their good files and the FIFO.
 * @returns The running swapper.
 */
export function startSwapper(options: SwapperOptions): Swapper {
  const script = `
    const { targets, fifo } = JSON.parse(Deno.args[0]);
    for (let n = 0; ; n++) {
      for (const { path, good } of targets) {
        for (const from of [fifo, good]) {
          const tmp = path + ".swap";
          Deno.linkSync(from, tmp);
          Deno.renameSync(tmp, path);
        }
      }
    }`;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", script, JSON.stringify(options)],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  return {
    pid: child.pid,
    async [Symbol.asyncDispose]() {
      try {
        Deno.kill(child.pid, "SIGKILL");
      } catch {
        // It exited already.
      }
      await child.status;
      for (const { path, good } of options.targets) {
        await Deno.remove(`${path}.swap`).catch(() => {});
        await Deno.copyFile(good, `${path}.swap`);
        await Deno.rename(`${path}.swap`, path);
      }
    },
  };
}

/**
 * Waits for `promise` at most `ms`: its value, or `"timeout"`. A promise still pending is left
 * to settle later (release what it waits on, e.g. with {@linkcode unblockFifo}).
 *
 * @param promise What to wait for.
 * @param ms The deadline.
 * @returns The value, or "timeout".
 */
export async function within<T>(promise: Promise<T>, ms: number): Promise<T | "timeout"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<"timeout">((resolve) => timer = setTimeout(() => resolve("timeout"), ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
