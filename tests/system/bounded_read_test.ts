import assert from "node:assert/strict";
import {
  NotRegularError,
  readBoundedText,
  readBoundedTextNonBlocking,
  readBoundedTextSync,
  readRegularFile,
  TooLargeError,
} from "../../src/system/bounded_read.ts";
import { classifyReadError } from "../../src/system/file_system.ts";
import { mkfifo } from "../support/fifo.ts";

type Want = string | (new (message: string) => Error);

/** Files to read with a 16-byte cap, and what each read must give: async, then sync. */
const CASES: { name: string; make: (path: string) => Promise<void>; want: [Want, Want] }[] = [
  { name: "a stat file", make: (p) => Deno.writeTextFile(p, "42\n"), want: ["42\n", "42\n"] },
  { name: "an empty file", make: (p) => Deno.writeTextFile(p, ""), want: ["", ""] },
  {
    name: "exactly the cap",
    make: (p) => Deno.writeTextFile(p, "x".repeat(16)),
    want: ["x".repeat(16), "x".repeat(16)],
  },
  {
    name: "one byte past the cap",
    make: (p) => Deno.writeTextFile(p, "x".repeat(17)),
    want: [TooLargeError, TooLargeError],
  },
  {
    name: "a 10 MB file",
    make: (p) => Deno.writeTextFile(p, "7".repeat(10 * 1024 * 1024)),
    want: [TooLargeError, TooLargeError],
  },
  // The sync read checks the type only of a read that is empty, full or failed: a device's is.
  {
    name: "a symlink to /dev/zero",
    make: (p) => Deno.symlink("/dev/zero", p),
    want: [NotRegularError, NotRegularError],
  },
  { name: "a directory", make: (p) => Deno.mkdir(p), want: [NotRegularError, NotRegularError] },
  {
    name: "a symlink to a regular file",
    make: (p) => Deno.writeTextFile(`${p}.t`, "7\n").then(() => Deno.symlink(`${p}.t`, p)),
    want: ["7\n", "7\n"],
  },
];

for (const [index, read] of [readBoundedText, readBoundedTextSync].entries()) {
  for (const { name, make, want: wants } of CASES) {
    Deno.test(`${read.name}() reads ${name}`, async () => {
      const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_bounded_" });
      try {
        await make(`${dir}/f`);
        const want = wants[index]!;
        if (typeof want === "string") {
          assert.equal(await read(`${dir}/f`, 16), want);
        } else {
          await assert.rejects(async () => await read(`${dir}/f`, 16), want);
        }
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    });
  }
}

Deno.test("readBoundedText() reads a procfs file that reports size 0 up to its cap", async () => {
  const text = await readBoundedText("/proc/self/status", 64 * 1024);
  assert.match(text, /^Name:/);
  await assert.rejects(readBoundedText("/proc/self/status", 8), TooLargeError);
});

/** Files read with `overflow: "last-line"`, a cap of `cap` bytes, and the text each gives. */
const LAST_LINE_CASES: { name: string; text: string; cap: number; want: string }[] = [
  { name: "a file within the cap", text: "a 1\nb 2\n", cap: 16, want: "a 1\nb 2\n" },
  { name: "exactly the cap", text: "a 1\nb 2\n", cap: 8, want: "a 1\nb 2\n" },
  { name: "a line past the cap", text: "a 1\nb 2\nc 3\n", cap: 9, want: "a 1\nb 2\n" },
  { name: "no whole line within the cap", text: "a long line\n", cap: 4, want: "" },
  // Larger than the first read buffer: the buffer grows up to the cap.
  {
    name: "a table larger than the first read",
    text: "0123456789abcde\n".repeat(40_000),
    cap: 16 * 30_000 + 5,
    want: "0123456789abcde\n".repeat(30_000),
  },
];

for (const { name, text, cap, want } of LAST_LINE_CASES) {
  Deno.test(`readBoundedText() with overflow "last-line" reads ${name}`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_bounded_lines_" });
    try {
      await Deno.writeTextFile(`${dir}/f`, text);
      assert.equal(await readBoundedText(`${dir}/f`, cap, { overflow: "last-line" }), want);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test('readBoundedText() with overflow "last-line" cuts a procfs file at a line', async () => {
  // procfs reports size 0 and hands out a file in several reads. The cut falls in the third line
  // (State), which may change between the two reads: only the two before it (Name, Umask) are
  // compared, and they do not.
  const whole = await readBoundedText("/proc/self/status", 64 * 1024);
  const lines = whole.split("\n");
  const cap = lines.slice(0, 2).join("\n").length + 2;
  assert.equal(
    await readBoundedText("/proc/self/status", cap, { overflow: "last-line" }),
    `${lines.slice(0, 2).join("\n")}\n`,
  );
});

Deno.test("classifyReadError() names the new reasons", () => {
  assert.equal(classifyReadError(new TooLargeError("x")), "too_large");
  assert.equal(classifyReadError(new NotRegularError("x")), "not_regular");
  assert.equal(classifyReadError(new Deno.errors.IsADirectory("x")), "not_regular");
  assert.equal(
    classifyReadError(new Error("No such device or address (os error 6): open '/d/socket'")),
    "not_regular",
  );
});

/** What {@linkcode readRegularFile} gives with a 16-byte cap: the text, or the error's message. */
const REGULAR: {
  name: string;
  make: (path: string) => Promise<void | { close(): void }>;
  want: string | Error;
}[] = [
  { name: "a file", make: (p) => Deno.writeTextFile(p, "42\n"), want: "42\n" },
  { name: "an empty file", make: (p) => Deno.writeTextFile(p, ""), want: "" },
  {
    name: "exactly the cap",
    make: (p) => Deno.writeTextFile(p, "x".repeat(16)),
    want: "x".repeat(16),
  },
  {
    name: "one byte past the cap",
    make: (p) => Deno.writeTextFile(p, "x".repeat(17)),
    want: new TooLargeError("larger than 16 bytes"),
  },
  {
    name: "a symlink to a file (a ConfigMap's layout)",
    make: (p) => Deno.writeTextFile(`${p}.t`, "7\n").then(() => Deno.symlink(`${p}.t`, p)),
    want: "7\n",
  },
  // Opening a FIFO without O_NONBLOCK waits for a writer: this read would never return.
  { name: "a FIFO", make: mkfifo, want: new NotRegularError("not a regular file (a FIFO)") },
  {
    name: "a symlink to /dev/zero",
    make: (p) => Deno.symlink("/dev/zero", p),
    want: new NotRegularError("not a regular file (a character device)"),
  },
  {
    name: "a directory",
    make: (p) => Deno.mkdir(p),
    want: new NotRegularError("not a regular file (a directory)"),
  },
  {
    name: "a unix socket",
    make: (p) => Promise.resolve(Deno.listen({ transport: "unix", path: p })),
    want: new NotRegularError("not a regular file (a socket)"),
  },
  {
    name: "nothing",
    make: () => Promise.resolve(),
    want: new Deno.errors.NotFound("no such file"),
  },
];

for (const { name, make, want } of REGULAR) {
  Deno.test(`readRegularFile() given ${name}`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_regular_" });
    const made = await make(`${dir}/f`);
    try {
      const read = readRegularFile(`${dir}/f`, { maxBytes: 16 });
      if (typeof want === "string") assert.equal(new TextDecoder().decode(await read), want);
      else {
        await assert.rejects(read, (error: Error) => {
          assert.equal(error.constructor, want.constructor);
          assert.equal(error.message, want.message);
          return true;
        });
      }
    } finally {
      made?.close();
      await Deno.remove(dir, { recursive: true });
    }
  });
}

/** Files of every kind, and what a non-blocking read with a 16-byte cap gives (its reason). */
const NON_BLOCKING: {
  name: string;
  make: (path: string) => Promise<{ close(): void } | void>;
  want: string | ReturnType<typeof classifyReadError>;
}[] = [
  { name: "a stat file", make: (p) => Deno.writeTextFile(p, "42\n"), want: "42\n" },
  {
    name: "one byte past the cap",
    make: (p) => Deno.writeTextFile(p, "x".repeat(17)),
    want: "too_large",
  },
  { name: "a FIFO", make: (p) => mkfifo(p), want: "not_regular" },
  {
    name: "a unix socket",
    make: (p) => Promise.resolve(Deno.listen({ transport: "unix", path: p })),
    want: "not_regular",
  },
  {
    name: "a symlink to /dev/zero",
    make: (p) => Deno.symlink("/dev/zero", p),
    want: "not_regular",
  },
  { name: "a directory", make: (p) => Deno.mkdir(p), want: "not_regular" },
  { name: "a dangling symlink", make: (p) => Deno.symlink("gone", p), want: "vanished" },
  {
    name: "a symlink to a regular file",
    make: (p) => Deno.writeTextFile(`${p}.t`, "7\n").then(() => Deno.symlink(`${p}.t`, p)),
    want: "7\n",
  },
];

for (const { name, make, want } of NON_BLOCKING) {
  Deno.test(`readBoundedTextNonBlocking() reads ${name} without waiting: ${want.trim()}`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_bounded_nb_" });
    const made = await make(`${dir}/f`);
    try {
      const got = await readBoundedTextNonBlocking(`${dir}/f`, 16).catch(classifyReadError);
      assert.equal(got, want);
    } finally {
      made?.close();
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("readRegularFile() stops one byte past the cap of a file whose size it cannot know", async () => {
  // procfs reports size 0: only the read itself can find the file too large.
  await assert.rejects(
    readRegularFile("/proc/self/status", { maxBytes: 8 }),
    new TooLargeError("larger than 8 bytes"),
  );
});
