/**
 * SocketOwners on a procfs fixture, for what a real host gives only with
 * dozens of VMMs: the per-call bound on processes, taking turns across calls.
 * The real kernel evidence is tested in tests/collectors/qmp_test.ts and
 * tests/e2e/qemu_qmp_test.ts.
 *
 * @module
 */

import { deepStrictEqual, ok } from "node:assert/strict";
import {
  MAX_NET_UNIX_BYTES,
  MAX_PROCESSES_PER_CALL,
  SocketOwners,
} from "../../src/qmp/socket_owner.ts";

/** A listening socket and a procfs whose net/unix lists it (inode 4242); removed after `body`. */
async function withListedSocket(
  body: (fixture: { tmp: string; socket: string; proc: string }) => Promise<void>,
): Promise<void> {
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_owners_" });
  const socket = `${tmp}/vm.qmp`;
  const listener = Deno.listen({ transport: "unix", path: socket });
  try {
    const proc = `${tmp}/proc`;
    await Deno.mkdir(`${proc}/net`, { recursive: true });
    await listSocket(proc, { inode: 4242, socket });
    await body({ tmp, socket, proc });
  } finally {
    listener.close();
    await Deno.remove(tmp, { recursive: true });
  }
}

/** Writes a procfs net/unix that lists one listening socket. */
function listSocket(proc: string, listed: { inode: number; socket: string }): Promise<void> {
  return Deno.writeTextFile(
    `${proc}/net/unix`,
    "Num       RefCount Protocol Flags    Type St Inode Path\n" +
      `0000000000000000: 00000002 00000000 00010000 0001 01 ${listed.inode} ${listed.socket}\n`,
  );
}

Deno.test("SocketOwners.resolve() reads at most MAX_PROCESSES_PER_CALL VMMs per call, in turns", async () => {
  await withListedSocket(async ({ socket, proc }) => {
    const pids = Array.from({ length: MAX_PROCESSES_PER_CALL + 1 }, (_, i) => 1000 + i);
    for (const pid of pids) {
      await Deno.mkdir(`${proc}/${pid}/fd`, { recursive: true });
      await Deno.symlink("/dev/null", `${proc}/${pid}/fd/0`);
      await Deno.symlink(`socket:[${pid}]`, `${proc}/${pid}/fd/3`);
    }
    const owner = pids.at(-1)!;
    await Deno.symlink("socket:[4242]", `${proc}/${owner}/fd/9`);
    const owners = new SocketOwners(proc);
    const resolve = async () => (await owners.resolve({ found: [socket], pids })).found.get(socket);
    deepStrictEqual(await resolve(), {
      skipped: "no_owner",
      detail: "no VMM of an exported VM holds its listening socket",
    });
    // The next call starts where the last one stopped.
    deepStrictEqual(await resolve(), { pid: owner });
    // Then the owner is confirmed by its one link; gone, it is looked for again.
    deepStrictEqual(await resolve(), { pid: owner });
    await Deno.remove(`${proc}/${owner}/fd/9`);
    const gone = await resolve();
    deepStrictEqual(gone !== undefined && "skipped" in gone ? gone.skipped : gone, "no_owner");
  });
});

Deno.test("SocketOwners.resolve() grants a claimed socket only to the VMM that holds it", async () => {
  await withListedSocket(async ({ tmp, socket, proc }) => {
    for (const pid of [100, 200]) await Deno.mkdir(`${proc}/${pid}/fd`, { recursive: true });
    await Deno.symlink("socket:[4242]", `${proc}/100/fd/5`);
    await Deno.symlink("socket:[9999]", `${proc}/200/fd/5`);
    const owners = new SocketOwners(proc);
    const claims = [{ path: socket, pid: 100 }, { path: socket, pid: 200 }, {
      path: `${tmp}/none.qmp`,
      pid: 200,
    }];
    const resolve = async () => (await owners.resolve({ found: [], pids: [], claims })).claims;
    const expected = [
      { pid: 100 },
      {
        skipped: "no_owner",
        detail: "the VMM whose command line names it (pid 200) does not hold its listening socket",
      },
    ];
    const first = await resolve();
    deepStrictEqual(first.slice(0, 2), expected);
    deepStrictEqual(
      first[2] !== undefined && "skipped" in first[2] && first[2].skipped,
      "not_socket",
    );
    // Remembered: the owner confirmed by its link, the refusal kept while nothing changes.
    deepStrictEqual((await resolve()).slice(0, 2), expected);
    // The socket moves to pid 200: the owner's link is gone, and 200's fds are read anew once the
    // refused inode changes.
    await Deno.remove(`${proc}/100/fd/5`);
    await Deno.symlink("socket:[4343]", `${proc}/200/fd/6`);
    await listSocket(proc, { inode: 4343, socket });
    const moved = await resolve();
    deepStrictEqual(
      moved[0] !== undefined && "skipped" in moved[0] && moved[0].skipped,
      "no_owner",
    );
    deepStrictEqual(moved[1], { pid: 200 });
  });
});

Deno.test("SocketOwners.resolve() checks a claim again when its VMM's fds could not be read", async () => {
  await withListedSocket(async ({ socket, proc }) => {
    const owners = new SocketOwners(proc);
    const resolve = async () =>
      (await owners.resolve({ found: [], pids: [], claims: [{ path: socket, pid: 300 }] }))
        .claims[0];
    // Its fd dir cannot be read (here: not there yet; on a host: EMFILE, say).
    const first = await resolve();
    ok(
      first !== undefined && "skipped" in first && /cannot read/.test(first.detail),
      JSON.stringify(first),
    );
    await Deno.mkdir(`${proc}/300/fd`, { recursive: true });
    await Deno.symlink("socket:[4242]", `${proc}/300/fd/5`);
    deepStrictEqual(await resolve(), { pid: 300 });
  });
});

Deno.test("SocketOwners.resolve() gives a glob-found socket that a claim holds to the claim's VMM", async () => {
  await withListedSocket(async ({ socket, proc }) => {
    for (const pid of [100, 200]) await Deno.mkdir(`${proc}/${pid}/fd`, { recursive: true });
    await Deno.symlink("socket:[4242]", `${proc}/100/fd/5`);
    const owners = new SocketOwners(proc);
    const query = { found: [socket], pids: [100, 200], claims: [{ path: socket, pid: 100 }] };
    for (let call = 1; call <= 2; call++) {
      const { found, claims } = await owners.resolve(query);
      deepStrictEqual(claims, [{ pid: 100 }]);
      deepStrictEqual(found.get(socket), { pid: 100 }, `call ${call}`);
    }
  });
});

Deno.test("SocketOwners.resolve() reads net/unix up to MAX_NET_UNIX_BYTES, in whole lines", async () => {
  await withListedSocket(async ({ tmp, socket, proc }) => {
    await Deno.mkdir(`${proc}/100/fd`, { recursive: true });
    await Deno.symlink("socket:[4242]", `${proc}/100/fd/5`);
    const line = (inode: number, path: string): string =>
      `0000000000000000: 00000002 00000000 00010000 0001 01 ${inode} ${path}\n`;
    // Within the cap: the socket's line; past it, a second socket's line, cut in the middle.
    const late = `${tmp}/late.qmp`;
    using _late = Deno.listen({ transport: "unix", path: late });
    const head = "Num       RefCount Protocol Flags    Type St Inode Path\n" + line(4242, socket);
    const filler = line(1, "/run/filler.sock");
    const fill = filler.repeat(Math.floor((MAX_NET_UNIX_BYTES - head.length) / filler.length));
    // Fewer bytes are left in the cap than a line takes: the late socket's line straddles it.
    await Deno.writeTextFile(`${proc}/net/unix`, head + fill + line(4343, late));
    const { found } = await new SocketOwners(proc).resolve({ found: [socket, late], pids: [100] });
    deepStrictEqual(found.get(socket), { pid: 100 });
    const skipped = found.get(late);
    deepStrictEqual(
      skipped !== undefined && "skipped" in skipped && skipped.skipped,
      "not_listening",
    );
  });
});
