/**
 * main.ts as a process: --help, --version, refused flags, start-up errors,
 * environment variables and the log formats.
 */

import assert from "node:assert/strict";
import { VERSION } from "../../src/version.ts";
import {
  fetchText,
  LOOPBACK_ANY_PORT,
  runMain,
  SAMPLE_ARGS,
  startExporter,
  waitFor,
} from "../support/exporter_process.ts";
import { BAD_FLAGS } from "./bad_flags.ts";

function lines(text: string): string[] {
  return text.split("\n").filter((line) => line !== "");
}

/** Flag lines of the original exporter's --help (cobra layout), plus the added ones. */
const HELP_LINES: RegExp[] = [
  /^ {6}--collector\.dir\.depth int +KVM Debug Stat Depth \(default 2\)$/,
  /^ {6}--collector\.kvm_stat +Enable the kvm_stat collector \(default: enabled\)\. \(default true\)$/,
  /^ {6}--collector\.kvm_stat\.files-exclude string +.* \(default "\^mmu_rmaps_stat\$"\)$/,
  /^ {6}--collector\.kvm_stat\.files-include string +\S/,
  /^ {6}--collector\.kvmdebug\.dir string +KVM debug stat dir \(default "\/sys\/kernel\/debug\/kvm"\)$/,
  /^ {6}--collector\.vmmap\.path string +VmMap yaml path \(default "\/etc\/vm\.yaml"\)$/,
  /^ {2}-d, --debug +Set loglevel to Debug$/,
  /^ {2}-h, --help +help for kvm_exporter$/,
  /^ {6}--log\.format string +.*\(default "logfmt"\)$/,
  /^ {6}--log\.level string +.*\(default "info"\)$/,
  /^ {6}--version +\S/,
  /^ {6}--web\.listen-address string +Address on which to expose metrics and web interface\. \(default ":9900"\)$/,
  /^ {6}--web\.max-requests int +Maximum number of parallel scrape requests\. Use 0 to disable\. \(default 40\)$/,
  /^ {6}--web\.telemetry-path string +Path under which to expose metrics\. \(default "\/metrics"\)$/,
];

for (const flag of ["--help", "-h"]) {
  Deno.test(`main.ts ${flag} prints the original help layout and exits 0`, async () => {
    const { code, stdout, stderr } = await runMain([flag]);
    assert.equal(code, 0, stderr);
    assert.equal(stderr, "");
    const all = stdout.split("\n");
    assert.deepEqual(all.slice(0, 6), [
      "KVM Exporter",
      "",
      "Usage:",
      "  kvm_exporter  [flags]",
      "",
      "Flags:",
    ]);
    const flagLines = all.slice(6, all.indexOf("", 6));
    for (const pattern of HELP_LINES) {
      assert.equal(flagLines.filter((line) => pattern.test(line)).length, 1, String(pattern));
    }
    // Descriptions start in one column, 3 spaces after the longest flag, as cobra aligns them.
    const columns = flagLines.map((line) => /^ {2}(?:-\w, | {4})--\S+(?: \w+)? +/.exec(line)![0]);
    assert.equal(new Set(columns.map((c) => c.length)).size, 1, flagLines.join("\n"));
    assert.ok(columns.some((c) => c.endsWith("   ") && !c.endsWith("    ")), "3-space gap");
  });
}

Deno.test("main.ts --version prints the version and exits 0", async () => {
  const { code, stdout, stderr } = await runMain(["--version"]);
  assert.equal(code, 0, stderr);
  assert.match(stdout, new RegExp(`^kvm_exporter version ${VERSION.replaceAll(".", "\\.")} `));
  assert.equal(lines(stdout).length, 1);
});

for (const { args, env, says } of BAD_FLAGS) {
  const what = [...Object.entries(env ?? {}).map(([k, v]) => `${k}=${v}`), ...args].join(" ");
  Deno.test(`main.ts exits 2 with one line on stderr for ${what}`, async () => {
    // A listen address of our own, so that a run that wrongly starts cannot take :9900.
    const listen = args.some((a) => a.startsWith("--web.listen-address"))
      ? []
      : [LOOPBACK_ANY_PORT];
    const result = await runMain([...listen, ...args], env === undefined ? {} : { env });
    assert.equal(result.code, 2, result.stderr);
    assert.equal(result.stdout, "");
    const errLines = result.stderr.split("\n").filter((line) => line !== "");
    assert.equal(errLines.length, 1, result.stderr);
    assert.ok(result.stderr.endsWith("\n"));
    assert.match(errLines[0]!, /--help/);
    assert.ok(errLines[0]!.includes(says), `"${says}" expected in: ${errLines[0]}`);
  });
}

Deno.test({
  name: "main.ts starts without a vm.yaml at the default path",
  ignore: (() => {
    try {
      Deno.statSync("/etc/vm.yaml");
      console.log("skipped: /etc/vm.yaml exists on this host");
      return true;
    } catch {
      return false;
    }
  })(),
  async fn() {
    const args = SAMPLE_ARGS.filter((a) => !a.startsWith("--collector.vmmap.path"));
    await using exporter = await startExporter([...args, LOOPBACK_ANY_PORT]);
    const ready = await fetchText(`${exporter.baseUrl}/-/ready`);
    assert.equal(ready.status, 200);
    const metrics = await fetchText(`${exporter.baseUrl}/metrics`);
    assert.equal(metrics.status, 200);
    assert.match(metrics.body, /^kvm_exporter_config_last_reload_successful 1$/m);
    assert.match(exporter.stderrText(), /level=info msg="No vm\.yaml; [^"]*" path=\/etc\/vm\.yaml/);
    assert.doesNotMatch(exporter.stderrText(), /level=error/);
  },
});

/** How the path of a missing vm.yaml can be named: each makes it an error. */
const MISSING_VMMAP: { how: string; args(path: string): string[]; env(path: string): object }[] = [
  { how: "by flag", args: (path) => [`--collector.vmmap.path=${path}`], env: () => ({}) },
  {
    how: "by env var",
    args: () => [],
    env: (path) => ({ env: { KVM_EXPORTER_COLLECTOR_VMMAP_PATH: path } }),
  },
];

for (const { how, args, env } of MISSING_VMMAP) {
  Deno.test(`main.ts exits 1 naming a missing vm.yaml named ${how}`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_cli_" });
    try {
      const path = `${dir}/missing.yaml`;
      const sample = SAMPLE_ARGS.filter((a) => !a.startsWith("--collector.vmmap.path"));
      const result = await runMain([...sample, LOOPBACK_ANY_PORT, ...args(path)], env(path));
      assert.equal(result.code, 1, result.stderr);
      const errors = lines(result.stderr).filter((line) => / level=error /.test(line));
      assert.equal(errors.length, 1, result.stderr);
      assert.ok(errors[0]!.includes(path), errors[0]);
      assert.match(errors[0]!, /no such file/);
      assert.doesNotMatch(result.stderr, /msg=Listening/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

/** Malformed vm.yaml files and where the error must point. */
const MALFORMED_VMMAP: { name: string; text: string; at: string; says: RegExp }[] = [
  { name: "a YAML syntax error", text: "vm_infos:\n  a: [1, 2\n", at: "3:1", says: /flow/ },
  {
    name: "an unknown key",
    text: "vm_infos:\n  a:\n    bogus: 1\n",
    at: "3:5",
    says: /unknown key \\"bogus\\"/,
  },
  {
    name: "a reserved label",
    text: "vm_infos:\n  a:\n    pid: 1\n    labels:\n      domain: x\n",
    at: "5:7",
    says: /reserved/,
  },
];

for (const { name, text, at, says } of MALFORMED_VMMAP) {
  Deno.test(`main.ts exits 1 with path:line:col on a vm.yaml with ${name}`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_cli_" });
    try {
      const path = `${dir}/vm.yaml`;
      await Deno.writeTextFile(path, text);
      const sample = SAMPLE_ARGS.filter((a) => !a.startsWith("--collector.vmmap.path"));
      const result = await runMain([
        ...sample,
        LOOPBACK_ANY_PORT,
        `--collector.vmmap.path=${path}`,
      ]);
      assert.equal(result.code, 1, result.stderr);
      const errors = lines(result.stderr).filter((line) => / level=error /.test(line));
      assert.equal(errors.length, 1, result.stderr);
      assert.ok(errors[0]!.includes(`${path}:${at}: `), `${path}:${at}: expected in ${errors[0]}`);
      assert.match(errors[0]!, says);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

/** Listen addresses that collide with a port held on 127.0.0.1. */
const BUSY_ADDRESSES: { name: string; address(port: number): string }[] = [
  { name: "127.0.0.1:PORT", address: (port) => `127.0.0.1:${port}` },
  { name: ":PORT (all interfaces)", address: (port) => `:${port}` },
];

for (const { name, address } of BUSY_ADDRESSES) {
  Deno.test(`main.ts exits 1 with a clear message when ${name} is in use`, async () => {
    const occupant = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    try {
      const port = (occupant.addr as Deno.NetAddr).port;
      const result = await runMain([...SAMPLE_ARGS, `--web.listen-address=${address(port)}`]);
      assert.equal(result.code, 1, result.stderr);
      const errors = lines(result.stderr).filter((line) => / level=error /.test(line));
      assert.equal(errors.length, 1, result.stderr);
      assert.ok(errors[0]!.includes(`address=${address(port)} `), errors[0]);
      assert.match(errors[0]!, /msg="Cannot listen" .*err="address already in use"/);
    } finally {
      occupant.close();
    }
  });
}

Deno.test("main.ts serves metrics on the path of KVM_EXPORTER_WEB_TELEMETRY_PATH", async () => {
  await using exporter = await startExporter([...SAMPLE_ARGS, LOOPBACK_ANY_PORT], {
    env: { KVM_EXPORTER_WEB_TELEMETRY_PATH: "/m" },
  });
  assert.match(exporter.stderrText(), /msg=Listening address=\S+ telemetry_path=\/m$/m);
  const metrics = await fetchText(`${exporter.baseUrl}/m`);
  assert.equal(metrics.status, 200);
  assert.match(metrics.body, /^kvm_stat_exits_count\{domain="global"\} \d+$/m);
  assert.equal((await fetchText(`${exporter.baseUrl}/metrics`)).status, 404);
});

Deno.test("main.ts prefers --web.telemetry-path over KVM_EXPORTER_WEB_TELEMETRY_PATH", async () => {
  await using exporter = await startExporter(
    [...SAMPLE_ARGS, LOOPBACK_ANY_PORT, "--web.telemetry-path=/flag"],
    { env: { KVM_EXPORTER_WEB_TELEMETRY_PATH: "/m" } },
  );
  assert.equal((await fetchText(`${exporter.baseUrl}/flag`)).status, 200);
  assert.equal((await fetchText(`${exporter.baseUrl}/m`)).status, 404);
});

const LOGFMT_LINE =
  /^ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=(debug|info|warn|error) msg=("(?:[^"\\]|\\.)*"|[^\s"=]+)( [\w.]+=("(?:[^"\\]|\\.)*"|[^\s"=]+))*$/;

Deno.test("main.ts logs logfmt lines by default, from start to stop", async () => {
  const exporter = await startExporter([...SAMPLE_ARGS, LOOPBACK_ANY_PORT]);
  let status: Deno.CommandStatus;
  try {
    assert.equal((await fetchText(`${exporter.baseUrl}/metrics`)).status, 200);
  } finally {
    status = await exporter.stop();
  }
  assert.equal(status.code, 0, exporter.stderrText());
  const logged = lines(exporter.stderrText());
  for (const line of logged) assert.match(line, LOGFMT_LINE);
  const messages = logged.map((line) => /msg=("[^"]*"|\S+)/.exec(line)![1]);
  assert.deepEqual(messages, [
    '"Starting kvm_exporter"',
    '"Loaded vm.yaml"',
    "Listening",
    '"Shutting down; waiting for scrapes in flight"',
    "Stopped",
  ]);
});

Deno.test("main.ts --log.format=json logs one JSON object a line", async () => {
  const exporter = await startExporter([...SAMPLE_ARGS, LOOPBACK_ANY_PORT, "--log.format=json"]);
  let status: Deno.CommandStatus;
  try {
    assert.equal((await fetchText(`${exporter.baseUrl}/metrics`)).status, 200);
  } finally {
    status = await exporter.stop();
  }
  assert.equal(status.code, 0, exporter.stderrText());
  const records = lines(exporter.stderrText()).map((line) => JSON.parse(line));
  for (const record of records) {
    assert.match(record.ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(["debug", "info", "warn", "error"].includes(record.level), record.level);
    assert.equal(typeof record.msg, "string");
  }
  const listening = records.find((r) => r.msg === "Listening");
  assert.equal(listening?.address, `127.0.0.1:${exporter.port}`);
  assert.equal(listening?.telemetry_path, "/metrics");
  assert.equal(records.at(-1)?.msg, "Stopped");
});

/** Ways to ask for debug lines, and whether they must appear. */
const DEBUG_CASES: { how: string; args: string[]; env?: Record<string, string>; debug: boolean }[] =
  [
    { how: "-d", args: ["-d"], debug: true },
    { how: "--debug", args: ["--debug"], debug: true },
    { how: "--log.level=debug", args: ["--log.level=debug"], debug: true },
    { how: "KVM_EXPORTER_DEBUG=true", args: [], env: { KVM_EXPORTER_DEBUG: "true" }, debug: true },
    { how: "no flag", args: [], debug: false },
  ];

for (const { how, args, env, debug } of DEBUG_CASES) {
  Deno.test(`main.ts ${debug ? "writes" : "writes no"} debug lines with ${how}`, async () => {
    // A procfs without the VMs' pids: naming each VM by its dir is logged at debug level.
    const procfs = await Deno.makeTempDir({ prefix: "kvm_exporter_procfs_" });
    try {
      const sample = SAMPLE_ARGS.filter((a) => !a.startsWith("--path.procfs"));
      const exporter = await startExporter(
        [...sample, LOOPBACK_ANY_PORT, `--path.procfs=${procfs}`, ...args],
        env === undefined ? {} : { env },
      );
      let status: Deno.CommandStatus;
      try {
        assert.equal((await fetchText(`${exporter.baseUrl}/metrics`)).status, 200);
        if (debug) {
          await waitFor(
            () => / level=debug msg="Cannot read the VMM's/.test(exporter.stderrText()),
            {
              what: "a debug line about the missing command line",
            },
          );
        }
      } finally {
        status = await exporter.stop();
      }
      assert.equal(status.code, 0, exporter.stderrText());
      const debugLines = lines(exporter.stderrText()).filter((l) => / level=debug /.test(l));
      if (debug) {
        assert.ok(debugLines.length >= 1);
        for (const line of debugLines) assert.match(line, LOGFMT_LINE);
      } else {
        assert.deepEqual(debugLines, []);
      }
    } finally {
      await Deno.remove(procfs, { recursive: true });
    }
  });
}

function hasIpv6Loopback(): boolean {
  try {
    Deno.listen({ hostname: "::1", port: 0 }).close();
    return true;
  } catch {
    return false;
  }
}

Deno.test({
  name: "main.ts listens on [::1]:0 and logs the address in brackets",
  ignore: !hasIpv6Loopback(),
  async fn() {
    await using exporter = await startExporter([...SAMPLE_ARGS, "--web.listen-address=[::1]:0"]);
    assert.match(
      exporter.stderrText(),
      new RegExp(`msg=Listening address=\\[::1\\]:${exporter.port} `),
    );
    assert.equal(exporter.baseUrl, `http://[::1]:${exporter.port}`);
    assert.equal((await fetchText(`${exporter.baseUrl}/-/healthy`)).status, 200);
  },
});

Deno.test("main.ts listens on every interface for :0, IPv4 and IPv6", async () => {
  await using exporter = await startExporter([...SAMPLE_ARGS, "--web.listen-address=:0"]);
  const listening = /msg=Listening address=(\S+) /.exec(exporter.stderrText())?.[1];
  assert.ok(
    listening === `[::]:${exporter.port}` || listening === `0.0.0.0:${exporter.port}`,
    `wildcard address expected, got ${listening}`,
  );
  assert.equal((await fetchText(`http://127.0.0.1:${exporter.port}/-/healthy`)).status, 200);
  if (hasIpv6Loopback()) {
    assert.equal(listening, `[::]:${exporter.port}`, "dual-stack where the host has IPv6");
    assert.equal((await fetchText(`http://[::1]:${exporter.port}/-/healthy`)).status, 200);
  }
});
