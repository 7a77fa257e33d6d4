/**
 * A fake libvirtd on a unix socket, speaking the RPC protocol's framing, for
 * what the real daemon does not do on demand: garbage, a frame whose length is
 * huge or smaller than a header, a reply cut mid-frame, an unknown typed-param
 * type, an error reply, a peer that accepts and never answers, a keepalive
 * ping in the middle of a call.
 *
 * @module
 */

import {
  decodeMessage,
  encodeMessage,
  KEEPALIVE_PROC,
  KEEPALIVE_PROGRAM,
  MESSAGE_STATUS,
  MESSAGE_TYPE,
  type MessageHeader,
  REMOTE_PROC,
  type RemoteDomain,
  type TypedParamValue,
  VIR_TYPED_PARAM,
  writeDomain,
} from "../../src/libvirt/remote_protocol.ts";
import { XdrWriter } from "../../src/libvirt/xdr.ts";

/** How the fake answers `REMOTE_PROC_CONNECT_GET_ALL_DOMAIN_STATS`. */
export type FakeLibvirtBehaviour =
  | "libvirt" // The records, as libvirtd would send them.
  | "keepalive-first" // A keepalive ping, then the records.
  | "garbage" // Bytes that are not a frame.
  | "huge-length" // A length word of 2^32 - 1.
  | "short-length" // A length word smaller than a header.
  | "mid-frame" // Half a frame, then the connection closes.
  | "unknown-type" // A typed param of type 99.
  | "error" // libvirt's error reply.
  | "silent" // Reads the call and never answers.
  | "refuse-open"; // Refuses REMOTE_PROC_CONNECT_OPEN, as for an unknown URI.

/** A typed param the fake sends, with its wire type. */
export type FakeParam = [string, keyof typeof VIR_TYPED_PARAM, TypedParamValue];

/** The domain the fake serves. */
export const FAKE_DOMAIN: RemoteDomain = {
  name: "fake-vm",
  uuid: "11111111-2222-4333-8444-555555555555",
  id: 7,
};

/** The params the fake serves for {@linkcode FAKE_DOMAIN}, one of each wire type. */
export const FAKE_PARAMS: FakeParam[] = [
  ["state.state", "int", 1],
  ["state.reason", "int", 1],
  ["vcpu.current", "uint", 1],
  ["vcpu.maximum", "uint", 2],
  ["vcpu.0.state", "int", 1],
  ["vcpu.0.time", "ullong", 18446744073709551615n],
  ["vcpu.0.delay", "ullong", 5n],
  ["vcpu.0.exits.sum", "ullong", 204n],
  ["vcpu.0.blocking.cur", "boolean", true],
  ["vm.offset.cur", "llong", -3n],
  ["vm.ratio.cur", "double", 0.5],
  ["vm.label", "string", "ünï"],
];

/** The XML the fake serves for `REMOTE_PROC_DOMAIN_GET_XML_DESC`. */
export const FAKE_XML = "<domain type='kvm'><name>fake-vm</name></domain>";

/** What the fake serves: its domains' stats and their XML. */
export interface FakeLibvirtData {
  /** The domains, each with its params. */
  domains: { domain: RemoteDomain; params: FakeParam[] }[];
  /** The XML of every domain. */
  xml: string;
}

/** A running fake; stop it in `finally`. */
export interface FakeLibvirt extends FakeLibvirtData {
  /** The socket path. */
  readonly path: string;
  /** Connections accepted so far. */
  readonly connections: number;
  /** The procedure numbers called so far, in order. */
  readonly calls: number[];
  /** How the next stats calls are answered; may be changed between calls. */
  behaviour: FakeLibvirtBehaviour;
  /** Closes the listener and every connection. */
  stop(): Promise<void>;
}

/**
 * Starts a fake libvirtd on `path`.
 *
 * @param path Where to listen (removed first if it exists).
 * @param behaviour How stats calls are answered.
 * @param data What it serves; {@linkcode FAKE_DOMAIN} with {@linkcode FAKE_PARAMS} by default.
 * @returns The running fake.
 */
export function startFakeLibvirt(
  path: string,
  behaviour: FakeLibvirtBehaviour,
  data: Partial<FakeLibvirtData> = {},
): FakeLibvirt {
  try {
    Deno.removeSync(path);
  } catch {
    // Not there.
  }
  const listener = Deno.listen({ transport: "unix", path });
  const open = new Set<Deno.UnixConn>();
  const handlers = new Set<Promise<void>>();
  let stopped = false;
  const state = {
    path,
    connections: 0,
    calls: [] as number[],
    behaviour,
    domains: data.domains ?? [{ domain: FAKE_DOMAIN, params: FAKE_PARAMS }],
    xml: data.xml ?? FAKE_XML,
    async stop(): Promise<void> {
      if (stopped) return;
      stopped = true;
      listener.close();
      for (const conn of open) closeQuietly(conn);
      await Promise.allSettled([accepting, ...handlers]);
    },
  };
  const accepting = (async () => {
    try {
      for await (const conn of listener) {
        state.connections++;
        open.add(conn);
        const handler = serve(conn, state).finally(() => {
          open.delete(conn);
          closeQuietly(conn);
        });
        handlers.add(handler);
        handler.finally(() => handlers.delete(handler));
      }
    } catch {
      // Listener closed.
    }
  })();
  return state;
}

function closeQuietly(conn: Deno.UnixConn): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}

type FakeState = FakeLibvirtData & { calls: number[]; behaviour: FakeLibvirtBehaviour };

async function serve(conn: Deno.UnixConn, state: FakeState): Promise<void> {
  let buffered = new Uint8Array(0);
  const chunk = new Uint8Array(65536);
  try {
    while (true) {
      const n = await conn.read(chunk);
      if (n === null) return;
      const joined = new Uint8Array(buffered.length + n);
      joined.set(buffered);
      joined.set(chunk.subarray(0, n), buffered.length);
      buffered = joined;
      while (buffered.length >= 4) {
        const length = new DataView(buffered.buffer).getUint32(0);
        if (buffered.length < length) break;
        const { header } = decodeMessage(buffered.slice(4, length));
        buffered = buffered.slice(length);
        if (header.program === KEEPALIVE_PROGRAM) continue;
        state.calls.push(header.procedure);
        if (!await answer(conn, header, state)) return;
      }
    }
  } catch {
    // Connection closed under us.
  }
}

async function write(conn: Deno.UnixConn, bytes: Uint8Array): Promise<void> {
  while (bytes.length > 0) bytes = bytes.subarray(await conn.write(bytes));
}

function reply(call: MessageHeader, body: Uint8Array, status: number = MESSAGE_STATUS.ok) {
  return encodeMessage({ ...call, type: MESSAGE_TYPE.reply, status }, body);
}

/** Answers one call; false to close the connection. */
async function answer(
  conn: Deno.UnixConn,
  call: MessageHeader,
  state: FakeState,
): Promise<boolean> {
  const { behaviour } = state;
  switch (call.procedure) {
    case REMOTE_PROC.authList:
      await write(conn, reply(call, new XdrWriter().uint(1).int(0).bytes()));
      return true;
    case REMOTE_PROC.connectOpen:
      if (behaviour === "refuse-open") {
        const message = "no connection driver available for qemu:///system";
        await write(conn, reply(call, errorBody(60, message), MESSAGE_STATUS.error));
      } else await write(conn, reply(call, new Uint8Array(0)));
      return true;
    case REMOTE_PROC.domainGetXmlDesc:
      await write(conn, reply(call, new XdrWriter().string(state.xml).bytes()));
      return true;
    case REMOTE_PROC.connectGetAllDomainStats:
      return await answerStats(conn, call, state);
    default:
      await write(conn, reply(call, errorBody(1, `unsupported procedure ${call.procedure}`), 1));
      return true;
  }
}

async function answerStats(
  conn: Deno.UnixConn,
  call: MessageHeader,
  state: FakeState,
): Promise<boolean> {
  const { behaviour } = state;
  const good = reply(call, statsBody(state.domains));
  switch (behaviour) {
    case "libvirt":
      await write(conn, good);
      return true;
    case "keepalive-first":
      await write(
        conn,
        encodeMessage({
          program: KEEPALIVE_PROGRAM,
          version: 1,
          procedure: KEEPALIVE_PROC.ping,
          type: MESSAGE_TYPE.message,
          serial: 0,
          status: MESSAGE_STATUS.ok,
        }, new Uint8Array(0)),
      );
      await write(conn, good);
      return true;
    case "garbage":
      await write(conn, new TextEncoder().encode("HTTP/1.1 400 Bad Request\r\n\r\n"));
      return true;
    case "huge-length":
      await write(conn, new Uint8Array([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]));
      return true;
    case "short-length":
      await write(conn, new XdrWriter().uint(12).uint(0).uint(0).bytes());
      return true;
    case "mid-frame":
      await write(conn, good.subarray(0, Math.floor(good.length / 2)));
      return false;
    case "unknown-type":
      await write(
        conn,
        reply(
          call,
          statsBody([{ ...state.domains[0]!, params: [["vcpu.0.exits.sum", "ullong", 1n]] }], 99),
        ),
      );
      return true;
    case "error":
      await write(
        conn,
        reply(call, errorBody(55, "Requested operation is not valid: domain is not running"), 1),
      );
      return true;
    case "silent":
    case "refuse-open":
      return true;
  }
}

function statsBody(
  domains: { domain: RemoteDomain; params: FakeParam[] }[],
  lastType?: number,
): Uint8Array {
  const writer = new XdrWriter().uint(domains.length);
  for (const { domain, params } of domains) {
    writeDomain(writer, domain).uint(params.length);
    params.forEach(([field, type, value], i) => {
      writer.string(field);
      const code = i === params.length - 1 && lastType !== undefined
        ? lastType
        : VIR_TYPED_PARAM[type];
      writer.int(code);
      writeTypedValue(writer, type, value);
    });
  }
  return writer.bytes();
}

function writeTypedValue(
  writer: XdrWriter,
  type: keyof typeof VIR_TYPED_PARAM,
  value: TypedParamValue,
): void {
  switch (type) {
    case "int":
    case "boolean":
      writer.int(typeof value === "boolean" ? (value ? 1 : 0) : Number(value));
      return;
    case "uint":
      writer.uint(Number(value));
      return;
    case "llong":
    case "ullong":
    case "double": {
      const bytes = new Uint8Array(8);
      const view = new DataView(bytes.buffer);
      if (type === "llong") view.setBigInt64(0, BigInt(value));
      else if (type === "ullong") view.setBigUint64(0, BigInt(value));
      else view.setFloat64(0, Number(value));
      writer.fixedOpaque(bytes);
      return;
    }
    case "string":
      writer.string(String(value));
  }
}

/** A `remote_error` body: code, domain 10 (VIR_FROM_QEMU), the message, no extras. */
function errorBody(code: number, message: string): Uint8Array {
  return new XdrWriter().int(code).int(10).optional(true).string(message).int(2)
    .optional(false).optional(false).optional(false).optional(false).int(0).int(0)
    .optional(false).bytes();
}
