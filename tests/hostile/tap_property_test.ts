/**
 * Hostile input to the tap collector's pure parts: random command lines (as a VMM's writer may
 * make them) and random `net/dev` text. Invariants: neither parser throws; every tap taken has a
 * Linux interface name, no name twice, at most MAX_TAPS_PER_VM; every counter is a u64 taken from
 * the line of a name asked for.
 *
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { parseNetDev } from "../../src/collectors/net_dev.ts";
import { MAX_TAPS_PER_VM, tapInterfacesFromArgv } from "../../src/discovery/vmm_cmdline.ts";
import { propertyParams } from "../support/property.ts";

const word = fc.oneof(
  fc.constantFrom("-netdev", "--netdev", "-nic", "-device", "-id", "tap", "type=tap", "ifname="),
  fc.string({ maxLength: 24 }),
  fc.array(
    fc.constantFrom(
      "tap",
      "type=tap",
      "id=net0",
      "ifname=tap1i0",
      "ifname=",
      ",,",
      "fd=3",
      "mac=x",
    ),
    { maxLength: 6 },
  ).map((items) => items.join(",")),
  fc.json({ maxDepth: 2 }),
);

Deno.test("tapInterfacesFromArgv() on random command lines: only interface names, each once", () => {
  fc.assert(
    fc.property(fc.array(word, { maxLength: 40 }), (argv) => {
      const taps = tapInterfacesFromArgv(["qemu-system-x86_64", ...argv]);
      assert.ok(taps.length <= MAX_TAPS_PER_VM);
      assert.equal(new Set(taps.map((t) => t.ifname)).size, taps.length);
      for (const tap of taps) {
        assert.match(tap.ifname, /^[^\s/:]{1,15}$/);
        assert.ok(tap.mac === "" || /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(tap.mac), tap.mac);
      }
    }),
    propertyParams(500),
  );
});

const netDevLine = fc.oneof(
  fc.tuple(
    fc.constantFrom("tap0", "tap1", "lo", " tap0"),
    fc.array(fc.bigInt({ min: -5n, max: 2n ** 65n }), { maxLength: 18 }),
  )
    .map(([name, values]) => `${name}: ${values.join(" ")}`),
  fc.string({ maxLength: 60 }),
);

Deno.test("parseNetDev() on random text: u64 counters of the names asked for, never a throw", () => {
  fc.assert(
    fc.property(fc.array(netDevLine, { maxLength: 20 }), (lines) => {
      const wanted = new Set(["tap0", "tap1"]);
      const { counters, badLines } = parseNetDev(lines.join("\n"), wanted);
      for (const [name, values] of counters) {
        assert.ok(wanted.has(name));
        assert.ok(!badLines.includes(name));
        for (const v of Object.values(values)) assert.ok(v >= 0n && v < 2n ** 64n);
      }
      for (const name of badLines) assert.ok(wanted.has(name));
    }),
    propertyParams(500),
  );
});
