/**
 * The C floor reader (bench/floor.c): compiled with the machine's `cc` into a
 * temporary dir, then kept running so that its passes interleave with scrapes.
 *
 * @module
 */

import { LineReader } from "./line_reader.ts";

/** What the floor reads: the exporter's own depth and filters. */
export interface FloorOptions {
  /** The debugfs dir. */
  dir: string;
  /** `--collector.dir.depth`. */
  depth: number;
  /** `--collector.kvm_stat.files-exclude`. */
  exclude: string;
}

/**
 * Compiles bench/floor.c into `outDir`.
 *
 * @param outDir Where the binary goes (a temporary dir: it is never committed).
 * @returns The binary's path.
 */
export async function compileFloor(outDir: string): Promise<string> {
  const source = new URL("./floor.c", import.meta.url).pathname;
  const binary = `${outDir}/floor`;
  const { code, stderr } = await new Deno.Command("cc", {
    args: ["-O2", "-Wall", "-o", binary, source],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    throw new Error(`cc could not build bench/floor.c: ${new TextDecoder().decode(stderr)}`);
  }
  return binary;
}

/** A running floor reader that times one pass per call. */
export class Floor {
  #child: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #lines: LineReader;
  /** Stat files it reads per pass. */
  files = 0;

  private constructor(child: Deno.ChildProcess) {
    this.#child = child;
    this.#writer = child.stdin.getWriter();
    this.#lines = new LineReader(child.stdout);
  }

  /**
   * Starts the floor reader on a tree.
   *
   * @param binary The compiled floor.
   * @param options What to read.
   * @returns The reader, its file list made.
   */
  static async start(binary: string, options: FloorOptions): Promise<Floor> {
    const child = new Deno.Command(binary, {
      args: [`--depth=${options.depth}`, `--exclude=${options.exclude}`, "--serve", options.dir],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const floor = new Floor(child);
    floor.files = JSON.parse(await floor.#lines.next()).files;
    return floor;
  }

  /**
   * Runs one pass.
   *
   * @param kind "read": open, read, close each file; "walk": also list every dir.
   * @returns Its time in ms.
   */
  async pass(kind: "read" | "walk" = "read"): Promise<number> {
    await this.#writer.write(new TextEncoder().encode(`${kind}\n`));
    return Number(await this.#lines.next());
  }

  /** Stops the reader. */
  async stop(): Promise<void> {
    await this.#writer.close();
    await this.#child.status;
  }
}
