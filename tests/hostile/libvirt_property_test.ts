/**
 * Hostile libvirtds: records of the cpu-total, balloon, block and interface groups with random
 * fields (known and unknown, indices small, huge or repeated) and random values of every wire
 * type. Invariants: parsing never throws and keeps at most 256 disks and interfaces, each named
 * once, with non-negative integer values; every skipped value is counted; through a fake peer the
 * scrape succeeds, its body parses strictly, and the VM's KVM stats are intact.
 *
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { addDomainFamilies, LIBVIRT_GROUPS } from "../../src/collectors/libvirt_families.ts";
import { MAX_DEVICES, MAX_LABEL_CHARS } from "../../src/libvirt/domain_groups.ts";
import { MAX_PROBLEMS, parseDomainStats } from "../../src/libvirt/domain_stats.ts";
import type { TypedParamValue } from "../../src/libvirt/remote_protocol.ts";
import { FamilySet } from "../../src/metrics/model.ts";
import { parseExposition } from "../support/exposition_parser.ts";
import { type FakeParam, startFakeLibvirt } from "../support/fake_libvirt.ts";
import { SAMPLE_LIBVIRT, SAMPLE_PARAMS, SAMPLE_UUID } from "../support/fake_libvirt_sample.ts";
import { propertyParams } from "../support/property.ts";
import { buildApp, scrapeText, seriesValue } from "../support/sample_exporter.ts";

const FIELDS = [
  "cpu.time",
  "cpu.user",
  "cpu.system",
  "balloon.current",
  "balloon.maximum",
  "balloon.rss",
  "balloon.last-update",
  "balloon.major_fault",
  "balloon.swap_in",
  "state.state",
  "state.reason",
  "block.count",
  "net.count",
];
const DEVICE_FIELDS = [
  "name",
  "path",
  "rd.reqs",
  "rd.bytes",
  "rd.times",
  "wr.bytes",
  "errors",
  "capacity",
  "rx.bytes",
  "tx.drop",
  "unknown",
];

const index = fc.oneof(
  { arbitrary: fc.nat(3), weight: 6 },
  { arbitrary: fc.integer({ min: 250, max: 300 }), weight: 2 },
  { arbitrary: fc.constantFrom(4294967295, 99999999999, -1), weight: 1 },
);

const field: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: fc.constantFrom(...FIELDS), weight: 3 },
  {
    arbitrary: fc.tuple(fc.constantFrom("block", "net"), index, fc.constantFrom(...DEVICE_FIELDS))
      .map(([group, i, name]) => `${group}.${i}.${name}`),
    weight: 6,
  },
  { arbitrary: fc.string({ maxLength: 12 }), weight: 1 },
);

/** A value and the wire type it goes as. */
const value: fc.Arbitrary<[FakeParam[1], TypedParamValue]> = fc.oneof(
  fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }).map((v) =>
    ["int", v] as [FakeParam[1], number]
  ),
  fc.nat().map((v) => ["uint", v] as [FakeParam[1], number]),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map((v) =>
    ["llong", v] as [FakeParam[1], bigint]
  ),
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map((v) => ["ullong", v] as [FakeParam[1], bigint]),
  fc.double().map((v) => ["double", v] as [FakeParam[1], number]),
  fc.boolean().map((v) => ["boolean", v] as [FakeParam[1], boolean]),
  fc.oneof(fc.string({ maxLength: 8 }), fc.constant("x".repeat(MAX_LABEL_CHARS + 1)))
    .map((v) => ["string", v] as [FakeParam[1], string]),
);

const params: fc.Arbitrary<FakeParam[]> = fc.array(
  fc.tuple(field, value).map(([f, [type, v]]) => [f, type, v] as FakeParam),
  { maxLength: 60 },
);

/** What the client decodes a param to (uint and int stay numbers, booleans booleans). */
function decoded([f, type, v]: FakeParam): [string, TypedParamValue] {
  if (type === "double") return [f, Number(v)];
  return [f, v];
}

Deno.test("parseDomainStats() and addDomainFamilies() hold on any group fields", () => {
  fc.assert(
    fc.property(params, (list) => {
      const stats = parseDomainStats({
        domain: { name: "h", uuid: SAMPLE_UUID, id: 1 },
        params: list.map(decoded),
      });
      const { blocks, nets } = stats.groups;
      for (const devices of [blocks, nets]) {
        assert(devices.length <= MAX_DEVICES);
        const names = devices.map((d) => d.name);
        assert.equal(new Set(names).size, names.length);
        for (const device of devices) {
          assert(device.name !== "" && device.name.length <= MAX_LABEL_CHARS);
          for (const v of Object.values(device.values)) assert(typeof v === "bigint" && v >= 0n);
        }
      }
      for (
        const v of [...Object.values(stats.groups.cpu), ...Object.values(stats.groups.balloon)]
      ) {
        assert(typeof v === "bigint" && v >= 0n);
      }
      const skipped = Object.values(stats.skipped).reduce((a, b) => a + b, 0);
      assert(stats.problems.length <= MAX_PROBLEMS && stats.problems.length <= skipped);
      const out = new FamilySet();
      const none = { include: undefined, exclude: undefined };
      addDomainFamilies(out, { label: "h", stats, active: true }, {
        groups: new Set(LIBVIRT_GROUPS),
        devices: none,
        interfaces: none,
      });
    }),
    propertyParams(500),
  );
});

Deno.test("a hostile libvirtd's groups never cost the scrape or the VM's KVM stats", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_libvirt_property_" });
  const kvmParams = SAMPLE_PARAMS.filter(([f]) => /^(vcpu|vm)\./.test(f));
  const fake = startFakeLibvirt(`${tmp}/libvirt-sock-ro`, "libvirt", SAMPLE_LIBVIRT);
  try {
    await Deno.mkdir(`${tmp}/kvm/3001-1`, { recursive: true });
    await Deno.writeTextFile(`${tmp}/kvm/3001-1/pages_4k`, "100\n");
    await Deno.mkdir(`${tmp}/proc/3001`, { recursive: true });
    await Deno.writeTextFile(
      `${tmp}/proc/3001/cmdline`,
      ["qemu", "-name", "guest=os", "-uuid", SAMPLE_UUID, ""].join("\0"),
    );
    await Deno.writeTextFile(`${tmp}/none.yaml`, "vm_infos: {}\n");
    const { app } = await buildApp([
      `--collector.kvmdebug.dir=${tmp}/kvm`,
      `--collector.vmmap.path=${tmp}/none.yaml`,
      `--path.procfs=${tmp}/proc`,
      "--collector.libvirt",
      `--collector.libvirt.socket=${fake.path}`,
      "--metrics.naming=prometheus",
    ]);
    await fc.assert(
      fc.asyncProperty(params, async (list) => {
        fake.domains = [{
          domain: { name: "instance-0000002a", uuid: SAMPLE_UUID, id: 3 },
          params: [...kvmParams, ...list],
        }];
        const text = await scrapeText(app);
        parseExposition(text);
        assert.equal(seriesValue(text, 'kvm_scrape_collector_success{collector="libvirt"}'), "1");
        assert.equal(seriesValue(text, 'kvm_vm_exits_total{domain="os"}'), "4006");
      }),
      propertyParams(60),
    );
  } finally {
    await fake.stop();
    await Deno.remove(tmp, { recursive: true });
  }
});
