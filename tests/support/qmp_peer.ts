/**
 * The socket side the fake QMP peers share (fake_qmp.ts answers like QEMU, scripted_qmp.ts says
 * what a test scripts): a unix socket server that counts its clients, writes whole texts, reads
 * requests line by line, and on close stops listening and closes every client.
 *
 * @module
 */

/** A running peer. */
export interface QmpPeer {
  /** Clients accepted so far. */
  readonly connections: number;
  /** Stops listening, closes every client and waits for the accept loop to end. */
  close(): Promise<void>;
}

/** One client, as a peer's `serve` sees it. */
export interface QmpPeerClient {
  /** The connection. */
  readonly conn: Deno.UnixConn;
  /** Writes all of `text`. */
  write(text: string): Promise<void>;
  /** The client's lines, without their `\n`, until it closes. */
  lines(): AsyncGenerator<string>;
}

/**
 * Listens on the unix socket `path` and runs `serve` for each client, closing the connection
 * when `serve` returns or throws.
 *
 * @param path The socket path.
 * @param serve Talks to one client; `n` counts clients from 1.
 * @returns The running peer.
 */
export function startQmpPeer(
  path: string,
  serve: (client: QmpPeerClient, n: number) => Promise<void>,
): QmpPeer {
  const listener = Deno.listen({ transport: "unix", path });
  const conns = new Set<Deno.UnixConn>();
  let connections = 0;
  const accepting = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      serve(peerClient(conn), ++connections).catch(() => {}).finally(() => {
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

function peerClient(conn: Deno.UnixConn): QmpPeerClient {
  const encoder = new TextEncoder();
  return {
    conn,
    async write(text) {
      let bytes = encoder.encode(text);
      while (bytes.length > 0) bytes = bytes.subarray(await conn.write(bytes));
    },
    async *lines() {
      let buffer = "";
      for await (const chunk of conn.readable.pipeThrough(new TextDecoderStream())) {
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf("\n")) !== -1) {
          const line = buffer.slice(0, end);
          buffer = buffer.slice(end + 1);
          yield line;
        }
      }
    },
  };
}
