/**
 * `deno task release [DIR]`: writes the release into DIR (default `dist/`) for linux amd64, and
 * arm64 when its runtime is in the npm cache:
 *
 * - `kvm_exporter-VERSION-linux-ARCH.tar.gz`, the offline bundle: Deno's runtime from the npm
 *   registry's platform package (pinned by integrity), the exporter's code with only its runtime
 *   npm packages in `node_modules`, and the launcher `bin/kvm_exporter`;
 * - `kvm-exporter_VERSION_ARCH.deb`, the same bundle under `/usr/lib/kvm_exporter` with the
 *   systemd unit, `/etc/default/kvm_exporter` and `/etc/kvm_exporter/`;
 * - `kvm_exporter-VERSION-linux-ARCH`, the single executable for this machine's architecture,
 *   when DENORT_BIN names denort;
 * - `SHA256SUMS`.
 *
 * VERSION comes from git ({@linkcode version} in tools/compile.ts: a `vX.Y.Z` tag, or the commits
 * after the last one).
 *
 * Every file's time is the last commit's, owners are root and archives are sorted, so a build of
 * the same commit is the same file anywhere. Offline once the npm cache (runtime tarballs) and
 * DENO_DIR (the npm packages) hold the inputs.
 *
 * @module
 */

import { type BuildStamp, buildStamp, COMPILE_PERMISSIONS, RUNTIME_V8_FLAGS } from "./compile.ts";

/** The Deno version the bundle ships: the one the project pins (README, CI). */
export const DENO_VERSION = "2.9.6";

/** One target: the Debian architecture and npm's platform package with Deno for it. */
export interface Platform {
  /** Debian's name: `amd64`, `arm64`. */
  arch: string;
  /** The npm package holding `deno` for it. */
  npmPackage: string;
  /** The tarball's integrity as the registry published it for {@linkcode DENO_VERSION}. */
  integrity: string;
  /** Whether a release without it fails (amd64), or only says it is skipped (arm64). */
  required: boolean;
}

/** The platforms, amd64 first. */
export const PLATFORMS: readonly Platform[] = [
  {
    arch: "amd64",
    npmPackage: "@deno/linux-x64-glibc",
    integrity:
      "sha512-3md4TKLCuzsLDmfOoC5KN7NAZaxSVkMgm64vg6foD00JBADCpYS2/5QqXfzgnP5ZQz3iLP9vBQJtEgc116OAoQ==",
    required: true,
  },
  {
    arch: "arm64",
    npmPackage: "@deno/linux-arm64-glibc",
    integrity:
      "sha512-poqhoH9B3nYloigEMPT5t8HY+wBeiuea1An5Q7fqgJzP0SYmWsoS/oUnWO/pEiA4ofzIBy1Elt/in58xKtxEoQ==",
    required: false,
  },
];

/**
 * Where Deno keeps its caches when run by the launcher: a path nobody can create (not even root,
 * `/dev/null` is not a directory), so Deno keeps them in memory and writes nothing anywhere. The
 * npm packages come from the bundle's own `node_modules`. Measured: `--version` starts in 0.6 s
 * either way, and no file changes under the bundle.
 */
export const LAUNCHER_DENO_DIR = "/dev/null/kvm_exporter";

/** The flags the launcher gives `deno run`: never download, never prompt, the bundle's config. */
export const LAUNCHER_RUN_FLAGS = ["--cached-only", "--no-remote", "--frozen", "--no-prompt"];

const root = new URL("../", import.meta.url).pathname;

/**
 * The launcher `bin/kvm_exporter`: the compiled binary's permissions and V8 flags, offline, flags
 * passed on.
 *
 * @example Usage
 * ```ts
 * import { launcherScript } from "./release.ts";
 * console.assert(launcherScript("0.1.0").includes('"$@"'));
 * ```
 *
 * @param version The release version, for the comment.
 * @returns The shell script.
 */
export function launcherScript(version: string): string {
  const flags = [...LAUNCHER_RUN_FLAGS, RUNTIME_V8_FLAGS, ...COMPILE_PERMISSIONS].map((f) =>
    `'${f}'`
  );
  return `#!/bin/sh
# kvm_exporter ${version}: runs the exporter on the Deno runtime beside it, with the permissions the
# single executable bakes in (tools/compile.ts), never downloading anything. Flags pass through.
set -e
here=$(dirname "$(readlink -f "$0")")
lib="$here/../lib"
# Caches stay in memory (the path cannot be created): nothing is written, the bundle may be
# read-only. npm packages come from lib/app/node_modules.
DENO_DIR=${LAUNCHER_DENO_DIR}
DENO_NO_UPDATE_CHECK=1
export DENO_DIR DENO_NO_UPDATE_CHECK
exec "$lib/deno" run \\
  ${flags.join(" \\\n  ")} \\
  --config "$lib/app/deno.json" "$lib/app/main.ts" "$@"
`;
}

/**
 * `/etc/kvm_exporter/vm.yaml` as the package installs it: the example, commented out, so a fresh
 * install names VMs from their command lines until the operator writes entries.
 *
 * @example Usage
 * ```ts
 * import { packagedVmYaml } from "./release.ts";
 * console.assert(packagedVmYaml("vm_infos:\n").endsWith("# vm_infos:\n"));
 * ```
 *
 * @param example The text of vm.example.yaml.
 * @returns The commented copy.
 */
export function packagedVmYaml(example: string): string {
  const body = example.trimEnd().split("\n").map((line) =>
    line.startsWith("#") ? line : `# ${line}`
  );
  return [
    "# /etc/kvm_exporter/vm.yaml, read by the packaged unit (--collector.vmmap.path).",
    "# Every line is commented out: uncomment and edit the entries you need.",
    ...body,
  ].join("\n") + "\n";
}

/** Options of {@linkcode debControl}. */
export interface ControlOptions {
  /** Debian architecture. */
  arch: string;
  /** Installed size in KiB. */
  installedKiB: number;
  /** The release version. */
  version: string;
  /** The git revision, for the description. */
  revision: string;
}

/**
 * The package's DEBIAN/control.
 *
 * @param options Architecture, size, version and revision.
 * @returns The control file text.
 */
export function debControl(options: ControlOptions): string {
  return `Package: kvm-exporter
Version: ${options.version}
Architecture: ${options.arch}
Maintainer: kvm_exporter maintainers <root@localhost>
Installed-Size: ${options.installedKiB}
Depends: libc6 (>= 2.27)
Section: net
Priority: optional
Description: Prometheus exporter for KVM statistics
 Exports what Linux KVM keeps about every virtual machine (debugfs), and with
 --collector.qmp and --collector.libvirt what QEMU and libvirt report, for
 Prometheus. Runs on its own Deno ${DENO_VERSION} runtime, offline (revision
 ${options.revision}).
`;
}

/** The files the package marks as conffiles: dpkg keeps the operator's edits. */
export const CONFFILES = [
  "/etc/default/kvm_exporter",
  "/etc/kvm_exporter/vm.yaml",
  "/etc/kvm_exporter/web.yml",
];

async function run(
  program: string,
  args: string[],
  options: { cwd?: string } = {},
): Promise<string> {
  const { code, stdout, stderr } = await new Deno.Command(program, {
    args,
    cwd: options.cwd ?? root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    const why = new TextDecoder().decode(stderr).trim().split("\n").at(-1) ?? "";
    throw new ReleaseError(`${program} ${args.join(" ")} failed (exit ${code}): ${why}`);
  }
  return new TextDecoder().decode(stdout);
}

/** A step failed; the message is the one line the release prints. */
class ReleaseError extends Error {}

/** The time of the last commit (or SOURCE_DATE_EPOCH), for every file's mtime. */
async function sourceDateEpoch(): Promise<string> {
  const fromEnv = Deno.env.get("SOURCE_DATE_EPOCH");
  if (fromEnv) return fromEnv;
  return (await run("git", ["log", "-1", "--format=%ct"]).catch(() => "0")).trim() || "0";
}

/** The exporter's code, stamped with the version and revision, its runtime npm packages vendored. */
async function stageApp(dir: string, stamp: BuildStamp): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  await run("cp", ["-r", `${root}src`, `${root}main.ts`, `${root}deno.lock`, dir]);
  await Deno.writeTextFile(`${dir}/src/build_info.json`, JSON.stringify(stamp) + "\n");
  const config = JSON.parse(await Deno.readTextFile(`${root}deno.json`));
  const appConfig = { imports: config.imports, compilerOptions: config.compilerOptions };
  const write = (mode: string): Promise<void> =>
    Deno.writeTextFile(
      `${dir}/deno.json`,
      JSON.stringify({ ...appConfig, nodeModulesDir: mode }, null, 2) + "\n",
    );
  // "auto" to let deno install fill node_modules (from DENO_DIR's cache when it holds them), then
  // "manual": at run time Deno reads node_modules and neither checks nor writes it.
  await write("auto");
  await run(Deno.execPath(), ["install", "--frozen", "--quiet"], { cwd: dir });
  await write("manual");
  // Deno's records of this machine's install, and npm's command shims: not needed to run.
  for (
    const path of [
      "node_modules/.bin",
      "node_modules/.deno/.setup-cache.bin",
      "node_modules/.deno/.deno.lock",
    ]
  ) {
    await Deno.remove(`${dir}/${path}`, { recursive: true }).catch(() => {});
  }
}

/** Deno's runtime for a platform, from npm's cache (fetched once if amd64), checked and unpacked. */
async function fetchRuntime(platform: Platform, dir: string): Promise<string | undefined> {
  await Deno.mkdir(dir, { recursive: true });
  const spec = `${platform.npmPackage}@${DENO_VERSION}`;
  const mode = platform.required ? "--prefer-offline" : "--offline";
  let json: string;
  try {
    json = await run("npm", ["pack", mode, "--json", "--pack-destination", dir, spec]);
  } catch (error) {
    if (platform.required) throw error;
    console.log(
      `release: no ${platform.arch}: ${spec} is not in the npm cache (npm cache add ${spec} adds it)`,
    );
    return undefined;
  }
  const [packed] = JSON.parse(json) as { filename: string; integrity: string }[];
  if (packed?.integrity !== platform.integrity) {
    throw new ReleaseError(`${spec}: integrity ${packed?.integrity} is not the pinned one`);
  }
  await run("tar", ["-xzf", `${dir}/${packed.filename}`, "-C", dir, "package/deno"]);
  return `${dir}/package/deno`;
}

/** The bundle's tree: bin/, lib/deno, lib/app, share/. */
async function stageBundle(
  dir: string,
  options: { app: string; deno: string; version: string },
): Promise<void> {
  await Deno.mkdir(`${dir}/bin`, { recursive: true });
  await Deno.mkdir(`${dir}/lib`, { recursive: true });
  await Deno.mkdir(`${dir}/share`, { recursive: true });
  await run("cp", ["-a", options.app, `${dir}/lib/app`]);
  await run("cp", [options.deno, `${dir}/lib/deno`]);
  await Deno.writeTextFile(`${dir}/bin/kvm_exporter`, launcherScript(options.version));
  await run("cp", [`${root}deploy/kvm_exporter-start`, `${dir}/bin/`]);
  await run("cp", [
    `${root}deploy/kvm_exporter.service`,
    `${root}deploy/debian/kvm_exporter.default`,
    `${root}deploy/debian/web.yml`,
    `${root}vm.example.yaml`,
    `${dir}/share/`,
  ]);
  await run("chmod", [
    "755",
    `${dir}/bin/kvm_exporter`,
    `${dir}/bin/kvm_exporter-start`,
    `${dir}/lib/deno`,
  ]);
}

/** Same modes and times whatever the umask and the checkout's times were. */
async function normalize(dir: string, epoch: string): Promise<void> {
  await run("chmod", ["-R", "u+rwX,go+rX,go-w", dir]);
  await run("find", [dir, "-exec", "touch", "-h", "-d", `@${epoch}`, "{}", "+"]);
}

/** Options of {@linkcode tarball}. */
interface TarballOptions {
  /** The directory holding `name`. */
  parent: string;
  /** The directory to archive, as its members are named. */
  name: string;
  /** The .tar.gz to write. */
  output: string;
  /** Every member's time. */
  epoch: string;
}

/** A gzipped tar of `name` under `parent`, sorted, owned by root, with fixed times. */
async function tarball({ parent, name, output, epoch }: TarballOptions): Promise<void> {
  const tar = new Deno.Command("tar", {
    args: [
      "--sort=name",
      "--owner=0",
      "--group=0",
      "--numeric-owner",
      `--mtime=@${epoch}`,
      "-C",
      parent,
      "-cf",
      "-",
      name,
    ],
    stdout: "piped",
  }).spawn();
  const gzip = new Deno.Command("gzip", { args: ["-n", "-6"], stdin: "piped", stdout: "piped" })
    .spawn();
  const file = await Deno.open(output, { write: true, create: true, truncate: true });
  const [tarStatus, , gzipStatus] = await Promise.all([
    tar.status,
    tar.stdout.pipeTo(gzip.stdin),
    gzip.status,
    gzip.stdout.pipeTo(file.writable),
  ]);
  if (!tarStatus.success || !gzipStatus.success) throw new ReleaseError(`tar of ${name} failed`);
}

/** Options of {@linkcode buildDeb}. */
interface DebOptions {
  bundle: string;
  arch: string;
  stamp: BuildStamp;
  epoch: string;
  output: string;
}

/** The Debian package's file tree: the bundle in /usr/lib/kvm_exporter, unit, defaults, /etc. */
async function layOutDebTree(tree: string, bundle: string): Promise<void> {
  const dirs = ["DEBIAN", "usr/bin", "usr/lib/systemd/system", "usr/lib/kvm_exporter"];
  dirs.push("etc/default", "etc/kvm_exporter", "usr/share/doc/kvm-exporter");
  for (const sub of dirs) await Deno.mkdir(`${tree}/${sub}`, { recursive: true });
  await run("cp", ["-a", `${bundle}/bin`, `${bundle}/lib`, `${tree}/usr/lib/kvm_exporter/`]);
  await Deno.symlink("../lib/kvm_exporter/bin/kvm_exporter", `${tree}/usr/bin/kvm_exporter`);
  await run("cp", [`${root}deploy/kvm_exporter.service`, `${tree}/usr/lib/systemd/system/`]);
  await run("cp", [
    `${root}deploy/debian/kvm_exporter.default`,
    `${tree}/etc/default/kvm_exporter`,
  ]);
  await run("cp", [`${root}deploy/debian/web.yml`, `${tree}/etc/kvm_exporter/web.yml`]);
  await Deno.writeTextFile(
    `${tree}/etc/kvm_exporter/vm.yaml`,
    packagedVmYaml(await Deno.readTextFile(`${root}vm.example.yaml`)),
  );
  await Deno.writeTextFile(
    `${tree}/usr/share/doc/kvm-exporter/copyright`,
    "kvm_exporter, with Deno (MIT, https://deno.land) and the npm packages in\n" +
      "/usr/lib/kvm_exporter/lib/app/node_modules under their own licenses.\n",
  );
  for (const script of ["postinst", "prerm", "postrm"]) {
    await run("cp", [`${root}deploy/debian/${script}`, `${tree}/DEBIAN/${script}`]);
  }
  await Deno.writeTextFile(`${tree}/DEBIAN/conffiles`, CONFFILES.join("\n") + "\n");
}

/** The Debian package: its tree, normalized, with its control file, built by dpkg-deb. */
async function buildDeb(tree: string, options: DebOptions): Promise<void> {
  await layOutDebTree(tree, options.bundle);
  await normalize(tree, options.epoch);
  await run("chmod", ["755", ...["postinst", "prerm", "postrm"].map((s) => `${tree}/DEBIAN/${s}`)]);
  const kib = Number((await run("du", ["-sk", "--exclude=DEBIAN", tree])).split("\t")[0]);
  await Deno.writeTextFile(
    `${tree}/DEBIAN/control`,
    debControl({ arch: options.arch, installedKiB: kib, ...options.stamp }),
  );
  const stamp = ["-exec", "touch", "-h", "-d", `@${options.epoch}`, "{}", "+"];
  await run("find", [`${tree}/DEBIAN`, ...stamp]);
  const { code, stderr } = await new Deno.Command("dpkg-deb", {
    args: ["--root-owner-group", "-Zgzip", "-z6", "--build", tree, options.output],
    env: { SOURCE_DATE_EPOCH: options.epoch },
    stdout: "null",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    throw new ReleaseError(`dpkg-deb failed: ${new TextDecoder().decode(stderr).trim()}`);
  }
}

/**
 * The single executable from the staged app, with the permissions of
 * {@linkcode COMPILE_PERMISSIONS}.
 */
async function compileExecutable(
  { app, output, denort }: { app: string; output: string; denort: string },
): Promise<void> {
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    // --no-check: the gate type-checks the code; checking here would want @types/node, which is
    // neither in node_modules ("manual") nor, offline, to be had.
    args: [
      "compile",
      "--quiet",
      "--no-check",
      ...COMPILE_PERMISSIONS,
      RUNTIME_V8_FLAGS,
      "--output",
      output,
      "main.ts",
    ],
    cwd: app,
    env: { DENORT_BIN: denort },
    stdout: "null",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    const why = new TextDecoder().decode(stderr).trim().split("\n").at(-1);
    throw new ReleaseError(`deno compile with DENORT_BIN="${denort}" failed: ${why}`);
  }
}

/** SHA256SUMS of every file in `out`, sorted by name, in sha256sum's format. */
async function writeSums(out: string): Promise<void> {
  const names = [];
  for await (const entry of Deno.readDir(out)) if (entry.isFile) names.push(entry.name);
  names.sort();
  await Deno.writeTextFile(
    `${out}/SHA256SUMS`,
    await run("sha256sum", ["--", ...names], { cwd: out }),
  );
}

/** DENORT_BIN, checked before any work: undefined when unset. */
async function denortBin(): Promise<string | undefined> {
  const denort = Deno.env.get("DENORT_BIN");
  if (denort === undefined || denort === "") return undefined;
  const info = await Deno.stat(denort).catch(() => undefined);
  if (info?.isFile !== true) throw new ReleaseError(`DENORT_BIN="${denort}" is not a file`);
  return denort;
}

/**
 * Empties DIR for a new release: refused unless it is missing, empty or an earlier release (it
 * has SHA256SUMS), so that `deno task release .` cannot delete a checkout.
 */
async function emptyOutput(out: string): Promise<void> {
  const entries = await Array.fromAsync(Deno.readDir(out)).catch(() => []);
  if (entries.length > 0 && !entries.some((entry) => entry.name === "SHA256SUMS")) {
    throw new ReleaseError(`${out} is neither empty nor an earlier release (no SHA256SUMS)`);
  }
  await Deno.remove(out, { recursive: true }).catch(() => {});
}

/** Debian's name of the machine's architecture: the single executable is built for it. */
const HOST_ARCH = Deno.build.arch === "aarch64" ? "arm64" : "amd64";

async function release(out: string): Promise<void> {
  const denort = await denortBin();
  const stamp = await buildStamp();
  const { version } = stamp;
  const epoch = await sourceDateEpoch();
  await emptyOutput(out);
  await Deno.mkdir(out, { recursive: true });
  const work = await Deno.makeTempDir({ prefix: "kvm_exporter_release_" });
  try {
    const app = `${work}/app`;
    await stageApp(app, stamp);
    for (const platform of PLATFORMS) {
      const deno = await fetchRuntime(platform, `${work}/npm-${platform.arch}`);
      if (deno === undefined) continue;
      const name = `kvm_exporter-${version}-linux-${platform.arch}`;
      await stageBundle(`${work}/${name}`, { app, deno, version });
      await normalize(`${work}/${name}`, epoch);
      await tarball({ parent: work, name, output: `${out}/${name}.tar.gz`, epoch });
      await buildDeb(`${work}/deb-${platform.arch}`, {
        bundle: `${work}/${name}`,
        arch: platform.arch,
        stamp,
        epoch,
        output: `${out}/kvm-exporter_${version}_${platform.arch}.deb`,
      });
    }
    if (denort === undefined) {
      console.log(
        "release: no single executable: set DENORT_BIN to denort " + DENO_VERSION + " to build it",
      );
    } else {
      await compileExecutable({
        app,
        output: `${out}/kvm_exporter-${version}-linux-${HOST_ARCH}`,
        denort,
      });
    }
    await writeSums(out);
  } finally {
    await Deno.remove(work, { recursive: true });
  }
  console.log(`release: wrote ${out} (version ${version}, revision ${stamp.revision})`);
}

if (import.meta.main) {
  try {
    await release(Deno.args[0] ?? `${root}dist`);
  } catch (error) {
    if (!(error instanceof ReleaseError)) throw error;
    console.error(`release: ${error.message}`);
    Deno.exit(1);
  }
}
