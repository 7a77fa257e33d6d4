/**
 * Least privilege: every documented way to run the exporter (deno.json's
 * tasks, docs/deployment.md's `deno run`, the compiled binary's baked flags,
 * the Dockerfile, the systemd unit, the Kubernetes manifests) grants exactly
 * what the table {@linkcode DOCUMENTED} (and docs/deployment.md "Documented
 * grants") says.
 *
 * To change a grant, change its row here and in docs/deployment.md.
 *
 * @module
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import yaml from "js-yaml";
import { COMPILE_PERMISSIONS, RUNTIME_V8_FLAGS } from "../../tools/compile.ts";
import { launcherScript } from "../../tools/release.ts";

const root = new URL("../../", import.meta.url).pathname;
const read = (path: string): Promise<string> => Deno.readTextFile(`${root}${path}`);

/** One kind of Deno permission: not granted (null), granted for everything ("all"), or a list. */
type Grant = null | "all" | string[];

/** The Deno permissions of one way to run. */
interface Permissions {
  read: Grant;
  write: Grant;
  net: Grant;
  env: Grant;
  run: Grant;
  ffi: Grant;
  sys: Grant;
}

const NONE: Permissions = {
  read: null,
  write: null,
  net: null,
  env: null,
  run: null,
  ffi: null,
  sys: null,
};

/**
 * The documented grants, one row per way to run. `build: true` marks a build tool, which may run
 * subprocesses; every other row is a run mode, held to the rules of `RUN_MODE_RULES`.
 */
const DOCUMENTED: Record<string, Permissions & { build?: true }> = {
  "deno.json task start": {
    ...NONE,
    read: ["/etc/kvm_exporter", "/etc/vm.yaml", "/run/kvm_exporter"],
    net: ["0.0.0.0:9900", "[::]:9900"],
    env: ["KVM_EXPORTER_*"],
  },
  "deno.json task start-libvirt": {
    ...NONE,
    read: [
      "/etc/kvm_exporter",
      "/etc/vm.yaml",
      "/run/kvm_exporter",
      "/run/libvirt/libvirt-sock-ro",
    ],
    // Deno wants read, write and unix: net permission to connect to a unix socket.
    write: ["/run/libvirt/libvirt-sock-ro"],
    net: ["0.0.0.0:9900", "[::]:9900", "unix:/run/libvirt/libvirt-sock-ro"],
    env: ["KVM_EXPORTER_*"],
  },
  "deno.json task demo": {
    ...NONE,
    read: ["tests/fixtures/sample"],
    net: ["0.0.0.0:9900", "[::]:9900"],
    env: ["KVM_EXPORTER_*"],
  },
  "deno.json task compile": {
    ...NONE,
    build: true,
    read: "all",
    write: ["src/build_info.json", "src/build_info.json.tmp"],
    env: ["DENORT_BIN", "REVISION", "VERSION"],
    run: "all",
  },
  "deno.json task release": {
    ...NONE,
    build: true,
    read: "all",
    write: "all",
    env: ["DENORT_BIN", "REVISION", "SOURCE_DATE_EPOCH", "VERSION"],
    run: "all",
  },
  // The offline bundle's and the .deb's bin/kvm_exporter: what the single executable bakes in.
  "bundle launcher (tools/release.ts)": {
    ...NONE,
    read: "all",
    write: ["/run", "/var/run"],
    net: "all",
    env: ["KVM_EXPORTER_*"],
  },
  // Baked into the binary that the systemd unit, the image and the DaemonSet run.
  "compiled binary (tools/compile.ts)": {
    ...NONE,
    read: "all",
    // Deno wants write permission to connect to a unix socket: the QMP sockets VMMs keep in /run.
    write: ["/run", "/var/run"],
    net: "all",
    env: ["KVM_EXPORTER_*"],
  },
  "docs/deployment.md deno run with --collector.qmp (Proxmox)": {
    ...NONE,
    read: ["/etc/vm.yaml", "/run/kvm_exporter", "/run/qemu-server"],
    write: ["/run/qemu-server"],
    net: [
      "0.0.0.0:9900",
      "[::]:9900",
      "unix:/run/qemu-server/101.qmp",
      "unix:/run/qemu-server/102.qmp",
    ],
    env: ["KVM_EXPORTER_*"],
  },
};

/** Developer tasks that run tests or benchmarks (and so may use -A), not the exporter. */
const TEST_TASKS = ["bench", "golden", "test"];

/** What no run mode may have, whatever its row says. */
function checkRunMode(where: string, p: Permissions): void {
  for (const kind of ["run", "ffi", "sys"] as const) {
    strictEqual(p[kind], null, `${where}: ${kind}`);
  }
  ok(Array.isArray(p.env) && p.env.every((e) => e.startsWith("KVM_EXPORTER_")), `${where} env`);
  ok(p.read !== null, `${where} reads something`);
  ok(Array.isArray(p.write) || p.write === null, `${where}: write is never everything`);
}

/**
 * Reads Deno permission flags out of a command's arguments.
 *
 * @param args Arguments (quotes already removed); only permission flags are looked at.
 * @returns The permissions, or "everything" for -A / --allow-all.
 */
function parsePermissions(args: readonly string[]): Permissions | "everything" {
  const result: Permissions = { ...NONE };
  const short: Record<string, keyof Permissions> = {
    R: "read",
    W: "write",
    N: "net",
    E: "env",
    S: "sys",
  };
  for (const arg of args) {
    if (arg === "-A" || arg === "--allow-all") return "everything";
    const long = /^--allow-(read|write|net|env|run|ffi|sys)(?:=(.*))?$/.exec(arg);
    const shortMatch = /^-([RWNES])(?:=(.*))?$/.exec(arg);
    const kind = (long?.[1] ?? (shortMatch ? short[shortMatch[1]!] : undefined)) as
      | keyof Permissions
      | undefined;
    if (kind === undefined) continue;
    const value = long?.[2] ?? shortMatch?.[2];
    const before = result[kind];
    if (value === undefined || before === "all") {
      result[kind] = "all";
    } else {
      result[kind] = [...new Set([...(before ?? []), ...value.split(",")])].sort();
    }
  }
  return result;
}

const PARSE_CASES: [string[], Permissions | "everything"][] = [
  [["-A"], "everything"],
  [["--allow-all", "--allow-read=/x"], "everything"],
  [["--allow-read=/b,/a", "--allow-read=/c"], { ...NONE, read: ["/a", "/b", "/c"] }],
  [["--allow-net", "--allow-net=127.0.0.1:1"], { ...NONE, net: "all" }],
  [["-R", "-E=KVM_EXPORTER_*"], { ...NONE, read: "all", env: ["KVM_EXPORTER_*"] }],
  [["--allow-run", "--allow-ffi", "--allow-sys=hostname"], {
    ...NONE,
    run: "all",
    ffi: "all",
    sys: ["hostname"],
  }],
  [["main.ts", "--collector.qmp", "--web.listen-address=:1"], NONE],
];

for (const [args, expected] of PARSE_CASES) {
  Deno.test(`parsePermissions() reads ${args.join(" ")}`, () => {
    deepStrictEqual(parsePermissions(args), expected);
  });
}

/** Splits a command line as a POSIX shell would for our files: quotes, backslash-newlines. */
function shellWords(command: string): string[] {
  const words: string[] = [];
  for (const match of command.replace(/\\\n/g, " ").matchAll(/'([^']*)'|"([^"]*)"|(\S+)/g)) {
    words.push(match[1] ?? match[2] ?? match[3]!);
  }
  return words;
}

/** The Deno permission flags of a `deno run|test|compile ... SCRIPT` command: those before SCRIPT. */
function denoFlags(command: string): string[] {
  const words = shellWords(command);
  const start = words.indexOf("deno");
  ok(start >= 0, `not a deno command: ${command}`);
  const script = words.findIndex((w, i) => i > start && /\.ts$/.test(w));
  return words.slice(start + 2, script === -1 ? undefined : script);
}

function withoutBuild(row: Permissions & { build?: true }): Permissions {
  const { build: _, ...permissions } = row;
  return permissions;
}

Deno.test("every deno.json task grants exactly its documented permissions", async () => {
  const tasks = (JSON.parse(await read("deno.json")) as {
    tasks: Record<string, { command: string }>;
  }).tasks;
  for (const [name, task] of Object.entries(tasks)) {
    if (TEST_TASKS.includes(name)) continue;
    const row = DOCUMENTED[`deno.json task ${name}`];
    ok(row !== undefined, `task ${name} has no row in DOCUMENTED`);
    // A task may chain commands (fmt && lint && ...): every deno command in it counts.
    for (const command of task.command.split("&&").filter((c) => /\bdeno\s+run\b/.test(c))) {
      deepStrictEqual(parsePermissions(denoFlags(command)), withoutBuild(row), `task ${name}`);
    }
  }
});

Deno.test("the compiled binary's baked flags are its documented permissions", () => {
  deepStrictEqual(
    parsePermissions(COMPILE_PERMISSIONS),
    withoutBuild(DOCUMENTED["compiled binary (tools/compile.ts)"]!),
  );
});

Deno.test("the bundle's launcher grants its documented permissions, the compiled binary's", () => {
  const script = launcherScript("1.2.3");
  const flags = denoFlags(
    script.slice(script.indexOf('exec "$lib/deno" run')).replace("$lib/", ""),
  );
  deepStrictEqual(
    parsePermissions(flags),
    withoutBuild(DOCUMENTED["bundle launcher (tools/release.ts)"]!),
  );
  deepStrictEqual(
    withoutBuild(DOCUMENTED["bundle launcher (tools/release.ts)"]!),
    withoutBuild(DOCUMENTED["compiled binary (tools/compile.ts)"]!),
  );
});

Deno.test("docs/deployment.md's deno run example grants its documented permissions", async () => {
  const readme = await read("docs/deployment.md");
  const block = /```shell\n(deno run (?:--v8-flags=\S+ )?--allow-read[^`]*?)```/.exec(readme)?.[1];
  ok(block !== undefined, "docs/deployment.md has a deno run example");
  deepStrictEqual(
    parsePermissions(denoFlags(block)),
    withoutBuild(DOCUMENTED["docs/deployment.md deno run with --collector.qmp (Proxmox)"]!),
  );
});

Deno.test("docs/deployment.md's deno run example with --collector.libvirt grants its documented permissions", async () => {
  const readme = await read("docs/deployment.md");
  const block =
    /```shell\n(deno run (?:--v8-flags=\S+ )?--allow-read[^`]*?--collector\.libvirt[^`]*?)```/.exec(
      readme,
    )
      ?.[1];
  ok(block !== undefined, "docs/deployment.md has a deno run example with --collector.libvirt");
  deepStrictEqual(
    parsePermissions(denoFlags(block)),
    withoutBuild(DOCUMENTED["deno.json task start-libvirt"]!),
  );
});

Deno.test("every run mode in the table follows the rules: no run, ffi, sys; only KVM_EXPORTER_* env", () => {
  for (const [where, row] of Object.entries(DOCUMENTED)) {
    if (!row.build) checkRunMode(where, row);
  }
});

Deno.test("docs/deployment.md states the start task's permissions as deno.json has them", async () => {
  const readme = await read("docs/deployment.md");
  const tasks = JSON.parse(await read("deno.json")).tasks as Record<string, { command: string }>;
  for (const flag of denoFlags(tasks.start!.command)) ok(readme.includes(flag), flag);
});

Deno.test("the Dockerfile runs the bundle with the launcher's permissions, as a non-root user", async () => {
  const dockerfile = await read("Dockerfile");
  const finalStage = dockerfile.slice(dockerfile.lastIndexOf("\nFROM "));
  const user = /^USER (\d+):(\d+)$/m.exec(finalStage);
  ok(user !== null, "a numeric USER in the final stage");
  ok(Number(user[1]) !== 0 && Number(user[2]) !== 0, user[0]);
  const entrypoint = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(finalStage)![1]!) as string[];
  deepStrictEqual(
    parsePermissions(denoFlags(["deno", ...entrypoint.slice(1)].join(" "))),
    withoutBuild(DOCUMENTED["bundle launcher (tools/release.ts)"]!),
  );
  ok(!/chmod\s+[^\n]*[ug]\+s|setcap/.test(dockerfile), "no setuid bit, no file capabilities");
});

Deno.test("the README's container example binds one address, adds nothing, mounts read-only", async () => {
  const readme = await read("README.md");
  const run = /```shell\n(docker run [^`]*?)```/.exec(readme)?.[1];
  ok(run !== undefined, "README has a docker run example");
  const words = shellWords(run);
  const ports = words.flatMap((w, i) => (w === "-p" ? [words[i + 1]!] : []));
  ok(
    ports.length > 0 && ports.every((p) => /^(\d+\.\d+\.\d+\.\d+|\[[0-9a-f:]+\]):\d+:\d+$/.test(p)),
    `-p ${ports}`,
  );
  ok(!ports.some((p) => p.startsWith("0.0.0.0:")), "not every interface");
  for (const word of ["--privileged", "--cap-add", "--pid=host", "--network=host", "--user"]) {
    ok(!words.some((w) => w.startsWith(word)), word);
  }
  ok(words.includes("--cap-drop=ALL") && words.includes("--read-only"), "drops what it can");
  const volumes = words.flatMap((w, i) => (w === "-v" ? [words[i + 1]!] : []));
  ok(volumes.length >= 3 && volumes.every((v) => v.endsWith(":ro")), `-v ${volumes}`);
});

Deno.test("the systemd unit has no capability, no new privileges, read-only bind mounts only", async () => {
  const unit = await read("deploy/kvm_exporter.service");
  const values = (key: string): string[] =>
    [...unit.matchAll(new RegExp(`^${key}=(.*)$`, "gm"))].map((m) => m[1]!);
  // Root for the QMP sockets (docs/deployment.md "Container user"), with nothing root can do beyond files.
  deepStrictEqual(values("User"), ["root"]);
  deepStrictEqual(values("CapabilityBoundingSet"), [""]);
  deepStrictEqual(values("AmbientCapabilities"), [""]);
  deepStrictEqual(values("NoNewPrivileges"), ["yes"]);
  deepStrictEqual(values("ProtectSystem"), ["strict"]);
  deepStrictEqual(values("BindPaths"), []);
  deepStrictEqual(values("ReadWritePaths"), []);
  ok(values("BindReadOnlyPaths").length === 3);
  // It runs the package's launcher (or the compiled binary), whose permissions are rows above.
  ok(/^ExecStart=\/usr\/bin\/kvm_exporter /m.test(unit));
});

/** hostPath volumes the DaemonSet may mount (all read-only), by host path. */
const K8S_HOST_PATHS = ["/proc", "/sys/kernel/debug/kvm", "/sys/kernel/security"];

Deno.test("the Kubernetes manifests grant no privilege: non-root, drop ALL, read-only hostPaths", async () => {
  const docs = yaml.loadAll(await read("deploy/kubernetes/daemonset.yaml")) as {
    kind: string;
    spec: { template: { spec: Record<string, unknown> } };
  }[];
  const pod = docs.find((d) => d.kind === "DaemonSet")!.spec.template.spec as {
    hostPID?: boolean;
    hostNetwork?: boolean;
    hostIPC?: boolean;
    automountServiceAccountToken?: boolean;
    securityContext: { runAsNonRoot?: boolean; runAsUser?: number; seccompProfile?: unknown };
    containers: {
      securityContext: Record<string, unknown> & { capabilities?: Record<string, unknown> };
      volumeMounts: { name: string; readOnly?: boolean }[];
    }[];
    initContainers?: unknown[];
    volumes: { name: string; hostPath?: { path: string } }[];
  };
  strictEqual(pod.hostPID ?? false, false);
  strictEqual(pod.hostNetwork ?? false, false);
  strictEqual(pod.hostIPC ?? false, false);
  strictEqual(pod.automountServiceAccountToken, false);
  strictEqual(pod.initContainers, undefined);
  strictEqual(pod.securityContext.runAsNonRoot, true);
  ok((pod.securityContext.runAsUser ?? 0) > 0);
  deepStrictEqual(pod.securityContext.seccompProfile, { type: "RuntimeDefault" });
  for (const container of pod.containers) {
    const sc = container.securityContext;
    strictEqual(sc.privileged, false);
    strictEqual(sc.allowPrivilegeEscalation, false);
    strictEqual(sc.readOnlyRootFilesystem, true);
    strictEqual(sc.runAsNonRoot, true);
    deepStrictEqual(sc.capabilities, { drop: ["ALL"] });
    for (const mount of container.volumeMounts) strictEqual(mount.readOnly, true, mount.name);
  }
  const hostPaths = pod.volumes.flatMap((v) => v.hostPath ? [v.hostPath.path] : []).sort();
  deepStrictEqual(hostPaths, K8S_HOST_PATHS);
  deepStrictEqual(pod.volumes.filter((v) => !v.hostPath), [], "only the documented hostPaths");
});

Deno.test("every run mode passes the V8 heap limits the executable bakes in", async () => {
  const tasks = JSON.parse(await read("deno.json")).tasks as Record<string, { command: string }>;
  const deployment = await read("docs/deployment.md");
  // A block may set environment variables first (`VAR=value deno run ...`).
  const docRuns = [...deployment.matchAll(/```shell\n((?:[A-Z_]+=\S+ )*deno run [^`]*?)```/g)]
    .map((m) => m[1]!);
  ok(docRuns.length >= 3, "docs/deployment.md's deno run examples");
  const dockerfile = await read("Dockerfile");
  const entrypoint = /^ENTRYPOINT (\[.*\])$/m.exec(
    dockerfile.slice(dockerfile.lastIndexOf("\nFROM ")),
  );
  const runs: Record<string, string> = {
    ...Object.fromEntries(
      Object.entries(tasks).filter(([, t]) => /\bdeno\s+run\b.*\bmain\.ts\b/.test(t.command))
        .map(([name, t]) => [`task ${name}`, t.command]),
    ),
    ...Object.fromEntries(docRuns.map((run, i) => [`docs/deployment.md run ${i + 1}`, run])),
    "bundle launcher": launcherScript("1.2.3").replace('"$lib/deno"', "deno").replaceAll("'", ""),
    Dockerfile: ["deno", ...(JSON.parse(entrypoint![1]!) as string[]).slice(1)].join(" "),
  };
  ok(Object.keys(runs).length >= 6, Object.keys(runs).join());
  for (const [where, command] of Object.entries(runs)) {
    ok(denoFlags(command.replace(/\\\n\s*/g, " ")).includes(RUNTIME_V8_FLAGS), where);
  }
});
