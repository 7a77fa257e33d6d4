import assert from "node:assert/strict";
import {
  NotRegularError,
  readBoundedText,
  readBoundedTextSync,
  TooLargeError,
} from "../../src/system/bounded_read.ts";
import { classifyReadError } from "../../src/system/file_system.ts";

/** Files to read with a 16-byte cap, and what each read must give. */
const CASES: {
  name: string;
  make: (path: string) => Promise<void>;
  want: string | (new (message: string) => Error);
}[] = [
  { name: "a stat file", make: (p) => Deno.writeTextFile(p, "42\n"), want: "42\n" },
  { name: "an empty file", make: (p) => Deno.writeTextFile(p, ""), want: "" },
  {
    name: "exactly the cap",
    make: (p) => Deno.writeTextFile(p, "x".repeat(16)),
    want: "x".repeat(16),
  },
  {
    name: "one byte past the cap",
    make: (p) => Deno.writeTextFile(p, "x".repeat(17)),
    want: TooLargeError,
  },
  {
    name: "a symlink to /dev/zero",
    make: (p) => Deno.symlink("/dev/zero", p),
    want: NotRegularError,
  },
  { name: "a directory", make: (p) => Deno.mkdir(p), want: NotRegularError },
  {
    name: "a symlink to a regular file",
    make: (p) => Deno.writeTextFile(`${p}.t`, "7\n").then(() => Deno.symlink(`${p}.t`, p)),
    want: "7\n",
  },
];

for (const read of [readBoundedText, readBoundedTextSync]) {
  for (const { name, make, want } of CASES) {
    Deno.test(`${read.name}() reads ${name}`, async () => {
      const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_bounded_" });
      try {
        await make(`${dir}/f`);
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

Deno.test("classifyReadError() names the new reasons", () => {
  assert.equal(classifyReadError(new TooLargeError("x")), "too_large");
  assert.equal(classifyReadError(new NotRegularError("x")), "not_regular");
});
