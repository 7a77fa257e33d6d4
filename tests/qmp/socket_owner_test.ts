/**
 * SocketOwners on a procfs fixture, for what a real host gives only with
 * dozens of VMMs: the per-call bound on processes, taking turns across calls.
 * The real kernel evidence is tested in tests/collectors/qmp_test.ts and
 * tests/e2e/qemu_qmp_test.ts.
 *
 * @module
 */

import { deepStrictEqual } from "node:assert/strict";
import { MAX_PROCESSES_PER_CALL, SocketOwners } from "../../src/qmp/socket_owner.ts";

Deno.test("SocketOwners.resolve() reads at most MAX_PROCESSES_PER_CALL VMMs per call, in turns", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_owners_" });
  const socket = `${tmp}/vm.qmp`;
  const listener = Deno.listen({ transport: "unix", path: socket });
  try {
    const proc = `${tmp}/proc`;
    await Deno.mkdir(`${proc}/net`, { recursive: true });
    await Deno.writeTextFile(
      `${proc}/net/unix`,
      "Num       RefCount Protocol Flags    Type St Inode Path\n" +
        `0000000000000000: 00000002 00000000 00010000 0001 01 4242 ${socket}\n`,
    );
    const pids = Array.from({ length: MAX_PROCESSES_PER_CALL + 1 }, (_, i) => 1000 + i);
    for (const pid of pids) {
      await Deno.mkdir(`${proc}/${pid}/fd`, { recursive: true });
      await Deno.symlink("/dev/null", `${proc}/${pid}/fd/0`);
      await Deno.symlink(`socket:[${pid}]`, `${proc}/${pid}/fd/3`);
    }
    const owner = pids.at(-1)!;
    await Deno.symlink("socket:[4242]", `${proc}/${owner}/fd/9`);
    const owners = new SocketOwners(proc);
    const first = await owners.resolve([socket], pids);
    deepStrictEqual(first.get(socket), {
      skipped: "no_owner",
      detail: "no VMM of an exported VM holds its listening socket",
    });
    // The next call starts where the last one stopped.
    deepStrictEqual((await owners.resolve([socket], pids)).get(socket), { pid: owner });
    // Then the owner is confirmed by its one link; gone, it is looked for again.
    deepStrictEqual((await owners.resolve([socket], pids)).get(socket), { pid: owner });
    await Deno.remove(`${proc}/${owner}/fd/9`);
    const gone = (await owners.resolve([socket], pids)).get(socket);
    deepStrictEqual(gone !== undefined && "skipped" in gone ? gone.skipped : gone, "no_owner");
  } finally {
    listener.close();
    await Deno.remove(tmp, { recursive: true });
  }
});
