/**
 * A QMP peer that says exactly what a test scripts, byte for byte: a greeting, and for each
 * command a raw reply (valid, odd, random, truncated) after which it may hang up. For property
 * tests of what the exporter makes of a hostile or broken monitor.
 *
 * @module
 */

/** What the peer does in answer to one command (or in place of the greeting). */
export interface ScriptedAnswer {
  /** Raw text to write (line ends included). */
  text: string;
  /** Whether to close the connection after writing it. */
  close: boolean;
}

/** The script of one connection. */
export interface QmpScript {
  /** Sent on connect. */
  greeting: ScriptedAnswer;
  /**
   * The answer to a command; `id` is the request's id as JSON text, for replies that echo it.
   * Commands without an answer get the connection closed.
   */
  answer(command: string, id: string): ScriptedAnswer | undefined;
}

/** A running scripted peer. */
export interface ScriptedQmp {
  /** Connections accepted so far. */
  readonly connections: number;
  /** Stops listening, closes every client and waits for the accept loop to end. */
  close(): Promise<void>;
}

/**
 * Serves `script` to every client on the unix socket `path` until closed. Every path through a
 * script ends in a reply the client waits for or a close, so the peer never leaves a client
 * hanging unless the script does.
 *
 * @param path The socket path.
 * @param script What to say.
 * @returns The running peer.
 */
export function startScriptedQmp(path: string, script: QmpScript): ScriptedQmp {
  const listener = Deno.listen({ transport: "unix", path });
  const conns = new Set<Deno.UnixConn>();
  const encoder = new TextEncoder();
  let connections = 0;
  const write = async (conn: Deno.UnixConn, text: string): Promise<void> => {
    let bytes = encoder.encode(text);
    while (bytes.length > 0) bytes = bytes.subarray(await conn.write(bytes));
  };
  async function serve(conn: Deno.UnixConn): Promise<void> {
    await write(conn, script.greeting.text);
    if (script.greeting.close) return;
    let buffer = "";
    for await (const chunk of conn.readable.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      let end: number;
      while ((end = buffer.indexOf("\n")) !== -1) {
        const request = JSON.parse(buffer.slice(0, end)) as { execute: string; id?: unknown };
        buffer = buffer.slice(end + 1);
        const answer = script.answer(request.execute, JSON.stringify(request.id ?? null));
        if (answer === undefined) return;
        await write(conn, answer.text);
        if (answer.close) return;
      }
    }
  }
  const accepting = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      connections++;
      serve(conn).catch(() => {}).finally(() => {
        conns.delete(conn);
        try {
          conn.close();
        } catch {
          // The client closed it first.
        }
      });
    }
  })().catch(() => {});
  return {
    get connections() {
      return connections;
    },
    async close() {
      listener.close();
      for (const conn of conns) {
        try {
          conn.close();
        } catch {
          // Already closed.
        }
      }
      await accepting;
    },
  };
}
