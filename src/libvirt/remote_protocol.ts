/**
 * The part of libvirt's RPC protocol this exporter speaks: the message header
 * and frame (`src/rpc/virnetprotocol.x`), and the arguments and replies of the
 * few `remote` procedures it calls (`src/remote/remote_protocol.x`). Pure
 * encoders and decoders; the socket is in `libvirt_client.ts`.
 *
 * @module
 */

import { XdrError, XdrReader, XdrWriter } from "./xdr.ts";

/** `REMOTE_PROGRAM` (remote_protocol.x). */
export const REMOTE_PROGRAM = 0x20008086;
/** `REMOTE_PROTOCOL_VERSION` (remote_protocol.x). */
export const REMOTE_PROTOCOL_VERSION = 1;
/** `KEEPALIVE_PROGRAM` (src/rpc/virkeepaliveprotocol.x): "keep" in ASCII. */
export const KEEPALIVE_PROGRAM = 0x6b656570;
/** `KEEPALIVE_PROC_PING` and `KEEPALIVE_PROC_PONG` (virkeepaliveprotocol.x). */
export const KEEPALIVE_PROC = { ping: 1, pong: 2 } as const;

/** Procedure numbers (`enum remote_procedure` in remote_protocol.x). */
export const REMOTE_PROC = {
  connectOpen: 1,
  connectClose: 2,
  domainGetXmlDesc: 14,
  authList: 66,
  authPolkit: 70,
  connectGetAllDomainStats: 344,
} as const;

/** `virNetMessageType` (virnetprotocol.x). */
export const MESSAGE_TYPE = { call: 0, reply: 1, message: 2 } as const;
/** `virNetMessageStatus` (virnetprotocol.x). */
export const MESSAGE_STATUS = { ok: 0, error: 1, continue: 2 } as const;

/**
 * `VIR_NET_MESSAGE_MAX` (virnetprotocol.x, libvirt ≥ 5.x; 16 MiB before): the
 * largest message, not counting the 4-byte length word.
 */
export const VIR_NET_MESSAGE_MAX = 33554432;
/** `VIR_NET_MESSAGE_HEADER_MAX`: the header's 6 words. */
export const VIR_NET_MESSAGE_HEADER_MAX = 24;
/** `VIR_NET_MESSAGE_LEN_MAX`: the length word. */
export const VIR_NET_MESSAGE_LEN_MAX = 4;
/** `REMOTE_STRING_MAX` (remote_protocol.x; 1 MiB in libvirt before 1.x). */
export const REMOTE_STRING_MAX = 4194304;
/** `REMOTE_DOMAIN_LIST_MAX` (remote_protocol.x). */
export const REMOTE_DOMAIN_LIST_MAX = 16384;
/**
 * `REMOTE_CONNECT_GET_ALL_DOMAIN_STATS_MAX`: 4096 in older libvirt, 262144 in
 * newer ones; the larger bounds both the records and each record's params.
 */
export const REMOTE_CONNECT_GET_ALL_DOMAIN_STATS_MAX = 262144;
/** `REMOTE_AUTH_TYPE_LIST_MAX` (remote_protocol.x). */
export const REMOTE_AUTH_TYPE_LIST_MAX = 20;
/** `enum remote_auth_type` (remote_protocol.x). */
export const REMOTE_AUTH = { none: 0, sasl: 1, polkit: 2 } as const;
/** `VIR_UUID_BUFLEN` (libvirt.h). */
export const VIR_UUID_BUFLEN = 16;

/** `VIR_CONNECT_RO` (libvirt-host.h). */
export const VIR_CONNECT_RO = 1;

/** `virDomainStatsTypes` (libvirt-domain.h): the groups this exporter asks for. */
export const VIR_DOMAIN_STATS = {
  state: 1 << 0,
  cpuTotal: 1 << 1,
  balloon: 1 << 2,
  vcpu: 1 << 3,
  interface: 1 << 4,
  block: 1 << 5,
  /** Since libvirt 8.9.0. */
  vm: 1 << 10,
} as const;

/** `virConnectGetAllDomainStatsFlags` (libvirt-domain.h): the flags used. */
export const VIR_CONNECT_GET_ALL_DOMAINS_STATS = {
  /** `= VIR_CONNECT_LIST_DOMAINS_ACTIVE`. */
  active: 1 << 0,
  /** Skip what needs a domain job that another holds, instead of waiting. */
  nowait: 1 << 29,
} as const;

/** The fixed header of every RPC message (`virNetMessageHeader`). */
export interface MessageHeader {
  program: number;
  version: number;
  procedure: number;
  type: number;
  serial: number;
  status: number;
}

/**
 * Encodes one message: length word, header, body.
 *
 * @param header The header.
 * @param body The XDR-encoded body.
 * @returns The frame.
 */
export function encodeMessage(header: MessageHeader, body: Uint8Array): Uint8Array {
  const total = VIR_NET_MESSAGE_LEN_MAX + VIR_NET_MESSAGE_HEADER_MAX + body.length;
  const head = new XdrWriter().uint(total).uint(header.program).uint(header.version)
    .int(header.procedure).int(header.type).uint(header.serial).int(header.status).bytes();
  const frame = new Uint8Array(total);
  frame.set(head);
  frame.set(body, head.length);
  return frame;
}

/**
 * Checks a frame's length word: it counts itself, must leave room for a header
 * and may not exceed `VIR_NET_MESSAGE_MAX` plus itself.
 *
 * @param length The big-endian length word read from the socket.
 * @returns The number of bytes that follow the length word.
 * @throws {XdrError} If the length is out of range.
 */
export function frameBodyLength(length: number): number {
  const min = VIR_NET_MESSAGE_LEN_MAX + VIR_NET_MESSAGE_HEADER_MAX;
  const max = VIR_NET_MESSAGE_LEN_MAX + VIR_NET_MESSAGE_MAX;
  if (length < min || length > max) {
    throw new XdrError(
      `Invalid libvirt frame length "${length}": expected ${min} to ${max} bytes`,
    );
  }
  return length - VIR_NET_MESSAGE_LEN_MAX;
}

/**
 * Splits a message (without its length word) into header and body.
 *
 * @param message The bytes after the length word.
 * @returns The header and the body's reader.
 */
export function decodeMessage(message: Uint8Array): { header: MessageHeader; body: XdrReader } {
  const reader = new XdrReader(message);
  const header: MessageHeader = {
    program: reader.uint(),
    version: reader.uint(),
    procedure: reader.int(),
    type: reader.int(),
    serial: reader.uint(),
    status: reader.int(),
  };
  return { header, body: reader };
}

/** A domain as the protocol names it (`remote_nonnull_domain`). */
export interface RemoteDomain {
  name: string;
  /** The 16 bytes, as the canonical lower-case 8-4-4-4-12 text. */
  uuid: string;
  /** The running domain's id, -1 when inactive. */
  id: number;
}

/**
 * Formats 16 UUID bytes as `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
 *
 * @param bytes The 16 bytes.
 * @returns The text form.
 */
export function formatUuid(bytes: Uint8Array): string {
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${
    hex.slice(20)
  }`;
}

/**
 * Parses a UUID's text form into its 16 bytes.
 *
 * @param text `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (case-insensitive).
 * @returns The bytes.
 * @throws {SyntaxError} If the text is not a UUID.
 */
export function parseUuid(text: string): Uint8Array {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(text)) {
    throw new SyntaxError(`Invalid UUID "${text}"`);
  }
  const hex = text.replaceAll("-", "");
  return Uint8Array.from(
    { length: VIR_UUID_BUFLEN },
    (_, i) => parseInt(hex.slice(2 * i, 2 * i + 2), 16),
  );
}

/**
 * Decodes a `remote_nonnull_domain`.
 *
 * @param reader Positioned at the domain.
 * @returns The domain.
 */
export function readDomain(reader: XdrReader): RemoteDomain {
  const name = reader.string(REMOTE_STRING_MAX);
  const uuid = formatUuid(reader.fixedOpaque(VIR_UUID_BUFLEN));
  return { name, uuid, id: reader.int() };
}

/**
 * Encodes a `remote_nonnull_domain`.
 *
 * @param writer Where to append.
 * @param domain The domain.
 * @returns The writer.
 */
export function writeDomain(writer: XdrWriter, domain: RemoteDomain): XdrWriter {
  return writer.string(domain.name).fixedOpaque(parseUuid(domain.uuid)).int(domain.id);
}

/**
 * The value of a typed parameter (`remote_typed_param_value`): int and uint
 * become numbers, llong and ullong exact bigints, boolean a boolean.
 */
export type TypedParamValue = number | bigint | boolean | string;

/** `virTypedParameterType` (libvirt-common.h), the union's discriminant. */
export const VIR_TYPED_PARAM = {
  int: 1,
  uint: 2,
  llong: 3,
  ullong: 4,
  double: 5,
  boolean: 6,
  string: 7,
} as const;

/**
 * Decodes one `remote_typed_param`: field name, type, value.
 *
 * @param reader Positioned at the param.
 * @returns The field and its value.
 * @throws {XdrError} For a type this protocol version does not define.
 */
export function readTypedParam(reader: XdrReader): [string, TypedParamValue] {
  const field = reader.string(REMOTE_STRING_MAX);
  const at = reader.offset;
  const type = reader.int();
  switch (type) {
    case VIR_TYPED_PARAM.int:
      return [field, reader.int()];
    case VIR_TYPED_PARAM.uint:
      return [field, reader.uint()];
    case VIR_TYPED_PARAM.llong:
      return [field, reader.hyper()];
    case VIR_TYPED_PARAM.ullong:
      return [field, reader.unsignedHyper()];
    case VIR_TYPED_PARAM.double:
      return [field, reader.double()];
    case VIR_TYPED_PARAM.boolean:
      return [field, reader.int() !== 0];
    case VIR_TYPED_PARAM.string:
      return [field, reader.string(REMOTE_STRING_MAX)];
    default:
      throw new XdrError(
        `Unknown typed parameter type "${type}" at byte ${at} for field "${field}"`,
      );
  }
}

/**
 * Encodes `remote_connect_open_args`.
 *
 * @param uri The connection URI, e.g. `qemu:///system`.
 * @param flags `VIR_CONNECT_RO` for a read-only connection.
 * @returns The body.
 */
export function encodeConnectOpenArgs(uri: string, flags: number): Uint8Array {
  return new XdrWriter().optional(true).string(uri).uint(flags).bytes();
}

/**
 * Decodes `remote_auth_list_ret`: the authentication types the socket offers.
 * libvirtd lets a client on a socket without authentication (`none`, the
 * read-only socket's default) call anything once it has asked for this list.
 *
 * @param reader The reply body.
 * @returns The `remote_auth_type` values.
 */
export function decodeAuthListRet(reader: XdrReader): number[] {
  const count = reader.count(REMOTE_AUTH_TYPE_LIST_MAX, "authentication types");
  return Array.from({ length: count }, () => reader.int());
}

/**
 * Encodes `remote_connect_get_all_domain_stats_args` for all domains (an
 * empty list).
 *
 * @param stats The `virDomainStatsTypes` bits.
 * @param flags The `virConnectGetAllDomainStatsFlags` bits.
 * @returns The body.
 */
export function encodeGetAllDomainStatsArgs(stats: number, flags: number): Uint8Array {
  // `>>> 0`: JavaScript bit operations give a negative int once bit 31 (ENFORCE_STATS) is set.
  return new XdrWriter().uint(0).uint(stats >>> 0).uint(flags >>> 0).bytes();
}

/** One domain's record in the reply of `REMOTE_PROC_CONNECT_GET_ALL_DOMAIN_STATS`. */
export interface DomainStatsRecord {
  domain: RemoteDomain;
  /** The typed params in the order libvirt sent them. */
  params: [string, TypedParamValue][];
}

/**
 * Decodes `remote_connect_get_all_domain_stats_ret`.
 *
 * @param reader The reply body.
 * @returns The records.
 * @throws {XdrError} On truncation, an over-long list or an unknown param type.
 */
export function decodeGetAllDomainStatsRet(reader: XdrReader): DomainStatsRecord[] {
  const max = REMOTE_CONNECT_GET_ALL_DOMAIN_STATS_MAX;
  const records: DomainStatsRecord[] = [];
  const count = reader.count(max, "domain stats records");
  for (let i = 0; i < count; i++) {
    const domain = readDomain(reader);
    const paramCount = reader.count(max, `typed params of domain "${domain.name}"`);
    const params: [string, TypedParamValue][] = [];
    for (let j = 0; j < paramCount; j++) params.push(readTypedParam(reader));
    records.push({ domain, params });
  }
  return records;
}

/**
 * Encodes `remote_domain_get_xml_desc_args`.
 *
 * @param domain The domain.
 * @param flags `virDomainXMLFlags`; 0 for the live XML without secrets.
 * @returns The body.
 */
export function encodeGetXmlDescArgs(domain: RemoteDomain, flags: number): Uint8Array {
  return writeDomain(new XdrWriter(), domain).uint(flags).bytes();
}

/** libvirt's error reply (`remote_error`), the fields worth reporting. */
export interface RemoteError {
  /** `virErrorNumber`, e.g. 42 for VIR_ERR_NO_DOMAIN. */
  code: number;
  /** `virErrorDomain`: which part of libvirt raised it. */
  domain: number;
  /** libvirt's message, if it sent one. */
  message: string | undefined;
}

function readOptionalString(reader: XdrReader): string | undefined {
  return reader.optional() ? reader.string(REMOTE_STRING_MAX) : undefined;
}

/**
 * Decodes `remote_error`, the body of a reply with status ERROR.
 *
 * @param reader The reply body.
 * @returns Code, domain and message.
 */
export function decodeRemoteError(reader: XdrReader): RemoteError {
  const code = reader.int();
  const domain = reader.int();
  const message = readOptionalString(reader);
  // level, dom, str1-3, int1-2 and net follow; decoding them checks the shape.
  reader.int();
  if (reader.optional()) readDomain(reader);
  for (let i = 0; i < 3; i++) readOptionalString(reader);
  reader.int();
  reader.int();
  if (reader.optional()) {
    reader.string(REMOTE_STRING_MAX);
    reader.fixedOpaque(VIR_UUID_BUFLEN);
  }
  return { code, domain, message };
}
