/**
 * `deno task compile`: builds the single `kvm_exporter` executable with the
 * permissions baked in. `deno compile` downloads its runtime (denort) unless
 * DENORT_BIN names a local copy; offline, this says so in one line.
 *
 * @module
 */

import { SOURCE_VERSION } from "../src/version.ts";

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
 * V8's heap limits for every run mode (the executable bakes them in; the launcher, the Dockerfile,
 * the tasks and the documented `deno run` lines pass them). By default V8 sizes its heap for the
 * machine: a young generation of up to 3 x 16 MB, and an old generation let grow to 4 times its
 * live size before a full collection, so a 100x16 scrape (20 MB live) peaked at 250 MB RSS. A 2 MB
 * semi-space, and an old-space limit under 2 GB (below which V8 grows the old generation at most
 * ~2-fold), halve that peak for ~4% more CPU on 10x4 and ~14% on 100x16 (docs/performance.md).
 * 1536 MB fits about a million stat files (~1.3 KB live each); past it V8 aborts.
 */
export const RUNTIME_V8_FLAGS = "--v8-flags=--max-semi-space-size=2,--max-old-space-size=1536";

/**
 * The git revision of the checkout, or REVISION from the environment (a Docker build arg).
 *
 * @returns 12 hex digits, or "unknown" outside a git checkout.
 */
export async function revision(): Promise<string> {
  const fromEnv = Deno.env.get("REVISION");
  if (fromEnv) return fromEnv;
  return await git(["rev-parse", "--short=12", "HEAD"]) ?? "unknown";
}

/** What a git command printed, trimmed; undefined when it failed or there is no git. */
async function git(args: string[]): Promise<string | undefined> {
  try {
    const { code, stdout } = await new Deno.Command("git", {
      args,
      cwd: new URL("..", import.meta.url),
      stdout: "piped",
      stderr: "null",
    }).output();
    return code === 0 ? new TextDecoder().decode(stdout).trim() : undefined;
  } catch {
    return undefined; // No git here (a container build without .git).
  }
}

/** What a build stamps into src/build_info.json. */
export interface BuildStamp {
  /** The release version ({@linkcode version}). */
  version: string;
  /** The git revision ({@linkcode revision}). */
  revision: string;
}

/**
 * The release version, from git: a tag `vX.Y.Z` on HEAD gives `X.Y.Z`; a later commit gives the
 * last such tag's version (or SOURCE_VERSION, before the first tag) with `+git.N.REV`, N commits
 * after it, so that every commit has its own, increasing version (dpkg compares them). VERSION
 * from the environment wins (a Docker build arg); outside a git checkout it is SOURCE_VERSION.
 *
 * @param rev The revision, as {@linkcode revision} gives it.
 * @returns The version.
 */
export async function version(rev: string): Promise<string> {
  const fromEnv = Deno.env.get("VERSION");
  if (fromEnv) return fromEnv;
  const described = await git([
    "describe",
    "--tags",
    "--match",
    "v[0-9]*",
    "--long",
    "--abbrev=12",
  ]);
  const tagged = /^v(\d[\w.~]*)-(\d+)-g[0-9a-f]+$/.exec(described ?? "");
  if (tagged !== null) {
    return tagged[2] === "0" ? tagged[1]! : `${tagged[1]}+git.${tagged[2]}.${rev}`;
  }
  const count = await git(["rev-list", "--count", "HEAD"]);
  return count === undefined ? SOURCE_VERSION : `${SOURCE_VERSION}+git.${count}.${rev}`;
}

/**
 * The version and revision a build stamps.
 *
 * @returns Both, from git or the environment.
 */
export async function buildStamp(): Promise<BuildStamp> {
  const rev = await revision();
  return { version: await version(rev), revision: rev };
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
  // Stamp the version and revision into the build; put the source back as it was whatever happens.
  const buildInfo = new URL("../src/build_info.json", import.meta.url);
  const original = await Deno.readTextFile(buildInfo);
  // Replaced by rename, so that a process importing it meanwhile never reads half a file.
  const replace = async (text: string): Promise<void> => {
    const temp = new URL("../src/build_info.json.tmp", import.meta.url);
    await Deno.writeTextFile(temp, text);
    await Deno.rename(temp, buildInfo);
  };
  await replace(JSON.stringify(await buildStamp()) + "\n");
  let result: Deno.CommandOutput;
  try {
    result = await new Deno.Command(Deno.execPath(), {
      args: ["compile", ...COMPILE_PERMISSIONS, RUNTIME_V8_FLAGS, "--output", output, "main.ts"],
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
