/**
 * `deno task compile`: a missing runtime is one clear line; a build embeds
 * the git revision and exactly the permissions docs/deployment.md documents.
 *
 * @module
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";

const root = new URL("../../", import.meta.url).pathname;

async function compile(
  env: Record<string, string>,
  output: string,
): Promise<{ code: number; stderr: string }> {
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", "compile", output],
    cwd: root,
    env: { ...env, NO_COLOR: "1" },
    stdout: "null",
    stderr: "piped",
  }).output();
  return { code, stderr: new TextDecoder().decode(stderr).trim() };
}

Deno.test("deno task compile refuses a DENORT_BIN that does not exist, in one line", async () => {
  const { code, stderr } = await compile({ DENORT_BIN: "/nonexistent/denort" }, "/nonexistent/out");
  strictEqual(code, 1);
  strictEqual(stderr, 'compile: DENORT_BIN="/nonexistent/denort" does not exist');
});

Deno.test("deno task compile bakes in the revision and only the documented permissions", async () => {
  // /bin/true stands in for Deno's runtime, which these machines cannot download: the output is
  // not runnable, but holds what deno compile embeds (its metadata and our sources), offline.
  const before = await Deno.readTextFile(`${root}src/build_info.json`);
  const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_compile_" });
  try {
    const { code, stderr } = await compile({ DENORT_BIN: "/bin/true" }, `${dir}/kvm_exporter`);
    strictEqual(code, 0, stderr);
    strictEqual(await Deno.readTextFile(`${root}src/build_info.json`), before, "source restored");
    const binary = new TextDecoder("latin1").decode(await Deno.readFile(`${dir}/kvm_exporter`));
    const permissions = JSON.parse(/"permissions":(\{[^}]*\})/.exec(binary)![1]!);
    deepStrictEqual(
      {
        read: permissions.allow_read,
        write: permissions.allow_write,
        net: permissions.allow_net,
        env: permissions.allow_env,
        run: permissions.allow_run,
        ffi: permissions.allow_ffi,
        sys: permissions.allow_sys,
      },
      // [] is "everything"; null is "nothing".
      {
        read: [],
        write: ["/run", "/var/run"],
        net: [],
        env: ["KVM_EXPORTER_*"],
        run: null,
        ffi: null,
        sys: null,
      },
    );
    const git = await new Deno.Command("git", {
      args: ["rev-parse", "--short=12", "HEAD"],
      cwd: root,
      stdout: "piped",
      stderr: "null",
    })
      .output().catch(() => undefined);
    const revision = git?.code === 0 ? new TextDecoder().decode(git.stdout).trim() : "unknown";
    ok(binary.includes(`"revision":"${revision}"`), `revision ${revision} stamped`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
