import { deepStrictEqual } from "node:assert/strict";
import { heldTaps, tapNameOfFdinfo } from "../../src/collectors/tap_owners.ts";
import { denoFileSystem } from "../../src/system/file_system.ts";

const FDINFO: [what: string, text: string, name: string | undefined][] = [
  ["a tap's fd", "pos:\t0\nflags:\t0104002\nmnt_id:\t25\nino:\t1053\niff:\ttap100i0\n", "tap100i0"],
  ["a tun fd attached to nothing", "pos:\t0\nflags:\t0104002\nmnt_id:\t25\n", undefined],
  ["a name too long for an interface", "iff:\tabcdefghijklmnopq\n", undefined],
  ["iff not at a line start", "xiff:\ttap0\n", undefined],
];

Deno.test("tapNameOfFdinfo() reads the iff line of a tun fd's fdinfo", () => {
  for (const [what, text, name] of FDINFO) deepStrictEqual(tapNameOfFdinfo(text), name, what);
});

Deno.test("heldTaps() names the taps of /dev/net/tun fds, or says it cannot tell", async () => {
  const procfs = await Deno.makeTempDir({ prefix: "kvm_exporter_tap_owners_" });
  try {
    await Deno.mkdir(`${procfs}/7/fd`, { recursive: true });
    await Deno.mkdir(`${procfs}/7/fdinfo`);
    await Deno.symlink("/dev/net/tun", `${procfs}/7/fd/10`);
    await Deno.symlink("/dev/net/tun", `${procfs}/7/fd/11`);
    await Deno.symlink("/dev/null", `${procfs}/7/fd/12`);
    await Deno.writeTextFile(`${procfs}/7/fdinfo/10`, "iff:\ttapA\n");
    await Deno.writeTextFile(`${procfs}/7/fdinfo/11`, "pos:\t0\n");
    await Deno.writeTextFile(`${procfs}/7/fdinfo/12`, "iff:\tnotatun\n");
    deepStrictEqual(await heldTaps({ procfs, pid: 7, fs: denoFileSystem }), {
      known: true,
      names: new Set(["tapA"]),
    });
    deepStrictEqual((await heldTaps({ procfs, pid: 8, fs: denoFileSystem })).known, false);
  } finally {
    await Deno.remove(procfs, { recursive: true });
  }
});
