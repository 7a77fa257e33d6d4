/**
 * What the bench measures of a running exporter: one HTTP request timed to
 * its last byte over a raw connection (no client-side decompression or
 * parsing in the timing), and the process's CPU time and RSS from procfs.
 *
 * @module
 */

/** The outcome of one request. */
export interface ProbeResult {
  /** Time to the last byte, ms. */
  ms: number;
  /** HTTP status. */
  status: number;
  /** Bytes received, headers included. */
  bytes: number;
}

/**
 * Sends one `GET` over a fresh connection and reads the answer to its end.
 *
 * @param port The loopback port.
 * @param path The path.
 * @param gzip Whether to ask for gzip.
 * @returns Time, status and size.
 */
export async function probe(port: number, path: string, gzip = false): Promise<ProbeResult> {
  const start = performance.now();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const request = `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept-Encoding: ${
      gzip ? "gzip" : "identity"
    }\r\nConnection: close\r\n\r\n`;
    await conn.write(new TextEncoder().encode(request));
    const buffer = new Uint8Array(256 * 1024);
    let bytes = 0;
    let head = "";
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) break;
      if (bytes === 0) head = new TextDecoder().decode(buffer.subarray(0, Math.min(n, 16)));
      bytes += n;
    }
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0);
    return { ms: performance.now() - start, status, bytes };
  } finally {
    conn.close();
  }
}

/**
 * CPU time a process has used (user + system), from `/proc/PID/stat`.
 *
 * @param pid The process.
 * @returns Milliseconds.
 */
export function cpuMs(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  // Fields after the command name, which may hold spaces: state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  return ticks * 10; // USER_HZ is 100 on Linux.
}

/**
 * Resident set size of a process, from `/proc/PID/status`.
 *
 * @param pid The process.
 * @returns MB (10^6 bytes).
 */
export function rssMb(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN);
  return kb * 1024 / 1e6;
}

/**
 * Waits until a path answers 200.
 *
 * @param port The loopback port.
 * @param path The path.
 * @param timeoutMs How long to wait.
 */
export async function waitUntilUp(port: number, path: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    try {
      const { status } = await probe(port, path);
      if (status === 200) return;
      last = `status ${status}`;
    } catch (error) {
      last = (error as Error).message;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`127.0.0.1:${port}${path} not up after ${timeoutMs} ms: ${last}`);
}

/**
 * A free loopback port.
 *
 * @returns The port.
 */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/**
 * The median of some numbers.
 *
 * @param values The numbers (not empty).
 * @returns The median.
 */
export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

/**
 * A percentile (nearest rank).
 *
 * @param values The numbers (not empty).
 * @param p 0 to 100.
 * @returns The value at that rank.
 */
export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil(p / 100 * sorted.length));
  return sorted[rank - 1] ?? NaN;
}
