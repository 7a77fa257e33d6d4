import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { LOOPBACK_ANY_PORT, startExporter } from "../support/exporter_process.ts";
import { seriesValue } from "../support/sample_exporter.ts";
import { startFakeLibvirt } from "../support/fake_libvirt.ts";
import { probeLibvirt as probe } from "../support/libvirt.ts";

Deno.test("LibvirtClient needs exactly --allow-read, --allow-write and --allow-net=unix: on the socket", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "libvirt_perm_" });
  const socket = `${dir}/libvirt-sock-ro`;
  const fake = startFakeLibvirt(socket, "libvirt");
  const read = `--allow-read=${socket}`;
  const write = `--allow-write=${socket}`;
  const net = `--allow-net=unix:${socket}`;
  const missing = (access: string) => ({
    reason: "permission",
    message:
      `Deno lacks permission to connect to libvirt socket "${socket}": run with ${read} ${write} ${net}; the compiled kvm_exporter reaches sockets under /run and /var/run only (Requires ${access} access to `,
  });
  const cases: { flags: string[]; expected: Record<string, unknown> }[] = [
    { flags: [read, write, net], expected: { records: 1 } },
    { flags: [read, write], expected: missing("net") },
    { flags: [read, net], expected: missing("write") },
    { flags: [write, net], expected: missing("read") },
  ];
  try {
    for (const c of cases) {
      await t.step(c.flags.map((f) => f.split("=")[0]).join(" "), async () => {
        const result = await probe(c.flags, socket) as Record<string, unknown>;
        if (typeof result.message === "string" && typeof c.expected.message === "string") {
          // The rest of the message is Deno's own wording.
          ok(result.message.startsWith(c.expected.message), result.message);
          result.message = c.expected.message;
        }
        deepStrictEqual(result, c.expected);
      });
    }
  } finally {
    await fake.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the libvirt collector reports a missing socket permission once, with the flags to add", async () => {
  const dir = await Deno.makeTempDir({ prefix: "libvirt_perm_" });
  const socket = `${dir}/libvirt-sock-ro`;
  const fake = startFakeLibvirt(socket, "libvirt");
  await Deno.mkdir(`${dir}/kvm`);
  await Deno.writeTextFile(`${dir}/vm.yaml`, "vm_infos: {}\n");
  const exporter = await startExporter([
    LOOPBACK_ANY_PORT,
    `--collector.kvmdebug.dir=${dir}/kvm`,
    `--collector.vmmap.path=${dir}/vm.yaml`,
    `--path.procfs=${dir}/proc`,
    `--path.sysfs=${dir}/sys`,
    "--collector.libvirt",
    `--collector.libvirt.socket=${socket}`,
  ], {
    // Read and net, not write: Deno refuses the connection.
    permissions: [`--allow-read=${dir}`, "--allow-net=127.0.0.1", `--allow-net=unix:${socket}`],
  });
  try {
    for (let i = 0; i < 3; i++) {
      const text = await (await fetch(`${exporter.baseUrl}/metrics`)).text();
      strictEqual(seriesValue(text, 'kvm_scrape_collector_success{collector="libvirt"}'), "0");
      strictEqual(seriesValue(text, 'kvm_exporter_libvirt_errors{reason="permission"}'), "1");
      strictEqual(seriesValue(text, 'kvm_scrape_collector_success{collector="kvm_stat"}'), "1");
    }
    await exporter.stop();
    const lines = `${exporter.stdoutText()}${exporter.stderrText()}`.split("\n")
      .filter((l) => l.includes(`--allow-write=${socket}`));
    strictEqual(lines.length, 1, lines.join("\n"));
    ok(
      lines[0]!.includes(
        `--allow-read=${socket} --allow-write=${socket} --allow-net=unix:${socket}`,
      ),
    );
  } finally {
    await exporter.stop();
    await fake.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
