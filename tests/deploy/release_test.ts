/**
 * `deno task release` as a user meets it: the offline bundle unpacked into an empty dir serves
 * with an empty DENO_DIR and no registry; the Debian package installs, runs with its unit's own
 * flags and bind mounts against real VMs (QMP and libvirt), and purges without a trace.
 *
 * @module
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { buildStamp, COMPILE_PERMISSIONS, RUNTIME_V8_FLAGS } from "../../tools/compile.ts";
import { LAUNCHER_RUN_FLAGS, launcherScript } from "../../tools/release.ts";
import {
  type ExporterProcess,
  fetchText,
  freeLoopbackPort,
  REPO_ROOT,
  SAMPLE_ARGS,
  startExporter,
  waitFor,
} from "../support/exporter_process.ts";
import { createDomain, ensureLibvirtDaemons, libvirtUnavailable } from "../support/libvirt.ts";
import { programPath } from "../support/program_path.ts";
import { kvmUnavailable, qemuUnavailable, type QemuVm, startQemu } from "../support/qemu.ts";
import { seriesValue } from "../support/sample_exporter.ts";

/** The version the release names its files by: from git, as `deno task release` takes it. */
const { version: VERSION } = await buildStamp();

const DEB_PATHS = [
  "/usr/bin/kvm_exporter",
  "/usr/lib/kvm_exporter",
  "/usr/lib/systemd/system/kvm_exporter.service",
  "/usr/share/doc/kvm-exporter",
  "/etc/kvm_exporter",
  "/etc/default/kvm_exporter",
];

async function output(
  program: string,
  args: string[],
): Promise<Deno.CommandOutput> {
  return await new Deno.Command(program, {
    args,
    stdout: "piped",
    stderr: "piped",
  }).output();
}

async function text(program: string, args: string[]): Promise<string> {
  const result = await output(program, args);
  const all = new TextDecoder().decode(result.stdout) +
    new TextDecoder().decode(result.stderr);
  strictEqual(result.code, 0, `${program} ${args.join(" ")}: ${all}`);
  return all;
}

async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

async function gitRevision(): Promise<string> {
  const git = await output("git", [
    "-C",
    REPO_ROOT,
    "rev-parse",
    "--short=12",
    "HEAD",
  ])
    .catch(() => undefined);
  return git?.code === 0 ? new TextDecoder().decode(git.stdout).trim() : "unknown";
}

/** Runs `deno task release DIR` (with `env`) and returns its exit code and output. */
async function release(
  dir: string,
  env: Record<string, string> = {},
): Promise<{ code: number; out: string }> {
  const result = await new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", "release", dir],
    cwd: REPO_ROOT,
    env: { NO_COLOR: "1", DENORT_BIN: "", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array): string => new TextDecoder().decode(b);
  return {
    code: result.code,
    out: decode(result.stdout) + decode(result.stderr),
  };
}

/** One build for the tests below, made on first use. */
let built: Promise<string> | undefined;
function dist(): Promise<string> {
  built ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_dist_" });
    const { code, out } = await release(dir);
    strictEqual(code, 0, out);
    ok(
      out.includes(
        "release: no single executable: set DENORT_BIN to denort 2.9.6 to build it",
      ),
      out,
    );
    return dir;
  })();
  return built;
}

async function removeDist(): Promise<void> {
  if (built !== undefined) await Deno.remove(await built, { recursive: true });
  built = undefined;
}

Deno.test("deno task release refuses a DENORT_BIN that is not a file, in one line, first", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { code, out } = await release(`${dir}/out`, {
      DENORT_BIN: "/nonexistent/denort",
    });
    strictEqual(code, 1);
    strictEqual(
      out.trim(),
      'release: DENORT_BIN="/nonexistent/denort" is not a file',
    );
    ok(!(await exists(`${dir}/out`)), "nothing written");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task release refuses a DIR that is neither empty nor an earlier release, deleting nothing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/keep.txt`, "an operator's file\n");
    const { code, out } = await release(dir);
    strictEqual(code, 1);
    strictEqual(
      out.trim(),
      `release: ${dir} is neither empty nor an earlier release (no SHA256SUMS)`,
    );
    ok(await exists(`${dir}/keep.txt`), "nothing deleted");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("launcherScript() runs deno offline with exactly the compiled binary's permissions and V8 flags", () => {
  const script = launcherScript("1.2.3");
  const flags = [...script.matchAll(/^ {2}'([^']+)' \\$/gm)].map((m) => m[1]);
  deepStrictEqual(flags, [...LAUNCHER_RUN_FLAGS, RUNTIME_V8_FLAGS, ...COMPILE_PERMISSIONS]);
  ok(
    /^exec "\$lib\/deno" run \\$/m.test(script),
    "exec, so the pid is the exporter's",
  );
  ok(
    script.trimEnd().endsWith('"$lib/app/main.ts" "$@"'),
    "every flag passes through",
  );
});

Deno.test("deno task release writes the bundle, the .deb and SHA256SUMS", async () => {
  const dir = await dist();
  const names = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  for (
    const name of [
      "SHA256SUMS",
      `kvm_exporter-${VERSION}-linux-amd64.tar.gz`,
      `kvm-exporter_${VERSION}_amd64.deb`,
    ]
  ) ok(names.includes(name), `${name} in ${names}`);
  const sums = await new Deno.Command("sha256sum", {
    args: ["--check", "--strict", "SHA256SUMS"],
    cwd: dir,
    stdout: "piped",
  }).output();
  strictEqual(sums.code, 0, new TextDecoder().decode(sums.stdout));
  const listed = (await Deno.readTextFile(`${dir}/SHA256SUMS`)).trim().split(
    "\n",
  )
    .map((l) => l.split("  ")[1]);
  deepStrictEqual(listed, names.filter((n) => n !== "SHA256SUMS").sort());
  // Only the runtime npm packages travel: no test tooling.
  const listing = await text("tar", [
    "-tzf",
    `${dir}/kvm_exporter-${VERSION}-linux-amd64.tar.gz`,
  ]);
  const packages = new Set(
    [...listing.matchAll(/lib\/app\/node_modules\/\.deno\/([^/\n]+@[^/\n]+)\//g)].map((
      m,
    ) => m[1]),
  );
  deepStrictEqual(
    [...packages].sort(),
    [
      "@types+js-yaml@4.0.9",
      "argparse@2.0.1",
      "bcryptjs@3.0.3",
      "hono@4.13.19",
      "js-yaml@4.1.1",
    ],
  );
});

Deno.test("deno task release builds the same bytes again, and with DENORT_BIN the executable", async () => {
  const dir = await dist();
  const other = await Deno.makeTempDir({ prefix: "kvm_exporter_dist_again_" });
  try {
    // /bin/true stands in for denort, which cannot be had here: the executable does not run, but
    // holds what deno compile embeds (permissions, sources), built offline from the same inputs.
    const { code, out } = await release(`${other}/dist`, {
      TMPDIR: other,
      DENORT_BIN: "/bin/true",
    });
    strictEqual(code, 0, out);
    const executable = `kvm_exporter-${VERSION}-linux-amd64`;
    const again = (await Deno.readTextFile(`${other}/dist/SHA256SUMS`)).split("\n")
      .filter((line) => !line.endsWith(`  ${executable}`)).join("\n");
    strictEqual(again, await Deno.readTextFile(`${dir}/SHA256SUMS`));
    const binary = new TextDecoder("latin1").decode(
      await Deno.readFile(`${other}/dist/${executable}`),
    );
    const permissions = JSON.parse(/"permissions":(\{[^}]*\})/.exec(binary)![1]!);
    deepStrictEqual(
      [
        permissions.allow_read,
        permissions.allow_write,
        permissions.allow_net,
        permissions.allow_env,
      ],
      [[], ["/run", "/var/run"], [], ["KVM_EXPORTER_*"]],
    );
    strictEqual(permissions.allow_run, null);
    ok(binary.includes(`"revision":"${await gitRevision()}"`), "revision stamped");
  } finally {
    await Deno.remove(other, { recursive: true });
  }
});

Deno.test("the bundle serves from an empty dir, with an empty DENO_DIR and no registry", async () => {
  const dir = await dist();
  const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_bundle_" });
  try {
    await Deno.mkdir(`${tmp}/deno_dir`);
    await Deno.mkdir(`${tmp}/unpacked`);
    await text("tar", [
      "-xzf",
      `${dir}/kvm_exporter-${VERSION}-linux-amd64.tar.gz`,
      "-C",
      `${tmp}/unpacked`,
    ]);
    const launcher = `${tmp}/unpacked/kvm_exporter-${VERSION}-linux-amd64/bin/kvm_exporter`;
    // A closed loopback port: any registry request would fail at once.
    const registry = `http://127.0.0.1:${freeLoopbackPort()}/`;
    const env = {
      DENO_DIR: `${tmp}/deno_dir`,
      NPM_CONFIG_REGISTRY: registry,
      HOME: `${tmp}/home`,
      PATH: "/usr/bin:/bin",
    };
    // Every file's path, time and size: what running must not change.
    const snapshot = (): Promise<string> =>
      text("find", [`${tmp}/unpacked`, "-printf", "%p %T@ %s\n"]);
    const before = await snapshot();
    const version = await new Deno.Command(launcher, {
      args: ["--version"],
      env,
      clearEnv: true,
      stdout: "piped",
    }).output();
    strictEqual(version.code, 0);
    const said = new TextDecoder().decode(version.stdout);
    ok(said.includes(`revision ${await gitRevision()}`), said);
    const sample = SAMPLE_ARGS.map((a) => a.replace(/=tests\//, `=${REPO_ROOT}/tests/`));
    await using exporter = await startExporter(
      [...sample, "--web.listen-address=127.0.0.1:0"],
      { program: [launcher], env },
    );
    const metrics = await fetchText(`${exporter.baseUrl}/metrics`);
    strictEqual(metrics.status, 200);
    strictEqual(
      seriesValue(metrics.body, 'kvm_scrape_collector_success{collector="kvm_stat"}'),
      "1",
    );
    await exporter.stop();
    // Nothing was downloaded or cached, and the bundle is as unpacked.
    deepStrictEqual(await Array.fromAsync(Deno.readDir(`${tmp}/deno_dir`)), []);
    strictEqual(await snapshot(), before);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

/** The final stage of the Dockerfile: its ENTRYPOINT, ENV, USER and what it copies to /etc. */
async function imageSpec(): Promise<
  { entrypoint: string[]; env: Record<string, string>; uid: number; etc: string[] }
> {
  const dockerfile = await Deno.readTextFile(`${REPO_ROOT}/Dockerfile`);
  const stage = dockerfile.slice(dockerfile.lastIndexOf("\nFROM "));
  const entrypoint = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(stage)![1]!) as string[];
  const env = Object.fromEntries(
    /^ENV (.*)$/m.exec(stage)![1]!.split(/\s+/).map((kv) => kv.split("=", 2) as [string, string]),
  );
  const uid = Number(/^USER (\d+):\d+$/m.exec(stage)![1]);
  const etc = /^COPY (deploy\/container\/\S+(?: deploy\/container\/\S+)*) \/etc\/$/m.exec(
    stage,
  )![1]!
    .split(" ");
  return { entrypoint, env, uid, etc };
}

Deno.test("the image's root file system, laid out as files, serves as its non-root user", async () => {
  const dir = await dist();
  const spec = await imageSpec();
  const rootfs = await Deno.makeTempDir({ prefix: "kvm_exporter_rootfs_" });
  try {
    await Deno.chmod(rootfs, 0o755);
    // The Dockerfile's steps: the bundle unpacked at /opt/kvm_exporter, passwd and group in /etc.
    await Deno.mkdir(`${rootfs}/opt/kvm_exporter`, { recursive: true });
    await text("tar", [
      "-xzf",
      `${dir}/kvm_exporter-${VERSION}-linux-amd64.tar.gz`,
      "-C",
      `${rootfs}/opt/kvm_exporter`,
      "--strip-components=1",
    ]);
    await Deno.mkdir(`${rootfs}/etc`);
    for (const file of spec.etc) {
      await Deno.copyFile(`${REPO_ROOT}/${file}`, `${rootfs}/etc/${file.split("/").at(-1)}`);
    }
    // The user has a record (name and group), as libvirt wants of a client's uid.
    const passwd = await Deno.readTextFile(`${rootfs}/etc/passwd`);
    ok(new RegExp(`^[a-z_]+:x:${spec.uid}:${spec.uid}:`, "m").test(passwd), passwd);
    ok(
      new RegExp(`^[a-z_]+:x:${spec.uid}:`, "m").test(
        await Deno.readTextFile(`${rootfs}/etc/group`),
      ),
    );
    // The entrypoint is the launcher's command, and the files it names are in the image.
    const rooted = spec.entrypoint.map((w) => w.startsWith("/opt/") ? `${rootfs}${w}` : w);
    for (const path of rooted.filter((w) => w.startsWith(rootfs))) ok(await exists(path), path);
    strictEqual(spec.env.DENO_DIR, "/dev/null/kvm_exporter");
    // A copy inside the image's tree: the checkout may sit in a dir the image's user can't enter.
    await Deno.mkdir(`${rootfs}/tests/fixtures`, { recursive: true });
    await text("cp", ["-r", `${REPO_ROOT}/tests/fixtures/sample`, `${rootfs}/tests/fixtures/`]);
    const sample = SAMPLE_ARGS.map((a) => a.replace(/=tests\//, `=${rootfs}/tests/`));
    const asUser = Deno.uid() === 0 && programPath("setpriv") !== undefined
      ? ["setpriv", `--reuid=${spec.uid}`, `--regid=${spec.uid}`, "--clear-groups"]
      : [];
    if (asUser.length === 0) {
      console.log("release_test: image run as the caller (not root, or no setpriv)");
    }
    await using exporter = await startExporter([...sample, "--web.listen-address=127.0.0.1:0"], {
      program: [...asUser, ...rooted],
      env: { ...spec.env, PATH: "/usr/bin:/bin" },
    });
    const metrics = await fetchText(`${exporter.baseUrl}/metrics`);
    strictEqual(
      seriesValue(metrics.body, 'kvm_scrape_collector_success{collector="kvm_stat"}'),
      "1",
    );
  } finally {
    await Deno.remove(rootfs, { recursive: true });
  }
});

/** Why the .deb cannot be installed here, or undefined. */
function debUnavailable(): string | undefined {
  if (Deno.uid() !== 0) return "installing a .deb needs root";
  for (const tool of ["dpkg", "dpkg-deb", "unshare", "mount"]) {
    if (programPath(tool) === undefined) return `${tool} is not installed`;
  }
  return qemuUnavailable();
}

/** The installed unit's ExecStart words and its BindReadOnlyPaths as [source, target, optional]. */
function parseUnit(
  unit: string,
): { execStart: string[]; binds: [string, string, boolean][] } {
  const lines = unit.replaceAll(/\\\n\s*/g, " ").split("\n");
  const values = (key: string): string[] =>
    lines.filter((l) => l.startsWith(`${key}=`)).map((l) => l.slice(key.length + 1).trim());
  const execStart = values("ExecStart")[0]!.split(/\s+/);
  const binds = values("BindReadOnlyPaths").map(
    (v): [string, string, boolean] => {
      const optional = v.startsWith("-");
      const [source, target] = (optional ? v.slice(1) : v).split(":");
      return [source!, target!, optional];
    },
  );
  return { execStart, binds };
}

function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * Runs the installed unit's ExecStart as systemd would, without systemd: in a mount namespace of
 * its own, with the unit's read-only bind mounts, ARGS from /etc/default/kvm_exporter, and
 * `extra` flags after them. The namespace (and its mounts) ends with the process.
 */
async function startAsUnit(
  options: { kvmDir: string; extra: string[] },
): Promise<ExporterProcess> {
  const { execStart, binds } = parseUnit(
    await Deno.readTextFile("/usr/lib/systemd/system/kvm_exporter.service"),
  );
  const mounts = binds.map(([source, target, optional]) => {
    const from = source === "/sys/kernel/debug/kvm" ? options.kvmDir : source;
    const bind = `mkdir -p ${shellQuote(target)} && mount --bind -o ro ${shellQuote(from)} ${
      shellQuote(target)
    }`;
    return optional ? `if [ -e ${shellQuote(from)} ]; then ${bind}; fi` : bind;
  });
  const exec = execStart.map((w) => (w === "$ARGS" ? "$ARGS" : shellQuote(w)))
    .join(" ");
  const script = [
    "set -e",
    ...mounts,
    "ARGS=''",
    ". /etc/default/kvm_exporter",
    `exec ${exec} ${options.extra.map(shellQuote).join(" ")}`,
  ].join("\n");
  // unshare and sh exec: the pid stopped at the end is the exporter's.
  return await startExporter([], {
    program: [
      "unshare",
      "--mount",
      "--propagation",
      "private",
      "sh",
      "-c",
      script,
    ],
    startTimeoutMs: 30_000,
  });
}

/** The unit's mount points under /run/kvm_exporter, deepest first, each only if empty. */
async function removeMountPoints(): Promise<void> {
  const base = "/run/kvm_exporter";
  for (
    const sub of [
      "/sys/kernel/security",
      "/sys/kernel",
      "/sys",
      "/kvm",
      "/proc",
      "",
    ]
  ) {
    await Deno.remove(`${base}${sub}`).catch(() => {});
  }
}

function qmpErrors(metrics: string, domain: string): string {
  return ["timeout", "refused", "protocol", "other"].map((reason) =>
    seriesValue(
      metrics,
      `kvm_exporter_qmp_errors{domain="${domain}",reason="${reason}"}`,
    )
  ).join(",");
}

const debSkip = debUnavailable();
if (debSkip !== undefined) {
  console.log(`release_test: .deb install test skipped: ${debSkip}`);
}

Deno.test({
  name: "the .deb installs, runs its unit's ExecStart against real VMs, and purges clean",
  ignore: debSkip !== undefined,
  async fn() {
    const dir = await dist();
    const status = await output("dpkg", ["-s", "kvm-exporter"]);
    if (status.code === 0) {
      throw new Error(
        "kvm-exporter is already installed on this machine: not touching it",
      );
    }
    const accel = kvmUnavailable() === undefined ? "kvm" : "tcg";
    const libvirtSkip = libvirtUnavailable();
    if (libvirtSkip !== undefined) {
      console.log(`release_test: libvirt part skipped: ${libvirtSkip}`);
    }
    // QMP sockets where VMMs keep them: under /run, which the launcher may connect to.
    const runDir = await Deno.makeTempDir({
      dir: "/run",
      prefix: "kvm_exporter_deb_test_",
    });
    const tmp = await Deno.makeTempDir({ prefix: "kvm_exporter_deb_test_" });
    const madeRunDir = !(await exists("/run/kvm_exporter"));
    const vms: QemuVm[] = [];
    let exporter: ExporterProcess | undefined;
    let daemons: Awaited<ReturnType<typeof ensureLibvirtDaemons>> | undefined;
    let domain: Awaited<ReturnType<typeof createDomain>> | undefined;
    try {
      await text("dpkg", ["-i", `${dir}/kvm-exporter_${VERSION}_amd64.deb`]);
      for (const path of DEB_PATHS) ok(await exists(path), `${path} installed`);
      const version = await text("/usr/bin/kvm_exporter", ["--version"]);
      ok(version.includes(`revision ${await gitRevision()}`), version);

      let kvmDir = "/sys/kernel/debug/kvm";
      if (accel === "tcg") {
        kvmDir = `${tmp}/kvm`;
        await Deno.mkdir(kvmDir);
      }
      vms.push(
        await startQemu({
          name: "deb-early",
          smp: 1,
          accel,
          qmpSocket: `${runDir}/early.qmp`,
        }),
      );
      const extra = [
        "--web.listen-address=127.0.0.1:0",
        "--collector.qmp",
        "--collector.qmp.timeout=2s",
      ];
      const domainName = "kvm-exporter-deb-test";
      if (libvirtSkip === undefined) {
        daemons = await ensureLibvirtDaemons();
        domain = await createDomain({
          name: domainName,
          uuid: "0c5e2a1b-7d3f-4e6a-8b9c-1a2b3c4d5e6f",
          vcpus: 1,
          type: accel === "kvm" ? "kvm" : "qemu",
          metadata: "",
        });
        extra.push("--collector.libvirt", "--collector.libvirt.timeout=5s");
      }
      exporter = await startAsUnit({ kvmDir, extra });
      const scrape = async (): Promise<string> => {
        const response = await fetchText(`${exporter!.baseUrl}/metrics`);
        strictEqual(response.status, 200);
        return response.body;
      };
      const first = await scrape();
      strictEqual(
        seriesValue(first, 'kvm_scrape_collector_success{collector="qmp"}'),
        "1",
      );
      strictEqual(
        qmpErrors(first, "deb-early"),
        "0,0,0,0",
        "the early VM over QMP",
      );
      if (domain !== undefined) {
        strictEqual(
          seriesValue(
            first,
            'kvm_scrape_collector_success{collector="libvirt"}',
          ),
          "1",
        );
        ok(
          first.includes(`kvm_vm_info{domain="${domainName}"`),
          "the libvirt domain",
        );
      }
      // A VM started after the exporter: its socket is new, and needs no restart.
      vms.push(
        await startQemu({
          name: "deb-late",
          smp: 2,
          accel,
          qmpSocket: `${runDir}/late.qmp`,
        }),
      );
      await waitFor(
        async () => qmpErrors(await scrape(), "deb-late") === "0,0,0,0",
        {
          timeoutMs: 20_000,
          what: "the late VM scraped over QMP with no error",
        },
      );
      if (accel === "kvm") {
        const late = await scrape();
        ok(
          seriesValue(
            late,
            'kvm_stat_vcpu_exits_count{domain="deb-late",vcpu="1"}',
          ),
          "vCPU 1",
        );
      }
      await exporter.stop();
    } finally {
      await exporter?.[Symbol.asyncDispose]();
      for (const vm of vms) await vm.stop();
      await domain?.destroy();
      await daemons?.stop();
      const purge = await output("dpkg", ["--purge", "kvm-exporter"]);
      await Deno.remove(runDir, { recursive: true });
      await Deno.remove(tmp, { recursive: true });
      if (madeRunDir) await removeMountPoints();
      await removeDist();
      const said = new TextDecoder().decode(purge.stdout) +
        new TextDecoder().decode(purge.stderr);
      strictEqual(purge.code, 0, said);
      ok(!/warning|not empty/i.test(said), said);
    }
    for (const path of DEB_PATHS) {
      ok(!(await exists(path)), `${path} left behind`);
    }
    strictEqual(
      (await output("dpkg", ["-s", "kvm-exporter"])).code,
      1,
      "dpkg forgot it",
    );
  },
});

Deno.test({
  name: "release_test cleans up its build",
  async fn() {
    await removeDist();
  },
});
