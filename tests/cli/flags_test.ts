import assert from "node:assert/strict";
import { envVarName, FlagError, normaliseDir } from "../../src/cli/flag.ts";
import { helpText, type Options, parseFlags, programFlags } from "../../src/cli/flags.ts";
import { BAD_FLAGS } from "./bad_flags.ts";

const NO_ENV = (): undefined => undefined;

function envOf(vars: Record<string, string>): (name: string) => string | undefined {
  return (name) => vars[name];
}

function run(
  args: readonly string[],
  env: (name: string) => string | undefined = NO_ENV,
): Options {
  const command = parseFlags(args, env);
  if (command.kind !== "run") throw new assert.AssertionError({ message: `${args} should run` });
  return command.options;
}

/**
 * Options with each collector's switch under its name and its values under `<name>.<key>`, and
 * the regexps as their sources, so that deepEqual can compare them.
 */
function comparable(options: Options): Record<string, unknown> {
  const { collectors, ...rest } = options;
  const flat: Record<string, unknown> = { ...rest };
  for (const collector of collectors) {
    flat[collector.name] = collector.enabled;
    for (const [key, value] of Object.entries(collector.values)) {
      flat[`${collector.name}.${key}`] = value instanceof RegExp ? value.source : value;
    }
  }
  return flat;
}

Deno.test("parseFlags() gives the original exporter's defaults without flags or env", () => {
  assert.deepEqual(comparable(run([])), {
    "kvm_stat.depth": 2,
    "kvm_stat": true,
    kvmdebugDir: "/sys/kernel/debug/kvm",
    vmmapPath: "/etc/vm.yaml",
    vmmapPathExplicit: false,
    vmmapOnlyListed: false,
    "kvm_stat.include": undefined,
    "kvm_stat.exclude": "^mmu_rmaps_stat$",
    "kvm_stat.readers": Math.min(4, navigator.hardwareConcurrency),
    procfs: "/proc",
    sysfs: "/sys",
    "qmp": false,
    "qmp.timeoutMs": 2000,
    "qmp.socketGlob": undefined,
    "qmp.status": true,
    "qmp.block": true,
    "qmp.balloon": true,
    "qmp.deviceInclude": undefined,
    "qmp.deviceExclude": undefined,
    "libvirt": false,
    "libvirt.socket": "/run/libvirt/libvirt-sock-ro",
    "libvirt.timeoutMs": 2000,
    "libvirt.state": true,
    "libvirt.cpu": true,
    "libvirt.balloon": true,
    "libvirt.block": true,
    "libvirt.interface": true,
    "libvirt.deviceInclude": undefined,
    "libvirt.deviceExclude": undefined,
    "libvirt.interfaceInclude": undefined,
    "libvirt.interfaceExclude": undefined,
    "vcpu_time": true,
    "tap": true,
    "tap.include": undefined,
    "tap.exclude": undefined,
    "vm_process": true,
    releaseMemoryWhenIdle: true,
    listenAddress: ":9900",
    maxRequests: 40,
    scrapeTimeoutMs: 10_000,
    maxConnections: 512,
    readHeaderTimeoutMs: 10_000,
    idleTimeoutMs: 60_000,
    webConfigFile: undefined,
    enableLifecycle: false,
    telemetryPath: "/metrics",
    logLevel: "info",
    logFormat: "logfmt",
    naming: "compat",
    histogramMaxBuckets: 0,
  });
});

/** One command line and the options it must change (all others keep their defaults). */
const ARG_CASES: { args: string[]; want: Record<string, unknown> }[] = [
  { args: ["--collector.dir.depth", "1"], want: { "kvm_stat.depth": 1 } },
  { args: ["--collector.dir.depth=0"], want: { "kvm_stat.depth": 0 } },
  { args: ["--web.scrape-timeout=500ms"], want: { scrapeTimeoutMs: 500 } },
  { args: ["--web.scrape-timeout", "1m"], want: { scrapeTimeoutMs: 60_000 } },
  { args: ["--collector.kvm_stat=false"], want: { "kvm_stat": false } },
  {
    args: [
      "--collector.libvirt",
      "--collector.libvirt.socket=/run/libvirt/virtqemud-sock-ro",
      "--collector.libvirt.timeout=500ms",
    ],
    want: {
      "libvirt": true,
      "libvirt.socket": "/run/libvirt/virtqemud-sock-ro",
      "libvirt.timeoutMs": 500,
    },
  },
  { args: ["--no-collector.vcpu_time"], want: { "vcpu_time": false } },
  { args: ["--no-collector.vm_process"], want: { "vm_process": false } },
  { args: ["--no-runtime.release-memory-when-idle"], want: { releaseMemoryWhenIdle: false } },
  { args: ["--collector.kvm_stat=0"], want: { "kvm_stat": false } },
  { args: ["--no-collector.kvm_stat"], want: { "kvm_stat": false } },
  { args: ["--collector.kvm_stat=true"], want: { "kvm_stat": true } },
  { args: ["--collector.kvm_stat"], want: { "kvm_stat": true } },
  { args: ["--collector.kvmdebug.dir", "/run/kvm"], want: { kvmdebugDir: "/run/kvm" } },
  { args: ["--collector.kvmdebug.dir=/run/kvm/"], want: { kvmdebugDir: "/run/kvm" } },
  {
    args: ["--collector.kvmdebug.dir=tests/fixtures/sample/kvm/"],
    want: { kvmdebugDir: "tests/fixtures/sample/kvm" },
  },
  {
    args: ["--collector.vmmap.path", "/srv/vm.yaml"],
    want: { vmmapPath: "/srv/vm.yaml", vmmapPathExplicit: true },
  },
  {
    args: ["--collector.vmmap.path=/etc/vm.yaml"],
    want: { vmmapPath: "/etc/vm.yaml", vmmapPathExplicit: true },
  },
  { args: ["-d"], want: { logLevel: "debug" } },
  { args: ["--debug"], want: { logLevel: "debug" } },
  { args: ["--debug=false"], want: { logLevel: "info" } },
  { args: ["-d", "--log.level=error"], want: { logLevel: "debug" } },
  { args: ["--log.level", "warn"], want: { logLevel: "warn" } },
  { args: ["--log.level=error"], want: { logLevel: "error" } },
  { args: ["--log.format", "json"], want: { logFormat: "json" } },
  { args: ["--log.format=logfmt"], want: { logFormat: "logfmt" } },
  { args: ["--web.listen-address", "127.0.0.1:9100"], want: { listenAddress: "127.0.0.1:9100" } },
  { args: ["--web.listen-address=[::1]:0"], want: { listenAddress: "[::1]:0" } },
  { args: ["--web.max-requests", "3"], want: { maxRequests: 3 } },
  { args: ["--web.max-requests=0"], want: { maxRequests: 0 } },
  { args: ["--web.max-connections=3"], want: { maxConnections: 3 } },
  { args: ["--web.read-header-timeout=2s"], want: { readHeaderTimeoutMs: 2000 } },
  { args: ["--web.idle-timeout=500ms"], want: { idleTimeoutMs: 500 } },
  { args: ["--web.config.file=/etc/web.yml"], want: { webConfigFile: "/etc/web.yml" } },
  { args: ["--web.enable-lifecycle"], want: { enableLifecycle: true } },
  { args: ["--web.telemetry-path", "/kvm"], want: { telemetryPath: "/kvm" } },
  { args: ["--web.telemetry-path=/a/b"], want: { telemetryPath: "/a/b" } },
  {
    args: ["--collector.kvm_stat.files-exclude", "^exits$"],
    want: { "kvm_stat.exclude": "^exits$" },
  },
  { args: ["--collector.kvm_stat.files-exclude="], want: { "kvm_stat.exclude": undefined } },
  { args: ["--collector.kvm_stat.files-include=^halt_"], want: { "kvm_stat.include": "^halt_" } },
  { args: ["--no-collector.libvirt.block"], want: { "libvirt.block": false } },
  {
    args: ["--collector.libvirt.interface-include=^tap"],
    want: { "libvirt.interfaceInclude": "^tap" },
  },
  { args: ["--collector.libvirt.device-exclude=^sd"], want: { "libvirt.deviceExclude": "^sd" } },
  { args: ["--collector.kvm_stat.readers=0"], want: { "kvm_stat.readers": 0 } },
  { args: ["--collector.kvm_stat.readers", "3"], want: { "kvm_stat.readers": 3 } },
  { args: ["--path.procfs=/host/proc/"], want: { procfs: "/host/proc" } },
  { args: ["--path.sysfs", "/host/sys"], want: { sysfs: "/host/sys" } },
  { args: ["--metrics.naming=prometheus"], want: { naming: "prometheus" } },
  { args: ["--metrics.naming", "compat"], want: { naming: "compat" } },
  { args: ["--metrics.histogram.max-buckets=8"], want: { histogramMaxBuckets: 8 } },
];

for (const { args, want } of ARG_CASES) {
  Deno.test(`parseFlags() reads ${args.join(" ")}`, () => {
    const options = comparable(run(args));
    const defaults = comparable(run([]));
    assert.deepEqual(options, { ...defaults, ...want });
  });
}

Deno.test("parseFlags() asks for help on -h and --help, and for the version on --version", () => {
  for (const args of [["-h"], ["--help"], ["--collector.dir.depth=1", "--help"]]) {
    assert.deepEqual(parseFlags(args, NO_ENV), { kind: "help" }, args.join(" "));
  }
  assert.deepEqual(parseFlags(["--version"], NO_ENV), { kind: "version" });
});

Deno.test("envVarName() upper-cases the flag and turns dots and dashes into underscores", () => {
  const cases: [string, string][] = [
    ["web.listen-address", "KVM_EXPORTER_WEB_LISTEN_ADDRESS"],
    ["collector.kvm_stat.files-exclude", "KVM_EXPORTER_COLLECTOR_KVM_STAT_FILES_EXCLUDE"],
    ["collector.dir.depth", "KVM_EXPORTER_COLLECTOR_DIR_DEPTH"],
    ["debug", "KVM_EXPORTER_DEBUG"],
  ];
  for (const [flag, name] of cases) assert.equal(envVarName(flag), name);
});

/** Environment variables and the options they must change. */
const ENV_CASES: { env: Record<string, string>; want: Record<string, unknown> }[] = [
  { env: { KVM_EXPORTER_COLLECTOR_DIR_DEPTH: "1" }, want: { "kvm_stat.depth": 1 } },
  { env: { KVM_EXPORTER_COLLECTOR_KVM_STAT: "false" }, want: { "kvm_stat": false } },
  {
    env: { KVM_EXPORTER_COLLECTOR_KVMDEBUG_DIR: "/run/kvm/" },
    want: { kvmdebugDir: "/run/kvm" },
  },
  {
    env: { KVM_EXPORTER_COLLECTOR_VMMAP_PATH: "/srv/vm.yaml" },
    want: { vmmapPath: "/srv/vm.yaml", vmmapPathExplicit: true },
  },
  { env: { KVM_EXPORTER_DEBUG: "true" }, want: { logLevel: "debug" } },
  { env: { KVM_EXPORTER_LOG_LEVEL: "warn" }, want: { logLevel: "warn" } },
  { env: { KVM_EXPORTER_LOG_FORMAT: "json" }, want: { logFormat: "json" } },
  {
    env: { KVM_EXPORTER_WEB_LISTEN_ADDRESS: "127.0.0.1:1" },
    want: { listenAddress: "127.0.0.1:1" },
  },
  { env: { KVM_EXPORTER_WEB_MAX_REQUESTS: "0" }, want: { maxRequests: 0 } },
  { env: { KVM_EXPORTER_WEB_SCRAPE_TIMEOUT: "2.5s" }, want: { scrapeTimeoutMs: 2500 } },
  { env: { KVM_EXPORTER_WEB_TELEMETRY_PATH: "/m" }, want: { telemetryPath: "/m" } },
  {
    env: { KVM_EXPORTER_COLLECTOR_KVM_STAT_FILES_EXCLUDE: "^x$" },
    want: { "kvm_stat.exclude": "^x$" },
  },
  {
    env: { KVM_EXPORTER_COLLECTOR_KVM_STAT_FILES_INCLUDE: "^y" },
    want: { "kvm_stat.include": "^y" },
  },
  { env: { KVM_EXPORTER_PATH_PROCFS: "/p" }, want: { procfs: "/p" } },
  { env: { KVM_EXPORTER_PATH_SYSFS: "/s" }, want: { sysfs: "/s" } },
  { env: { KVM_EXPORTER_METRICS_NAMING: "prometheus" }, want: { naming: "prometheus" } },
  {
    env: { KVM_EXPORTER_METRICS_HISTOGRAM_MAX_BUCKETS: "4" },
    want: { histogramMaxBuckets: 4 },
  },
];

for (const { env, want } of ENV_CASES) {
  Deno.test(`parseFlags() reads env var ${Object.keys(env).join(", ")}`, () => {
    const defaults = comparable(run([]));
    assert.deepEqual(comparable(run([], envOf(env))), { ...defaults, ...want });
  });
}

/** A flag and an env var for the same option: the flag must win. */
const PRECEDENCE_CASES: {
  args: string[];
  env: Record<string, string>;
  want: Record<string, unknown>;
}[] = [
  {
    args: ["--web.telemetry-path=/flag"],
    env: { KVM_EXPORTER_WEB_TELEMETRY_PATH: "/env" },
    want: { telemetryPath: "/flag" },
  },
  {
    args: ["--collector.dir.depth", "0"],
    env: { KVM_EXPORTER_COLLECTOR_DIR_DEPTH: "1" },
    want: { "kvm_stat.depth": 0 },
  },
  {
    args: ["--collector.kvm_stat"],
    env: { KVM_EXPORTER_COLLECTOR_KVM_STAT: "false" },
    want: { "kvm_stat": true },
  },
  {
    args: ["--no-collector.kvm_stat"],
    env: { KVM_EXPORTER_COLLECTOR_KVM_STAT: "true" },
    want: { "kvm_stat": false },
  },
  {
    args: ["--web.max-requests=5"],
    env: { KVM_EXPORTER_WEB_MAX_REQUESTS: "not a number" },
    want: { maxRequests: 5 },
  },
  {
    args: ["--log.level=error"],
    env: { KVM_EXPORTER_LOG_LEVEL: "debug" },
    want: { logLevel: "error" },
  },
];

for (const { args, env, want } of PRECEDENCE_CASES) {
  Deno.test(`parseFlags() prefers ${args.join(" ")} over ${Object.keys(env).join(", ")}`, () => {
    const options = comparable(run(args, envOf(env)));
    for (const [key, value] of Object.entries(want)) assert.deepEqual(options[key], value, key);
  });
}

for (const { args, env, says } of BAD_FLAGS) {
  const what = [...Object.entries(env ?? {}).map(([k, v]) => `${k}=${v}`), ...args].join(" ");
  Deno.test(`parseFlags() rejects ${what} with a one-line FlagError`, () => {
    assert.throws(() => parseFlags(args, envOf(env ?? {})), (error: unknown) => {
      assert.ok(error instanceof FlagError, `FlagError expected, got ${error}`);
      assert.ok(!error.message.includes("\n"), `one line expected: ${error.message}`);
      assert.ok(error.message.includes(says), `"${says}" expected in: ${error.message}`);
      return true;
    });
  });
}

Deno.test("normaliseDir() removes trailing slashes, . segments and repeated slashes", () => {
  const cases: [string, string][] = [
    ["/sys/kernel/debug/kvm/", "/sys/kernel/debug/kvm"],
    ["/sys/kernel/debug/kvm//", "/sys/kernel/debug/kvm"],
    ["/sys//kernel/./debug/kvm", "/sys/kernel/debug/kvm"],
    ["tests/fixtures/sample/kvm/", "tests/fixtures/sample/kvm"],
    ["./kvm/", "kvm"],
    ["/", "/"],
    ["./", "."],
  ];
  for (const [input, want] of cases) assert.equal(normaliseDir(input), want, input);
});

Deno.test("helpText() lists every flag once, with its type word and default", () => {
  const text = helpText();
  for (const flag of programFlags()) {
    const lines = text.split("\n").filter((line) => line.includes(`--${flag.name} `));
    assert.equal(lines.length, 1, `one line for --${flag.name}`);
    assert.ok(lines[0]!.includes(flag.help), `help of --${flag.name}`);
  }
});

Deno.test("parseFlags() names the environment variable or the flag that holds a bad value", async (t) => {
  const cases: { env: Record<string, string>; args: string[]; expected: string }[] = [
    {
      env: { KVM_EXPORTER_COLLECTOR_DIR_DEPTH: "-1" },
      args: [],
      expected:
        'Invalid value "-1" for environment variable KVM_EXPORTER_COLLECTOR_DIR_DEPTH: must be 0 or more',
    },
    {
      env: { KVM_EXPORTER_COLLECTOR_DIR_DEPTH: "1" },
      args: ["--collector.dir.depth=-1"],
      expected: 'Invalid value "-1" for flag --collector.dir.depth: must be 0 or more',
    },
    {
      env: {},
      args: ["--metrics.naming=openmetrics"],
      expected:
        'Invalid value "openmetrics" for flag --metrics.naming: must be one of compat, prometheus',
    },
    {
      env: { KVM_EXPORTER_METRICS_HISTOGRAM_MAX_BUCKETS: "-2" },
      args: [],
      expected:
        'Invalid value "-2" for environment variable KVM_EXPORTER_METRICS_HISTOGRAM_MAX_BUCKETS: must be 0 or more',
    },
    {
      env: { KVM_EXPORTER_WEB_TELEMETRY_PATH: "metrics" },
      args: [],
      expected:
        'Invalid value "metrics" for environment variable KVM_EXPORTER_WEB_TELEMETRY_PATH: must start with "/" and not be "/" or under "/-/"',
    },
    {
      env: { KVM_EXPORTER_COLLECTOR_KVM_STAT_FILES_INCLUDE: "(" },
      args: [],
      expected:
        'Invalid value "(" for environment variable KVM_EXPORTER_COLLECTOR_KVM_STAT_FILES_INCLUDE: Invalid regular expression: /(/: Unterminated group',
    },
  ];
  for (const c of cases) {
    await t.step(c.expected.split(":")[0]!, () => {
      assert.throws(() => parseFlags(c.args, (name) => c.env[name]), (error: unknown) => {
        assert.ok(error instanceof FlagError);
        assert.equal(error.message, c.expected);
        return true;
      });
    });
  }
});

Deno.test("parseFlags() lets the command line win over KVM_EXPORTER_DEBUG", async (t) => {
  const cases: { args: string[]; env: Record<string, string>; level: string }[] = [
    { args: ["--log.level=error"], env: { KVM_EXPORTER_DEBUG: "true" }, level: "error" },
    { args: ["-d"], env: { KVM_EXPORTER_LOG_LEVEL: "error" }, level: "debug" },
    {
      args: [],
      env: { KVM_EXPORTER_DEBUG: "true", KVM_EXPORTER_LOG_LEVEL: "warn" },
      level: "debug",
    },
    { args: ["--no-debug"], env: { KVM_EXPORTER_DEBUG: "true" }, level: "info" },
  ];
  for (const c of cases) {
    await t.step(`${c.args.join(" ")} ${JSON.stringify(c.env)}`, () => {
      const command = parseFlags(c.args, (name) => c.env[name]);
      assert.ok(command.kind === "run");
      assert.equal(command.options.logLevel, c.level);
    });
  }
});
