import assert from "node:assert/strict";
import * as fs from "node:fs";
import { NotRegularError, readBoundedTextSync } from "../../src/system/bounded_read.ts";
import { classifyReadError } from "../../src/system/file_system.ts";
import { NOT_REGULAR, readStatInto } from "../../src/system/nonblocking_read.ts";
import { mkfifo } from "../support/fifo.ts";
import { REFUSED_STAT, refusedStatSkip } from "../support/refused_stat.ts";

/** What `Deno.openSync` and one `readSync` throw for a path: the error readStatInto must match. */
function denoOwnError(path: string): Error {
  try {
    using file = Deno.openSync(path, { read: true });
    file.readSync(new Uint8Array(8));
  } catch (error) {
    return error as Error;
  }
  throw new Error(`${path} read without an error`);
}

/** Paths whose open or read fails as Deno's own calls fail: same class, same message. */
const DENO_ERRORS: { name: string; path: (dir: string) => string; skip?: string | undefined }[] = [
  { name: "a missing file (ENOENT)", path: (dir) => `${dir}/gone` },
  { name: "a path through a file (ENOTDIR)", path: (dir) => `${dir}/file/x` },
  { name: "a dangling symlink", path: (dir) => `${dir}/dangling` },
  { name: "a symlink loop (ELOOP)", path: (dir) => `${dir}/loop1` },
  { name: "a name too long (ENAMETOOLONG)", path: (dir) => `${dir}/${"x".repeat(300)}` },
  { name: "a unix socket (ENXIO)", path: (dir) => `${dir}/socket` },
  { name: "a stat the kernel refuses (EPERM)", path: () => REFUSED_STAT, skip: refusedStatSkip() },
];

for (const { name, path, skip } of DENO_ERRORS) {
  if (skip !== undefined) console.log(`nonblocking_read_test [${name}]: skipped: ${skip}`);
  Deno.test({
    name: `readStatInto() fails on ${name} as Deno.openSync does`,
    ignore: skip !== undefined,
    async fn() {
      const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_nonblocking_" });
      const listener = Deno.listen({ transport: "unix", path: `${dir}/socket` });
      try {
        await Deno.writeTextFile(`${dir}/file`, "1\n");
        await Deno.symlink(`${dir}/nowhere`, `${dir}/dangling`);
        await Deno.symlink(`${dir}/loop2`, `${dir}/loop1`);
        await Deno.symlink(`${dir}/loop1`, `${dir}/loop2`);
        const want = denoOwnError(path(dir));
        assert.throws(() => readStatInto(fs, path(dir), new Uint8Array(8)), (got: Error) => {
          assert.equal(got.constructor, want.constructor);
          assert.equal(got.message, want.message);
          assert.equal(classifyReadError(got), classifyReadError(want));
          return true;
        });
      } finally {
        listener.close();
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}

/**
 * What is not a regular file and reads empty, full or not at all, however it was swapped in: each
 * is a NotRegularError at once. (A FIFO holding data is read as text: never waited on.)
 */
const NOT_REGULAR_FILES: { name: string; make: (path: string) => Promise<unknown> }[] = [
  { name: "a FIFO without a writer", make: mkfifo },
  { name: "a symlink to /dev/zero", make: (p) => Deno.symlink("/dev/zero", p) },
  { name: "a symlink to /dev/null", make: (p) => Deno.symlink("/dev/null", p) },
  { name: "a directory", make: (p) => Deno.mkdir(p) },
];

for (const { name, make } of NOT_REGULAR_FILES) {
  Deno.test(`readBoundedTextSync() refuses ${name} without waiting`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_nonblocking_" });
    try {
      await make(`${dir}/f`);
      assert.throws(() => readStatInto(fs, `${dir}/f`, new Uint8Array(8)), { name: NOT_REGULAR });
      assert.throws(() => readBoundedTextSync(`${dir}/f`, 16), NotRegularError);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("readBoundedTextSync() refuses a FIFO whose writer has written nothing (EAGAIN)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_nonblocking_" });
  const path = `${dir}/fifo`;
  await mkfifo(path);
  // A reader end opened first lets the writer open without waiting; it holds the FIFO open.
  const reader = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const writer = fs.openSync(path, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
  try {
    assert.throws(() => readBoundedTextSync(path, 16), NotRegularError);
  } finally {
    fs.closeSync(writer);
    fs.closeSync(reader);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readStatInto() reads a regular file's bytes, an empty one too", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_nonblocking_" });
  try {
    await Deno.writeTextFile(`${dir}/exits`, "-42\n");
    await Deno.writeTextFile(`${dir}/empty`, "");
    const buffer = new Uint8Array(8);
    assert.equal(readStatInto(fs, `${dir}/exits`, buffer), 4);
    assert.equal(new TextDecoder().decode(buffer.subarray(0, 4)), "-42\n");
    assert.equal(readStatInto(fs, `${dir}/empty`, buffer), 0);
    assert.equal(readBoundedTextSync(`${dir}/empty`, 16), "");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
