import { ok, rejects, strictEqual } from "node:assert/strict";
import { ClientError, type ClientErrorReason, oneLine } from "../../src/system/client_error.ts";
import { connectUnixSocket, isPeerGone, socketFlags } from "../../src/system/unix_socket.ts";

const options = {
  what: "test socket",
  refusedHint: "is the peer running?",
  error: (reason: ClientErrorReason, message: string, o: { cause?: unknown }) =>
    new ClientError(reason, message, o),
};

function hasReason(reason: ClientErrorReason, message: RegExp): (error: unknown) => boolean {
  return (error) => {
    ok(error instanceof ClientError, String(error));
    strictEqual(error.reason, reason, error.message);
    ok(message.test(error.message), error.message);
    ok(!error.message.includes("\n"), "one line");
    return true;
  };
}

Deno.test("connectUnixSocket() classifies what is at the path", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "unix_socket_test_" });
  try {
    await Deno.writeTextFile(`${dir}/regular`, "not a socket\n");
    // Deno removes its socket file on close: keep a second link to get a socket nobody serves.
    const stale = Deno.listen({ transport: "unix", path: `${dir}/live.sock` });
    await Deno.link(`${dir}/live.sock`, `${dir}/stale.sock`);
    stale.close();
    const missing =
      /^Cannot connect to test socket ".*" \(is the peer running\?\): it does not exist: /;
    const refused =
      /^Cannot connect to test socket ".*" \(is the peer running\?\): not a socket, or nobody listens: /;
    const cases: { what: string; path: string; message: RegExp }[] = [
      { what: "missing path", path: `${dir}/missing.sock`, message: missing },
      { what: "missing directory", path: `${dir}/nope/x.sock`, message: missing },
      { what: "a path below a regular file", path: `${dir}/regular/x.sock`, message: missing },
      { what: "regular file", path: `${dir}/regular`, message: refused },
      { what: "directory", path: dir, message: refused },
      { what: "socket nobody listens on", path: `${dir}/stale.sock`, message: refused },
    ];
    for (const c of cases) {
      await t.step(c.what, async () => {
        await rejects(connectUnixSocket(c.path, options), hasReason("refused", c.message));
      });
    }
    await t.step("a listening socket connects", async () => {
      const listener = Deno.listen({ transport: "unix", path: `${dir}/ok.sock` });
      try {
        const conn = await connectUnixSocket(`${dir}/ok.sock`, options);
        conn.close();
      } finally {
        listener.close();
      }
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("connectUnixSocket() says 'permission' and names the three flags when Deno lacks one", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "unix_socket_test_" });
  const path = `${dir}/x.sock`;
  const listener = Deno.listen({ transport: "unix", path });
  const module = new URL("../../src/system/unix_socket.ts", import.meta.url).href;
  const errors = new URL("../../src/system/client_error.ts", import.meta.url).href;
  const script = `import { connectUnixSocket } from ${JSON.stringify(module)};
import { ClientError } from ${JSON.stringify(errors)};
try {
  (await connectUnixSocket(Deno.args[0], {
    what: "test socket",
    error: (r, m, o) => new ClientError(r, m, o),
  })).close();
  console.log(JSON.stringify({ ok: true }));
} catch (e) {
  console.log(JSON.stringify({ reason: e.reason, message: e.message }));
}`;
  const cases: { what: string; flags: string[]; missing: string }[] = [
    { what: "no flags", flags: [], missing: "read" },
    { what: "read only", flags: [`--allow-read=${path}`], missing: "write" },
    {
      what: "read and write",
      flags: [`--allow-read=${path}`, `--allow-write=${path}`],
      missing: "net",
    },
  ];
  try {
    await Deno.writeTextFile(`${dir}/probe.ts`, script);
    for (const c of cases) {
      await t.step(c.what, async () => {
        const output = await new Deno.Command(Deno.execPath(), {
          args: ["run", "--no-prompt", "--no-config", ...c.flags, `${dir}/probe.ts`, path],
          stdout: "piped",
          stderr: "piped",
        }).output();
        const result = JSON.parse(new TextDecoder().decode(output.stdout));
        strictEqual(result.reason, "permission", result.message);
        ok(result.message.includes(`run with ${socketFlags(path)};`), result.message);
        ok(result.message.includes(`Requires ${c.missing} access`), result.message);
      });
    }
  } finally {
    listener.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("isPeerGone() tells a closed peer from other I/O errors", async (t) => {
  const cases: { error: unknown; gone: boolean }[] = [
    { error: new Deno.errors.ConnectionReset("reset"), gone: true },
    { error: new Deno.errors.BrokenPipe("pipe"), gone: true },
    { error: new Deno.errors.UnexpectedEof("eof"), gone: true },
    { error: new Deno.errors.ConnectionAborted("aborted"), gone: true },
    { error: new Deno.errors.BadResource("closed"), gone: true },
    { error: new Deno.errors.PermissionDenied("denied"), gone: false },
    { error: new Error("EIO"), gone: false },
    { error: "not an error", gone: false },
  ];
  for (const c of cases) {
    await t.step(oneLine(c.error), () => strictEqual(isPeerGone(c.error), c.gone));
  }
});

Deno.test("oneLine() puts an error's message on one line", async (t) => {
  const cases: { input: unknown; expected: string }[] = [
    { input: new Error("Requires read access\n  to x"), expected: "Requires read access to x" },
    { input: " a\tb\r\n", expected: "a b" },
    { input: 42, expected: "42" },
  ];
  for (const c of cases) {
    await t.step(JSON.stringify(c.expected), () => strictEqual(oneLine(c.input), c.expected));
  }
});
