/**
 * A fake QMP monitor on a unix socket, for what real QEMU does not do on
 * demand: stats under KVM on a machine without /dev/kvm, garbage, half a
 * line, a huge line, a greeting from something else, an old QEMU.
 *
 * @module
 */

import { catalogReplies } from "./fake_qmp_catalog.ts";
import { type QmpPeer, type QmpPeerClient, startQmpPeer } from "./qmp_peer.ts";

/** How the fake monitor treats each client. */
export type FakeQmpBehaviour =
  | "qemu" // A QEMU 7.2 under KVM with two vCPUs.
  | "qemu-catalog" // The same, serving every stat of src/stats/catalog.ts.
  | "silent" // Accepts and never greets, like a monitor another client holds.
  | "garbage"
  | "half-line"
  | "huge-line"
  | "not-qemu"
  | "old-qemu"; // No query-stats: QEMU before 7.1.

/** The QOM path of vCPU i, as QEMU names it (`device[1]` is not a vCPU). */
function qomPath(i: number): string {
  return `/machine/unattached/device[${i === 0 ? 0 : i + 1}]`;
}

const GREETING =
  '{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, "capabilities": ["oob"]}}\r\n';

/**
 * The device replies the "qemu" behaviour serves: running, two disks (one `-blockdev` style, one
 * `-drive` style) and a block node no device uses, a balloon with polling on. Counters grow with
 * the connection count `n`.
 */
export function fakeDeviceReplies(
  n: number,
): Record<string, (args: Record<string, unknown> | undefined) => unknown> {
  const disk = (base: number) => ({
    rd_bytes: 512 * base * n,
    rd_operations: base * n,
    rd_total_time_ns: 1_500_000 * n,
    wr_bytes: 4096 * n,
    wr_operations: n,
    wr_total_time_ns: 2_000_000 * n,
    flush_operations: 2 * n,
    flush_total_time_ns: 250 * n,
    failed_rd_operations: 1,
    failed_wr_operations: 2,
    failed_flush_operations: 0,
    invalid_rd_operations: 0,
  });
  return {
    "query-status": () => ({ status: "running", singlestep: false, running: true }),
    "query-blockstats": () => [
      {
        device: "",
        qdev: "/machine/peripheral/virtio-disk0/virtio-backend",
        "node-name": "libvirt-1-format",
        stats: disk(10),
      },
      { device: "drive-ide0-1-0", qdev: "ide0-1-0", stats: disk(1) },
      { device: "", "node-name": "#block-job-target", stats: disk(3) },
    ],
    "query-balloon": () => ({ actual: 1073741824 }),
    "qom-list": (args) =>
      args?.["path"] === "/machine/peripheral"
        ? [
          { name: "type", type: "string" },
          { name: "virtio-disk0", type: "child<virtio-blk-pci>" },
          { name: "balloon0", type: "child<virtio-balloon-pci>" },
        ]
        : [{ name: "type", type: "string" }],
    "qom-get": (args) =>
      args?.["property"] === "guest-stats-polling-interval" ? 5 : {
        stats: {
          "stat-total-memory": 1020 * 1024 * 1024,
          "stat-available-memory": 800 * 1024 * 1024,
          "stat-free-memory": 600 * 1024 * 1024,
          "stat-disk-caches": 100 * 1024 * 1024,
          "stat-major-faults": 10 * n,
          "stat-minor-faults": 1000 * n,
          "stat-swap-in": 0,
          "stat-swap-out": "U64_MAX",
          "stat-htlb-pgalloc": 0,
        },
        "last-update": 1_700_000_000 + n,
      },
  };
}

/**
 * The stats the "qemu" behaviour serves; `exits` grows by 1000 per connection,
 * the halt-wait histogram and its sum grow with the connection count.
 */
export function fakeReplies(
  connection: number,
  threadIds: readonly number[],
): Record<string, (args: Record<string, unknown> | undefined) => unknown> {
  const qom = qomPath;
  return {
    ...fakeDeviceReplies(connection),
    "qmp_capabilities": () => ({}),
    "query-stats-schemas": () => [
      {
        provider: "kvm",
        target: "vm",
        stats: [
          { name: "pages_4k", type: "instant", exponent: 0 },
          { name: "remote_tlb_flush", type: "cumulative", exponent: 0 },
          { name: "max_mmu_rmap_size", type: "peak", exponent: 0 },
        ],
      },
      {
        provider: "kvm",
        target: "vcpu",
        stats: [
          { name: "exits", type: "cumulative", exponent: 0 },
          { name: "halt_wait_ns", type: "cumulative", unit: "seconds", base: 10, exponent: -9 },
          { name: "guest_mode", type: "instant", unit: "boolean", exponent: 0 },
          {
            name: "halt_wait_hist",
            type: "log2-histogram",
            unit: "seconds",
            base: 10,
            exponent: -9,
          },
        ],
      },
    ],
    "query-stats": (args) =>
      args?.["target"] === "vm"
        ? [{
          provider: "kvm",
          stats: [
            { name: "pages_4k", value: 999 },
            { name: "remote_tlb_flush", value: "U64_MAX" },
            { name: "max_mmu_rmap_size", value: 7 },
          ],
        }]
        : threadIds.map((_, i) => ({
          provider: "kvm",
          "qom-path": qom(i),
          stats: [
            { name: "exits", value: 1000 * connection + i },
            { name: "halt_wait_ns", value: 5 * connection },
            { name: "guest_mode", value: i === 1 },
            { name: "halt_wait_hist", value: [connection, 2 * connection, 3 * connection] },
          ],
        })),
    "query-cpus-fast": () =>
      threadIds.map((tid, i) => ({
        "cpu-index": i,
        "qom-path": qom(i),
        "thread-id": tid,
        target: "x86_64",
      })),
  };
}

/** A running fake monitor. */
export type FakeQmp = QmpPeer;

/** Options of {@linkcode startFakeQmp}. */
export interface FakeQmpOptions {
  /** How it treats each client. */
  behaviour: FakeQmpBehaviour;
  /** The vCPU thread ids that query-cpus-fast reports, one per vCPU. Default `[1, 2]`. */
  threadIds?: readonly number[];
  /** Edits a reply before it is sent (a monitor that lies in one place), by command. */
  rewrite?: (command: string, reply: unknown, args: Record<string, unknown> | undefined) => unknown;
  /** An error reply in place of a command's return (a monitor that refuses one), by command. */
  fail?: (
    command: string,
    args: Record<string, unknown> | undefined,
  ) => { class: string; desc: string } | undefined;
  /** Commands never answered (a monitor stuck in one query), by command. */
  hang?: (command: string) => boolean;
}

/**
 * Serves a fake QMP monitor at `path` until closed.
 *
 * @param path The socket path.
 * @param options The behaviour, the vCPU thread ids and an optional edit of replies.
 * @returns The running monitor.
 */
export function startFakeQmp(path: string, options: FakeQmpOptions): FakeQmp {
  return startQmpPeer(path, (client, n) => serve(client, { ...options, connection: n }));
}

/** Talks to one client as `behaviour` says; `connection` counts clients from 1. */
async function serve(
  client: QmpPeerClient,
  options: FakeQmpOptions & { connection: number },
): Promise<void> {
  const { write } = client;
  switch (options.behaviour) {
    case "silent":
      for await (const _ of client.conn.readable) { /* Hold the client without a word. */ }
      return;
    case "garbage":
      return await write("this is not json\r\n");
    case "half-line":
      return await write('{"QMP": {"version": ');
    case "huge-line":
      return await write(`{"QMP": "${"x".repeat(2 * 1024 * 1024)}`);
    case "not-qemu":
      return await write('{"hello": "I am not QEMU"}\r\n');
  }
  const n = options.connection;
  const threadIds = options.threadIds ?? [1, 2];
  const replies = fakeReplies(n, threadIds);
  if (options.behaviour === "qemu-catalog") {
    Object.assign(replies, catalogReplies(n, threadIds.map((_, i) => qomPath(i))));
  }
  await write(GREETING);
  for await (const line of client.lines()) {
    const message = JSON.parse(line) as {
      execute: string;
      arguments?: Record<string, unknown>;
      id?: unknown;
    };
    if (options.hang?.(message.execute)) continue;
    const handler = replies[message.execute];
    const missing = handler === undefined ||
      (options.behaviour === "old-qemu" && message.execute.startsWith("query-stats"));
    const refusal = options.fail?.(message.execute, message.arguments);
    const reply = missing || refusal !== undefined
      ? {
        error: refusal ?? {
          class: "CommandNotFound",
          desc: `The command ${message.execute} has not been found`,
        },
        id: message.id,
      }
      : {
        return: (options.rewrite ?? ((_, reply) => reply))(
          message.execute,
          handler(message.arguments),
          message.arguments,
        ),
        id: message.id,
      };
    await write(JSON.stringify(reply).replaceAll('"U64_MAX"', "18446744073709551615") + "\r\n");
  }
}
