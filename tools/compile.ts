/**
 * `deno task compile`: builds the single `kvm_exporter` executable with the
 * permissions baked in. `deno compile` downloads its runtime (denort) unless
 * DENORT_BIN names a local copy; offline, this says so in one line.
 *
 * @module
 */

/** The permissions baked into the executable: read-only files, network, our env vars, QMP sockets. */
export const COMPILE_PERMISSIONS = [
  "--allow-read",
  "--allow-net",
  "--allow-env=KVM_EXPORTER_*",
  // Deno needs write permission on a unix socket to connect to it (QMP); VMMs keep them in /run.
  "--allow-write=/run,/var/run",
];

async function main(): Promise<number> {
  const output = Deno.args[0] ?? "kvm_exporter";
  const denort = Deno.env.get("DENORT_BIN");
  if (denort !== undefined && denort !== "") {
    try {
      await Deno.stat(denort);
    } catch {
      console.error(`compile: DENORT_BIN="${denort}" does not exist`);
      return 1;
    }
  }
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["compile", ...COMPILE_PERMISSIONS, "--output", output, "main.ts"],
    stdout: "inherit",
    stderr: "piped",
  }).output();
  if (code === 0) {
    console.log(`compile: wrote ${output}`);
    return 0;
  }
  const text = new TextDecoder().decode(stderr);
  if (denort === undefined && /denort|download|dl\.deno\.land|error sending request/i.test(text)) {
    console.error(
      "compile: deno compile could not download its runtime (denort); set DENORT_BIN to a local denort binary of the same Deno version",
    );
  } else {
    console.error(`compile: deno compile failed: ${text.trim().split("\n").at(-1)}`);
  }
  return 1;
}

if (import.meta.main) Deno.exit(await main());
