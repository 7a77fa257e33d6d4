import { deepStrictEqual } from "node:assert/strict";
import { startFakeLibvirt } from "../support/fake_libvirt.ts";
import { probeLibvirt as probe } from "../support/libvirt.ts";

Deno.test("LibvirtClient needs exactly --allow-read, --allow-write and --allow-net=unix: on the socket", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "libvirt_perm_" });
  const socket = `${dir}/libvirt-sock-ro`;
  const fake = startFakeLibvirt(socket, "libvirt");
  const read = `--allow-read=${socket}`;
  const write = `--allow-write=${socket}`;
  const net = `--allow-net=unix:${socket}`;
  const missing = {
    reason: "permission",
    message:
      `Deno lacks permission to connect to libvirt socket "${socket}": run with ${read} ${write} ${net}`,
  };
  const cases: { flags: string[]; expected: Record<string, unknown> }[] = [
    { flags: [read, write, net], expected: { records: 1 } },
    { flags: [read, write], expected: missing },
    { flags: [read, net], expected: missing },
    { flags: [write, net], expected: missing },
  ];
  try {
    for (const c of cases) {
      await t.step(c.flags.map((f) => f.split("=")[0]).join(" "), async () => {
        deepStrictEqual(await probe(c.flags, socket), c.expected);
      });
    }
  } finally {
    await fake.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
