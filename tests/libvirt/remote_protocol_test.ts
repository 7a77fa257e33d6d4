import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import {
  decodeAuthListRet,
  decodeGetAllDomainStatsRet,
  decodeMessage,
  decodeRemoteError,
  encodeConnectOpenArgs,
  encodeGetAllDomainStatsArgs,
  encodeGetXmlDescArgs,
  encodeMessage,
  formatUuid,
  frameBodyLength,
  parseUuid,
  readTypedParam,
  REMOTE_PROGRAM,
} from "../../src/libvirt/remote_protocol.ts";
import { XdrError, XdrReader, XdrWriter } from "../../src/libvirt/xdr.ts";

const UUID = "6a1f3b2c-0d4e-4f5a-9b8c-7d6e5f4a3b21";
const DOMAIN = { name: "vm", uuid: UUID, id: 1 };

Deno.test("encodeMessage() writes the length word, counting itself, and the header", () => {
  const frame = encodeMessage(
    { program: REMOTE_PROGRAM, version: 1, procedure: 344, type: 0, serial: 9, status: 0 },
    new Uint8Array([1, 2, 3, 4]),
  );
  deepStrictEqual([...frame], [
    0,
    0,
    0,
    32,
    0x20,
    0x00,
    0x80,
    0x86,
    0,
    0,
    0,
    1,
    0,
    0,
    1,
    0x58,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    9,
    0,
    0,
    0,
    0,
    1,
    2,
    3,
    4,
  ]);
  const { header, body } = decodeMessage(frame.subarray(4));
  deepStrictEqual(header, {
    program: REMOTE_PROGRAM,
    version: 1,
    procedure: 344,
    type: 0,
    serial: 9,
    status: 0,
  });
  strictEqual(body.remaining, 4);
});

Deno.test("frameBodyLength() accepts a header-sized frame up to VIR_NET_MESSAGE_MAX", async (t) => {
  const cases: { length: number; ok: boolean }[] = [
    { length: 0, ok: false },
    { length: 27, ok: false },
    { length: 28, ok: true },
    { length: 33554436, ok: true },
    { length: 33554437, ok: false },
    { length: 0xffffffff, ok: false },
  ];
  for (const c of cases) {
    await t.step(String(c.length), () => {
      if (c.ok) strictEqual(frameBodyLength(c.length), c.length - 4);
      else throws(() => frameBodyLength(c.length), XdrError);
    });
  }
});

Deno.test("formatUuid() and parseUuid() round-trip", () => {
  strictEqual(formatUuid(parseUuid(UUID.toUpperCase())), UUID);
  throws(() => parseUuid("6a1f3b2c0d4e4f5a9b8c7d6e5f4a3b21"), SyntaxError);
});

Deno.test("encode*Args() lay out remote_protocol.x's structs", async (t) => {
  await t.step("remote_connect_open_args: optional name, flags", () => {
    deepStrictEqual(
      [...encodeConnectOpenArgs("qemu:///system", 1)],
      [0, 0, 0, 1, 0, 0, 0, 14, ...new TextEncoder().encode("qemu:///system"), 0, 0, 0, 0, 0, 1],
    );
  });
  await t.step("remote_connect_get_all_domain_stats_args: no domains, stats, flags", () => {
    deepStrictEqual(
      [...encodeGetAllDomainStatsArgs(1 | 8 | 1024, 1 | (1 << 29))],
      [0, 0, 0, 0, 0, 0, 4, 9, 0x20, 0, 0, 1],
    );
  });
  await t.step("flags with bit 31 (ENFORCE_STATS) as JavaScript computes them", () => {
    deepStrictEqual(
      [...encodeGetAllDomainStatsArgs(1, 1 | (1 << 31))],
      [0, 0, 0, 0, 0, 0, 0, 1, 0x80, 0, 0, 1],
    );
  });
  await t.step("remote_domain_get_xml_desc_args: domain, flags", () => {
    const reader = new XdrReader(encodeGetXmlDescArgs(DOMAIN, 0));
    strictEqual(reader.string(16), "vm");
    strictEqual(formatUuid(reader.fixedOpaque(16)), UUID);
    strictEqual(reader.int(), 1);
    strictEqual(reader.uint(), 0);
    strictEqual(reader.remaining, 0);
  });
});

function typed(field: string, type: number, write: (w: XdrWriter) => XdrWriter): XdrReader {
  return new XdrReader(write(new XdrWriter().string(field).int(type)).bytes());
}

Deno.test("readTypedParam() decodes each virTypedParameterType", async (t) => {
  const eight = (...b: number[]) => new Uint8Array(b);
  const cases: { what: string; reader: XdrReader; value: unknown }[] = [
    { what: "int", reader: typed("a", 1, (w) => w.int(-5)), value: -5 },
    { what: "uint", reader: typed("a", 2, (w) => w.uint(4000000000)), value: 4000000000 },
    {
      what: "llong",
      reader: typed("a", 3, (w) => w.fixedOpaque(eight(255, 255, 255, 255, 255, 255, 255, 255))),
      value: -1n,
    },
    {
      what: "ullong",
      reader: typed("a", 4, (w) => w.fixedOpaque(eight(255, 255, 255, 255, 255, 255, 255, 255))),
      value: 18446744073709551615n,
    },
    {
      what: "double",
      reader: typed(
        "a",
        5,
        (w) => w.fixedOpaque(eight(0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18)),
      ),
      value: Math.PI,
    },
    { what: "boolean", reader: typed("a", 6, (w) => w.int(1)), value: true },
    { what: "string", reader: typed("a", 7, (w) => w.string("x")), value: "x" },
  ];
  for (const c of cases) {
    await t.step(c.what, () => {
      deepStrictEqual(readTypedParam(c.reader), ["a", c.value]);
      strictEqual(c.reader.remaining, 0);
    });
  }
  await t.step("unknown type 8", () => {
    throws(
      () => readTypedParam(typed("b", 8, (w) => w.int(0))),
      /Unknown typed parameter type "8" at byte 8 for field "b"/,
    );
  });
});

Deno.test("decodeGetAllDomainStatsRet() caps the record count", () => {
  const reader = new XdrReader(new XdrWriter().uint(262145).bytes());
  throws(() => decodeGetAllDomainStatsRet(reader), /Too many domain stats records/);
});

Deno.test("decodeAuthListRet() reads the auth types and caps their count", () => {
  deepStrictEqual(decodeAuthListRet(new XdrReader(new XdrWriter().uint(2).int(0).int(2).bytes())), [
    0,
    2,
  ]);
  throws(() => decodeAuthListRet(new XdrReader(new XdrWriter().uint(21).bytes())), /Too many/);
});

Deno.test("decodeRemoteError() reads code, domain and message past the optional fields", () => {
  const body = new XdrWriter().int(42).int(10).optional(true).string("Domain not found").int(2)
    .optional(true).string("vm").fixedOpaque(parseUuid(UUID)).int(1)
    .optional(true).string("s1").optional(false).optional(false).int(3).int(4)
    .optional(true).string("net").fixedOpaque(new Uint8Array(16)).bytes();
  const reader = new XdrReader(body);
  deepStrictEqual(decodeRemoteError(reader), { code: 42, domain: 10, message: "Domain not found" });
  strictEqual(reader.remaining, 0);
});

Deno.test("decodeGetAllDomainStatsRet() throws only XdrError on every truncation and on noise", () => {
  const valid = new XdrWriter().uint(1).string("vm").fixedOpaque(parseUuid(UUID)).int(1).uint(3)
    .string("vcpu.0.time").int(4).fixedOpaque(new Uint8Array(8))
    .string("vcpu.0.blocking.cur").int(6).int(0)
    .string("vm.label").int(7).string("x").bytes();
  strictEqual(decodeGetAllDomainStatsRet(new XdrReader(valid)).length, 1);
  for (let end = 0; end < valid.length; end++) {
    throws(() => decodeGetAllDomainStatsRet(new XdrReader(valid.subarray(0, end))), XdrError);
  }
  // Noise from a fixed-seed generator: whatever it decodes to, the only failure is XdrError.
  let seed = 42;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) & 0xff;
  for (let round = 0; round < 2000; round++) {
    const noise = Uint8Array.from({ length: 1 + (round % 64) }, next);
    try {
      decodeGetAllDomainStatsRet(new XdrReader(noise));
    } catch (error) {
      if (!(error instanceof XdrError)) throw error;
    }
  }
});
