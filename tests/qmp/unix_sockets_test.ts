import { deepStrictEqual, strictEqual } from "node:assert/strict";
import {
  indexListeners,
  type ListenerOfPath,
  parseUnixSockets,
  socketInodeOfLink,
  type UnixSocketLine,
} from "../../src/qmp/unix_sockets.ts";

const HEADER = "Num       RefCount Protocol Flags    Type St Inode Path";

const PARSE: { what: string; lines: string[]; expected: UnixSocketLine[] }[] = [
  {
    what: "a listening socket: flag 0x10000, state 01, with its path",
    lines: ["000000002de4bbf9: 00000002 00000000 00010000 0001 01 97245 /run/qemu-server/101.qmp"],
    expected: [{ inode: 97245, path: "/run/qemu-server/101.qmp", listening: true }],
  },
  {
    what: "an accepted connection keeps the path but is not listening (state 03)",
    lines: ["0000000000000000: 00000003 00000000 00000000 0001 03 97300 /run/qemu-server/101.qmp"],
    expected: [{ inode: 97300, path: "/run/qemu-server/101.qmp", listening: false }],
  },
  {
    what: "an unbound socket has no path",
    lines: ["0000000000000000: 00000003 00000000 00000000 0001 03 21517"],
    expected: [{ inode: 21517, path: undefined, listening: false }],
  },
  {
    what: "a path with spaces is the rest of the line; abstract names start with @",
    lines: [
      "0000000000000000: 00000002 00000000 00010000 0001 01  1234 /run/my vm/a b.qmp",
      "0000000000000000: 00000002 00000000 00010000 0005 01 15500 @/tmp/.X11-unix/X0",
    ],
    expected: [
      { inode: 1234, path: "/run/my vm/a b.qmp", listening: true },
      { inode: 15500, path: "@/tmp/.X11-unix/X0", listening: true },
    ],
  },
  {
    what: "the listening flag alone is not enough: state must be 01",
    lines: ["0000000000000000: 00000002 00000000 00010000 0001 02 77 /x"],
    expected: [{ inode: 77, path: "/x", listening: false }],
  },
  {
    what: "the header, blank lines and malformed lines are skipped",
    lines: [HEADER, "", "garbage", "0000: 2 0 10000 1 1 5 /short-columns"],
    expected: [],
  },
];

Deno.test("parseUnixSockets() reads inode, path and listening state", async (t) => {
  for (const c of PARSE) {
    await t.step(c.what, () => {
      deepStrictEqual(parseUnixSockets([HEADER, ...c.lines].join("\n") + "\n"), c.expected);
    });
  }
});

const listen = (inode: number, path: string): UnixSocketLine => ({ inode, path, listening: true });

const INDEX: {
  what: string;
  lines: UnixSocketLine[];
  path: string;
  expected: ListenerOfPath | undefined;
}[] = [
  {
    what: "one listener",
    lines: [listen(5, "/a"), { inode: 6, path: "/a", listening: false }],
    path: "/a",
    expected: { kind: "one", inode: 5 },
  },
  { what: "nothing listens", lines: [listen(5, "/b")], path: "/a", expected: undefined },
  {
    what: "two listeners on one path (the file was replaced)",
    lines: [listen(5, "/a"), listen(6, "/a")],
    path: "/a",
    expected: { kind: "ambiguous" },
  },
  {
    what: "the listener's inode listed twice (a forged line)",
    lines: [listen(5, "/a"), listen(5, "/real")],
    path: "/a",
    expected: { kind: "ambiguous" },
  },
];

Deno.test("indexListeners() finds the one listener of a path, or calls it ambiguous", async (t) => {
  for (const c of INDEX) {
    await t.step(c.what, () => {
      deepStrictEqual(indexListeners(c.lines).get(c.path), c.expected);
    });
  }
});

Deno.test("parseUnixSockets() sees a newline in a bound path as a forged line, which indexListeners() distrusts", () => {
  // Someone binds a socket to "/tmp/x\n<a line claiming the VM's inode on the glob path>".
  const forged = "0000000000000000: 00000002 00000000 00010000 0001 01 500 /run/q/101.qmp";
  const text = [
    HEADER,
    "0000000000000000: 00000002 00000000 00010000 0001 01 500 /run/q/real.qmp",
    `0000000000000000: 00000002 00000000 00010000 0001 01 900 /tmp/x\n${forged}`,
  ].join("\n");
  deepStrictEqual(indexListeners(parseUnixSockets(text)).get("/run/q/101.qmp"), {
    kind: "ambiguous",
  });
});

Deno.test("socketInodeOfLink() reads socket:[INODE] links only", () => {
  strictEqual(socketInodeOfLink("socket:[97245]"), 97245);
  strictEqual(socketInodeOfLink("anon_inode:[eventfd]"), undefined);
  strictEqual(socketInodeOfLink("/run/qemu/socket:[1]"), undefined);
  strictEqual(socketInodeOfLink("pipe:[12]"), undefined);
});
