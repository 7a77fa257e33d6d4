/**
 * Runs the real `main.ts` as a child process for tests: a long-running
 * exporter on a free loopback port ({@linkcode startExporter}) or a one-shot
 * run such as `--help` ({@linkcode runMain}), plus {@linkcode waitFor} to poll
 * a condition with a deadline.
 *
 * Children run with the repository root as their working directory, so the
 * relative paths of {@linkcode SAMPLE_ARGS} resolve, and without any
 * `KVM_EXPORTER_*` variable of the test runner's environment leaking in.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { RUNTIME_V8_FLAGS } from "../../tools/compile.ts";

/** The repository root (the directory of `main.ts`). */
export const REPO_ROOT: string = fileURLToPath(new URL("../../", import.meta.url)).replace(
  /\/$/,
  "",
);

/** Absolute path of `main.ts`. */
export const MAIN_PATH: string = `${REPO_ROOT}/main.ts`;

/** Flags that point the exporter at the sample debugfs tree of `tests/fixtures/sample`. */
export const SAMPLE_ARGS: readonly string[] = [
  "--collector.kvmdebug.dir=tests/fixtures/sample/kvm",
  "--collector.vmmap.path=tests/fixtures/sample/vm.yaml",
  "--path.procfs=tests/fixtures/sample/proc",
  "--path.sysfs=tests/fixtures/sample/sys",
];

/**
 * Flags that point the exporter at a tree laid out like tests/fixtures/sample: `DIR/kvm`,
 * `DIR/vm.yaml`, `DIR/proc`, `DIR/sys`.
 *
 * @param dir The tree.
 * @returns The four flags.
 */
export function treeArgs(dir: string): string[] {
  return [
    `--collector.kvmdebug.dir=${dir}/kvm`,
    `--collector.vmmap.path=${dir}/vm.yaml`,
    `--path.procfs=${dir}/proc`,
    `--path.sysfs=${dir}/sys`,
  ];
}

/** Listen on a free loopback port; the actual port comes from the "Listening" log line. */
export const LOOPBACK_ANY_PORT = "--web.listen-address=127.0.0.1:0";

/** How a child is started. */
export interface ChildOptions {
  /** Extra environment variables; the runner's `KVM_EXPORTER_*` variables are never passed on. */
  env?: Record<string, string>;
  /** Deno permission flags, e.g. `["--allow-read=tests/fixtures/sample"]`. Default `["-A"]`. */
  permissions?: string[];
  /** A command that runs deno, e.g. `["prlimit", "--nofile=256"]`; the pid is then its own. */
  prefix?: string[];
  /**
   * What to run instead of `deno run <permissions> main.ts`, e.g. an installed launcher
   * (`["/usr/bin/kvm_exporter"]`); `args` follow it.
   */
  program?: readonly string[];
}

/** Options of {@linkcode startExporter}. */
export interface StartOptions extends ChildOptions {
  /** How long to wait for the "Listening" line. Default 20 000 ms. */
  startTimeoutMs?: number;
}

/** Options of {@linkcode runMain}. */
export interface RunOptions extends ChildOptions {
  /** How long the run may take before it is killed and the call fails. Default 20 000 ms. */
  timeoutMs?: number;
}

/** A running exporter started by {@linkcode startExporter}. */
export interface ExporterProcess extends AsyncDisposable {
  /** The child's pid. */
  readonly pid: number;
  /** The TCP port it listens on, from its "Listening" log line. */
  readonly port: number;
  /** `http://127.0.0.1:PORT` (or `http://[::1]:PORT` for an IPv6 listen address). */
  readonly baseUrl: string;
  /** What the child wrote to stderr so far. */
  stderrText(): string;
  /** What the child wrote to stdout so far. */
  stdoutText(): string;
  /**
   * Sends `signal` (default SIGTERM) unless the child has exited, and waits for the exit and for
   * its output to be read to the end.
   *
   * @throws {Error} When the child does not exit within `timeoutMs` (it is then killed).
   */
  stop(signal?: Deno.Signal, timeoutMs?: number): Promise<Deno.CommandStatus>;
  /**
   * Waits for the child to exit on its own (e.g. after a signal sent with `Deno.kill(pid, ...)`)
   * and for its output to be read to the end; sends nothing.
   *
   * @throws {Error} When the child does not exit within `timeoutMs` (it is then killed).
   */
  waitForExit(timeoutMs?: number): Promise<Deno.CommandStatus>;
}

/** Output of a one-shot run. */
export interface RunResult {
  /** Exit code. */
  code: number;
  /** Everything written to stdout. */
  stdout: string;
  /** Everything written to stderr. */
  stderr: string;
}

/**
 * Polls `cond` until it returns true, failing after `timeoutMs`.
 *
 * @example Usage
 * ```ts
 * import { waitFor } from "./exporter_process.ts";
 * let n = 0;
 * await waitFor(() => ++n >= 3, { timeoutMs: 1000, what: "three polls" });
 * ```
 *
 * @param cond The condition; a throw counts as false and its message shows in the failure. A
 *   check still running at the deadline is abandoned (close what it waits on in `finally`).
 * @param options `timeoutMs` (default 10 000), `what` describes the condition for the failure
 *   message, `intervalMs` (default 20).
 * @throws {Error} `Timed out after N ms waiting for <what>` when the deadline passes.
 */
export async function waitFor(
  cond: () => Promise<boolean> | boolean,
  options: { timeoutMs?: number; what: string; intervalMs?: number },
): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const deadline = Date.now() + timeoutMs;
  let lastError = "";
  for (;;) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      // A condition that never settles (a read on a silent socket) still meets the deadline.
      const outcome = await Promise.race([
        Promise.resolve(cond()),
        new Promise<"timeout">((resolve) =>
          timer = setTimeout(() => resolve("timeout"), Math.max(0, deadline - Date.now()))
        ),
      ]);
      if (outcome === true) return;
      lastError = outcome === "timeout" ? "; the last check did not finish" : "";
    } catch (error) {
      lastError = `; last error: ${(error as Error).message}`;
    } finally {
      clearTimeout(timer);
    }
    if (Date.now() >= deadline) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${options.what}${lastError}`);
    }
    await delay(options.intervalMs ?? 20);
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The runner's environment without `KVM_EXPORTER_*`, plus `extra`. */
function childEnv(extra: Record<string, string> | undefined): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(Deno.env.toObject())) {
    if (!key.startsWith("KVM_EXPORTER_")) env[key] = value;
  }
  return { ...env, NO_COLOR: "1", ...extra };
}

function command(args: readonly string[], options: ChildOptions): Deno.Command {
  const deno = options.program !== undefined
    ? [...options.program, ...args]
    // The V8 flags of every run mode: memory tests measure what an operator runs.
    : [
      Deno.execPath(),
      "run",
      RUNTIME_V8_FLAGS,
      ...(options.permissions ?? ["-A"]),
      MAIN_PATH,
      ...args,
    ];
  const [program, ...rest] = [...(options.prefix ?? []), ...deno];
  return new Deno.Command(program!, {
    args: rest,
    cwd: REPO_ROOT,
    clearEnv: true,
    env: childEnv(options.env),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

/** Reads a stream to its end into a growing string. */
class TextSink {
  text = "";
  readonly done: Promise<void>;
  #onChunk: () => void;

  constructor(stream: ReadableStream<Uint8Array>, onChunk: () => void = () => {}) {
    this.#onChunk = onChunk;
    this.done = this.#read(stream);
  }

  async #read(stream: ReadableStream<Uint8Array>): Promise<void> {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      this.text += chunk;
      this.#onChunk();
    }
  }
}

const LISTENING = /^ts=\S+ level=info msg=Listening address=(\S+):(\d+)(?: |$)/m;
const LISTENING_JSON = /"msg":"Listening","address":"([^"]+):(\d+)"/;

function indent(text: string): string {
  return text.trimEnd().split("\n").map((line) => `  | ${line}`).join("\n");
}

/**
 * Starts `deno run <V8 flags> <permissions> main.ts ...args` and waits for its "Listening" log line (logfmt
 * or JSON). Pass {@linkcode LOOPBACK_ANY_PORT} (or a port of your own) in `args`. Dispose the
 * result (`await using`) or call `stop()` in `finally`: disposal kills the child by its pid.
 *
 * @example Usage
 * ```ts ignore
 * import { LOOPBACK_ANY_PORT, SAMPLE_ARGS, startExporter } from "./exporter_process.ts";
 * await using exporter = await startExporter([...SAMPLE_ARGS, LOOPBACK_ANY_PORT]);
 * const body = await (await fetch(`${exporter.baseUrl}/metrics`)).text();
 * ```
 *
 * @param args Flags for main.ts.
 * @param options Environment, permissions (default `["-A"]`) and the start deadline.
 * @returns The running exporter.
 * @throws {Error} With the collected stderr, when the child exits or the deadline passes first
 *   (the child is then killed).
 */
export async function startExporter(
  args: readonly string[],
  options: StartOptions = {},
): Promise<ExporterProcess> {
  const timeoutMs = options.startTimeoutMs ?? 20_000;
  const child = command(args, options).spawn();
  let exited: Deno.CommandStatus | undefined;
  const status = child.status.then((s) => (exited = s));
  let wake = (): void => {};
  const stdout = new TextSink(child.stdout);
  const stderr = new TextSink(child.stderr, () => wake());
  const drained = (): Promise<unknown> => Promise.all([status, stdout.done, stderr.done]);

  const kill = async (signal: Deno.Signal): Promise<void> => {
    if (exited === undefined) {
      try {
        child.kill(signal);
      } catch {
        // It exited between the check and the kill.
      }
    }
    await drained();
  };

  const deadline = Date.now() + timeoutMs;
  let match: RegExpExecArray | null = null;
  for (;;) {
    match = LISTENING.exec(stderr.text) ?? LISTENING_JSON.exec(stderr.text);
    if (match !== null) break;
    if (exited !== undefined || Date.now() >= deadline) {
      const why = exited !== undefined
        ? `exited with code ${exited.code} before listening`
        : `did not log "Listening" within ${timeoutMs} ms`;
      await kill("SIGKILL");
      throw new Error(`main.ts ${args.join(" ")} ${why}; stderr:\n${indent(stderr.text)}`);
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      status,
      new Promise<void>((resolve) => {
        wake = resolve;
        timer = setTimeout(resolve, Math.max(1, Math.min(200, deadline - Date.now())));
      }),
    ]);
    clearTimeout(timer);
  }
  wake = () => {};

  const host = match[1]!.replace(/^\[(.*)\]$/, "$1");
  const port = Number(match[2]);
  const connectHost = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host;
  const baseUrl = connectHost.includes(":")
    ? `http://[${connectHost}]:${port}`
    : `http://${connectHost}:${port}`;

  const waitForExit = async (ms: number, after: string): Promise<Deno.CommandStatus> => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = await Promise.race([
      status.then(() => false),
      new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(true), ms)),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      await kill("SIGKILL");
      throw new Error(
        `main.ts did not exit within ${ms} ms ${after}; stderr:\n${indent(stderr.text)}`,
      );
    }
    await drained();
    return exited!;
  };

  return {
    pid: child.pid,
    port,
    baseUrl,
    stderrText: () => stderr.text,
    stdoutText: () => stdout.text,
    async stop(
      signal: Deno.Signal = "SIGTERM",
      stopTimeoutMs = 20_000,
    ): Promise<Deno.CommandStatus> {
      if (exited === undefined) {
        try {
          child.kill(signal);
        } catch {
          // Already exited.
        }
      }
      return await waitForExit(stopTimeoutMs, `of ${signal}`);
    },
    waitForExit: (exitTimeoutMs = 20_000) => waitForExit(exitTimeoutMs, "of waiting"),
    async [Symbol.asyncDispose](): Promise<void> {
      await kill("SIGKILL");
    },
  };
}

/**
 * Runs `deno run <permissions> main.ts ...args` to its end (for `--help`, bad flags, start-up
 * errors). A run that outlives `timeoutMs` is killed and the call fails, so a run that should
 * have failed but serves instead cannot hang the test; give it a `127.0.0.1:0` listen address.
 *
 * @example Usage
 * ```ts ignore
 * import { runMain } from "./exporter_process.ts";
 * const { code, stdout } = await runMain(["--help"]);
 * ```
 *
 * @param args Flags for main.ts.
 * @param options Environment, permissions (default `["-A"]`) and the deadline.
 * @returns Exit code, stdout and stderr.
 * @throws {Error} With the output so far, when the run outlives the deadline.
 */
export async function runMain(
  args: readonly string[],
  options: RunOptions = {},
): Promise<RunResult> {
  const timeoutMs = options.timeoutMs ?? 20_000;
  const child = command(args, options).spawn();
  const stdout = new TextSink(child.stdout);
  const stderr = new TextSink(child.stderr);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = await Promise.race([
    child.status.then(() => false),
    new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(true), timeoutMs)),
  ]);
  clearTimeout(timer);
  if (timedOut) {
    try {
      child.kill("SIGKILL");
    } catch {
      // Exited meanwhile.
    }
  }
  const [status] = await Promise.all([child.status, stdout.done, stderr.done]);
  if (timedOut) {
    throw new Error(
      `main.ts ${args.join(" ")} still ran after ${timeoutMs} ms; stderr:\n${indent(stderr.text)}`,
    );
  }
  return { code: status.code, stdout: stdout.text, stderr: stderr.text };
}

/**
 * Finds a free TCP port on 127.0.0.1 by listening on port 0 and closing. Another process may
 * take it before it is used: prefer `127.0.0.1:0` and the "Listening" line where the port need
 * not be known in advance (e.g. for `--allow-net=127.0.0.1:PORT`).
 *
 * @returns The port.
 */
export function freeLoopbackPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    return (listener.addr as Deno.NetAddr).port;
  } finally {
    listener.close();
  }
}

/**
 * Fetches a URL and reads the body, so that no response body is left unconsumed.
 *
 * @param url The URL.
 * @param init Request options.
 * @returns Status, headers and body text.
 */
export async function fetchText(
  url: string,
  init?: RequestInit,
): Promise<{ status: number; headers: Headers; body: string }> {
  const response = await fetch(url, init);
  return { status: response.status, headers: response.headers, body: await response.text() };
}
