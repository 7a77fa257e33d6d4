/**
 * A QMP peer that says exactly what a test scripts, byte for byte: a greeting, and for each
 * command a raw reply (valid, odd, random, truncated) after which it may hang up. For property
 * tests of what the exporter makes of a hostile or broken monitor.
 *
 * @module
 */

import { type QmpPeer, startQmpPeer } from "./qmp_peer.ts";

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
   * The answer to a command; `id` is the request's id as JSON text, for replies that echo it,
   * and `args` its arguments. Commands without an answer get the connection closed.
   */
  answer(
    command: string,
    id: string,
    args: Record<string, unknown> | undefined,
  ): ScriptedAnswer | undefined;
}

/** A running scripted peer. */
export type ScriptedQmp = QmpPeer;

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
  return startQmpPeer(path, async (client) => {
    await client.write(script.greeting.text);
    if (script.greeting.close) return;
    for await (const line of client.lines()) {
      const request = JSON.parse(line) as {
        execute: string;
        id?: unknown;
        arguments?: Record<string, unknown>;
      };
      const answer = script.answer(
        request.execute,
        JSON.stringify(request.id ?? null),
        request.arguments,
      );
      if (answer === undefined) return;
      await client.write(answer.text);
      if (answer.close) return;
    }
  });
}
