import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert";
import { QmpError, type QmpSession, withQmpSession } from "../../src/qmp/qmp_client.ts";
import {
  type CpuInfo,
  parseCpusFast,
  parseQueryStats,
  parseStatsSchemas,
} from "../../src/qmp/query_stats.ts";
import { acceptsConnections } from "../support/qemu.ts";

const QEMU = "qemu-system-x86_64";
const STARTUP_DEADLINE_MS = 15_000;

async function isInstalled(command: string): Promise<boolean> {
  try {
    const { success } = await new Deno.Command(command, {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    }).output();
    return success;
  } catch {
    return false;
  }
}

const qemuInstalled = await isInstalled(QEMU);
if (!qemuInstalled) console.log(`Skipping QEMU tests: ${QEMU} is not installed`);

interface RunningQemu {
  pid: number;
  socket: string;
}

/** Starts a small TCG guest with a QMP socket, runs `body`, then kills QEMU and cleans up. */
async function withQemu(body: (qemu: RunningQemu) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "qmp_client_qemu_test_" });
  const socket = `${dir}/qmp.sock`;
  const child = new Deno.Command(QEMU, {
    args: [
      ...["-accel", "tcg", "-name", "guest=qmptest", "-m", "64", "-smp", "3"],
      ...["-nodefaults", "-display", "none", "-no-reboot"],
      ...["-qmp", `unix:${socket},server=on,wait=off`],
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  try {
    await waitForSocket(socket, () => exited);
    await body({ pid: child.pid, socket });
  } catch (error) {
    if (exited) {
      const { code } = await status;
      throw new Error(`${QEMU} exited early with code ${code}`, { cause: error });
    }
    throw error;
  } finally {
    if (!exited) child.kill("SIGKILL");
    const output = await child.output();
    if (!output.success && output.signal !== "SIGKILL") {
      console.log(`${QEMU} stderr: ${new TextDecoder().decode(output.stderr)}`);
    }
    await Deno.remove(dir, { recursive: true });
  }
}

/** Polls until `path` is a socket, QEMU exits, or the startup deadline passes. */
async function waitForSocket(path: string, hasExited: () => boolean): Promise<void> {
  const deadline = performance.now() + STARTUP_DEADLINE_MS;
  while (true) {
    try {
      if ((await Deno.lstat(path)).isSocket && await acceptsConnections(path)) return;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    if (hasExited()) throw new Error(`${QEMU} exited before creating "${path}"`);
    if (performance.now() > deadline) {
      throw new Error(`${QEMU} did not create "${path}" within ${STARTUP_DEADLINE_MS} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** `query-stats*` exist since QEMU 7.1. */
function hasQueryStats(version: QmpSession["version"]): boolean {
  return version.major > 7 || (version.major === 7 && version.minor >= 1);
}

Deno.test({
  name: "withQmpSession() talks to a real QEMU under TCG",
  ignore: !qemuInstalled,
  fn: async (t) => {
    await withQemu(async ({ pid, socket }) => {
      await t.step("reads version, vCPUs and (empty) kvm stats", async () => {
        const result = await withQmpSession({ path: socket, timeoutMs: 10_000 }, async (s) => {
          const cpus = parseCpusFast(await s.execute("query-cpus-fast"));
          if (!hasQueryStats(s.version)) {
            await rejects(s.execute("query-stats-schemas"), (error: unknown) => {
              ok(error instanceof QmpError && error.reason === "protocol");
              strictEqual(error.code, "CommandNotFound");
              return true;
            });
            return { version: s.version, cpus, stats: undefined };
          }
          return {
            version: s.version,
            cpus,
            stats: {
              schemas: parseStatsSchemas(await s.execute("query-stats-schemas")),
              kvmSchemas: parseStatsSchemas(
                await s.execute("query-stats-schemas", { provider: "kvm" }),
              ),
              vm: parseQueryStats(await s.execute("query-stats", { target: "vm" })),
              vcpu: parseQueryStats(await s.execute("query-stats", { target: "vcpu" })),
            },
          };
        });

        ok(result.version.major >= 7, `QEMU ${JSON.stringify(result.version)}`);
        deepStrictEqual(result.cpus.map((cpu: CpuInfo) => cpu.cpuIndex), [0, 1, 2]);
        for (const cpu of result.cpus) {
          ok(cpu.qomPath.startsWith("/machine/"), cpu.qomPath);
          ok(await exists(`/proc/${pid}/task/${cpu.threadId}`), `thread ${cpu.threadId} of ${pid}`);
        }
        if (result.stats !== undefined) {
          // Under TCG the kvm provider is not registered: QEMU answers with empty lists.
          const empty = { vm: new Map(), vcpu: new Map() };
          deepStrictEqual(result.stats, { schemas: empty, kvmSchemas: empty, vm: [], vcpu: [] });
        }
      });

      await t.step("a second client times out while the monitor is held", async () => {
        const timeoutMs = 500;
        let elapsed = Infinity;
        await withQmpSession({ path: socket, timeoutMs: 10_000 }, async (held) => {
          await held.execute("query-status");
          const started = performance.now();
          await rejects(
            withQmpSession({ path: socket, timeoutMs }, () => Promise.resolve()),
            (error: unknown) => {
              ok(error instanceof QmpError, String(error));
              strictEqual(error.reason, "timeout", error.message);
              ok(/waiting for the greeting/.test(error.message), error.message);
              return true;
            },
          );
          elapsed = performance.now() - started;
          // The held session still works after the other client gave up.
          await held.execute("query-status");
        });
        ok(elapsed >= timeoutMs - 5, `gave up early: ${elapsed} ms`);
      });

      await t.step("the monitor serves the next client once it is released", async () => {
        const status = await withQmpSession(
          { path: socket, timeoutMs: 10_000 },
          (s) => s.execute("query-status"),
        );
        ok(typeof status === "object" && status !== null && "status" in status, String(status));
      });
    });
  },
});
