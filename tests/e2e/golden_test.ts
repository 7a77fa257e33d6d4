/**
 * Golden end-to-end tests: fixture trees through the real app, compared
 * byte for byte with committed expected output (volatile values masked).
 * Regenerate with `deno task golden` and review the diff.
 *
 * @module
 */

import assert from "node:assert/strict";
import { startFakeLibvirt } from "../support/fake_libvirt.ts";
import { SAMPLE_LIBVIRT } from "../support/fake_libvirt_sample.ts";
import { startFakeQmpFleet } from "../support/fake_qmp_fleet.ts";
import { buildApp, fixtureArgs, scrapeText } from "../support/sample_exporter.ts";

const CASES: { name: string; fixture: string; args: string[] }[] = [
  { name: "sample", fixture: "sample", args: [] },
  { name: "sample_depth0", fixture: "sample", args: ["--collector.dir.depth=0"] },
  { name: "sample_depth1", fixture: "sample", args: ["--collector.dir.depth", "1"] },
  {
    name: "sample_filtered",
    fixture: "sample",
    args: [
      "--collector.kvm_stat.files-include=^(exits|pages_4k|tsc-offset|mmu_rmaps_stat)$",
      "--collector.kvm_stat.files-exclude=^pages",
    ],
  },
  { name: "edge", fixture: "edge", args: [] },
  { name: "sample_prometheus", fixture: "sample", args: ["--metrics.naming=prometheus"] },
  { name: "edge_prometheus", fixture: "edge", args: ["--metrics.naming=prometheus"] },
];

const VOLATILE = [
  /^(kvm_scrape_collector_duration_seconds\{[^}]*\}) .*$/gm,
  /^(kvm_exporter_config_last_reload_success_timestamp_seconds) .*$/gm,
  /^(kvm_exporter_build_info\{[^}]*\}) .*$/gm,
];

const FIXTURES = new URL("../fixtures/", import.meta.url).pathname;

/** Masks values that change from run to run, and where the checkout is. */
function mask(text: string): string {
  let out = text.replaceAll(FIXTURES, "tests/fixtures/")
    .replace(/deno_version="[^"]*"/g, 'deno_version="X"');
  for (const pattern of VOLATILE) out = out.replace(pattern, "$1 X");
  return out;
}

const update = Deno.args.includes("--update");

for (const c of CASES) {
  const golden = new URL(`./golden/${c.name}.metrics`, import.meta.url);
  Deno.test(`/metrics on tests/fixtures/${c.fixture} ${c.args.join(" ")} matches golden/${c.name}.metrics`, async () => {
    const { app } = await buildApp([...fixtureArgs(c.fixture), ...c.args]);
    const actual = mask(await scrapeText(app));
    if (update) await Deno.writeTextFile(golden, actual);
    assert.equal(actual, await Deno.readTextFile(golden));
  });
}

const QMP_CASES: { name: string; args: string[] }[] = [
  { name: "qmp_prometheus", args: ["--metrics.naming=prometheus"] },
  {
    name: "qmp_prometheus_max_buckets",
    args: ["--metrics.naming=prometheus", "--metrics.histogram.max-buckets=2"],
  },
  { name: "qmp_compat", args: [] },
];

for (const c of QMP_CASES) {
  const golden = new URL(`./golden/${c.name}.metrics`, import.meta.url);
  Deno.test(`/metrics on tests/fixtures/sample with fake QMP monitors ${c.args.join(" ")} matches golden/${c.name}.metrics`, async () => {
    const fleet = await startFakeQmpFleet();
    try {
      const { app } = await buildApp([...fleet.args, ...c.args]);
      const actual = mask(await scrapeText(app));
      if (update) await Deno.writeTextFile(golden, actual);
      assert.equal(actual, await Deno.readTextFile(golden));
    } finally {
      await fleet.close();
    }
  });
}

const LIBVIRT_CASES: { name: string; args: string[] }[] = [
  { name: "libvirt_compat", args: [] },
  { name: "libvirt_prometheus", args: ["--metrics.naming=prometheus"] },
];

for (const c of LIBVIRT_CASES) {
  const golden = new URL(`./golden/${c.name}.metrics`, import.meta.url);
  Deno.test(`/metrics on tests/fixtures/sample with a fake libvirtd ${c.args.join(" ")} matches golden/${c.name}.metrics`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_golden_libvirt_" });
    const fake = startFakeLibvirt(`${dir}/libvirt-sock-ro`, "libvirt", SAMPLE_LIBVIRT);
    try {
      const { app } = await buildApp([
        ...fixtureArgs("sample"),
        "--collector.libvirt",
        `--collector.libvirt.socket=${fake.path}`,
        ...c.args,
      ]);
      const actual = mask(await scrapeText(app));
      if (update) await Deno.writeTextFile(golden, actual);
      assert.equal(actual, await Deno.readTextFile(golden));
    } finally {
      await fake.stop();
      await Deno.remove(dir, { recursive: true });
    }
  });
}
