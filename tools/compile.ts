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
  // Deno needs write permission on a unix socket to connect to it: QMP sockets, which VMMs keep in
  // /run, and libvirt's /run/libvirt/libvirt-sock-ro (or virtqemud-sock-ro).
  "--allow-write=/run,/var/run",
];

/**
 * The git revision of the checkout, or REVISION from the environment (a Docker build arg).
 *
 * @returns 12 hex digits, or "unknown" outside a git checkout.
 */
export async function revision(): Promise<string> {
  const fromEnv = Deno.env.get("REVISION");
  if (fromEnv) return fromEnv;
  try {
    const { code, stdout } = await new Deno.Command("git", {
      args: ["rev-parse", "--short=12", "HEAD"],
      stdout: "piped",
      stderr: "null",
    }).output();
    if (code === 0) return new TextDecoder().decode(stdout).trim();
  } catch {
    // No git here (a container build without .git).
  }
  return "unknown";
}

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
  // Stamp the revision into the build, and put the source back as it was whatever happens.
  const buildInfo = new URL("../src/build_info.json", import.meta.url);
  const original = await Deno.readTextFile(buildInfo);
  // Replaced by rename, so that a process importing it meanwhile never reads half a file.
  const replace = async (text: string): Promise<void> => {
    const temp = new URL("../src/build_info.json.tmp", import.meta.url);
    await Deno.writeTextFile(temp, text);
    await Deno.rename(temp, buildInfo);
  };
  await replace(JSON.stringify({ revision: await revision() }) + "\n");
  let result: Deno.CommandOutput;
  try {
    result = await new Deno.Command(Deno.execPath(), {
      args: ["compile", ...COMPILE_PERMISSIONS, "--output", output, "main.ts"],
      stdout: "inherit",
      stderr: "piped",
    }).output();
  } finally {
    await replace(original);
  }
  const { code, stderr } = result;
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
