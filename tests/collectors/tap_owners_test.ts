import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import {
  HELD_TAPS_QUICK_RETRIES,
  HELD_TAPS_RETRY_MS,
  heldTaps,
  HeldTapsCache,
  MAX_FDS_PER_VMM,
  tapNameOfFdinfo,
} from "../../src/collectors/tap_owners.ts";
import { denoFileSystem, type FileSystem } from "../../src/system/file_system.ts";

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

Deno.test("heldTaps() says it cannot tell when the VMM has more fds than it looks at", async () => {
  const procfs = await Deno.makeTempDir({ prefix: "kvm_exporter_tap_owners_" });
  try {
    await Deno.mkdir(`${procfs}/7/fd`, { recursive: true });
    await Deno.mkdir(`${procfs}/7/fdinfo`);
    for (let fd = 0; fd <= MAX_FDS_PER_VMM; fd++) {
      await Deno.symlink("/dev/null", `${procfs}/7/fd/${fd}`);
    }
    const held = await heldTaps({ procfs, pid: 7, fs: denoFileSystem });
    strictEqual(held.known, false, "a truncated scan is not a complete one");
    ok(!held.known && held.why.includes(`${MAX_FDS_PER_VMM}`), JSON.stringify(held));
  } finally {
    await Deno.remove(procfs, { recursive: true });
  }
});

Deno.test("HeldTapsCache scans again a scan that missed a tap only at the next few scrapes, then every 60 s", async () => {
  const procfs = await Deno.makeTempDir({ prefix: "kvm_exporter_tap_owners_" });
  try {
    await Deno.mkdir(`${procfs}/7/fd`, { recursive: true });
    await Deno.mkdir(`${procfs}/7/fdinfo`);
    await Deno.symlink("/dev/net/tun", `${procfs}/7/fd/10`);
    await Deno.writeTextFile(`${procfs}/7/fdinfo/10`, "iff:\ttapA\n");
    let links = 0;
    const fs: FileSystem = {
      ...denoFileSystem,
      readLink: (path) => {
        links++;
        return denoFileSystem.readLink(path);
      },
    };
    let now = 0;
    const cache = new HeldTapsCache({ procfs, fs, now: () => now });
    const vm = { dir: "7-1", pid: 7 };
    // tapB, still on the command line, was hot-unplugged: no scan will find it.
    const names = ["tapA", "tapB"];
    for (let scrape = 0; scrape <= HELD_TAPS_QUICK_RETRIES; scrape++) {
      deepStrictEqual(await cache.of(vm, names), { known: true, names: new Set(["tapA"]) });
    }
    strictEqual(links, 1 + HELD_TAPS_QUICK_RETRIES, "a scan, then the quick retries");
    now += HELD_TAPS_RETRY_MS - 1;
    await cache.of(vm, names);
    strictEqual(links, 1 + HELD_TAPS_QUICK_RETRIES, "then not before the backoff");
    now += 1;
    await cache.of(vm, names);
    strictEqual(links, 2 + HELD_TAPS_QUICK_RETRIES, "and once it has passed");
    await cache.of(vm, ["tapA"]);
    await cache.of(vm, ["tapA"]);
    strictEqual(links, 2 + HELD_TAPS_QUICK_RETRIES, "a scan holding every tap is kept");
    cache.keepOnly(new Set());
    await cache.of(vm, ["tapA"]);
    strictEqual(links, 3 + HELD_TAPS_QUICK_RETRIES, "a VM gone is forgotten");
  } finally {
    await Deno.remove(procfs, { recursive: true });
  }
});
