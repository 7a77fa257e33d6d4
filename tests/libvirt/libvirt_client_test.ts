import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { LibvirtClient, LibvirtError } from "../../src/libvirt/libvirt_client.ts";
import {
  REMOTE_PROC,
  VIR_CONNECT_GET_ALL_DOMAINS_STATS,
  VIR_DOMAIN_STATS,
} from "../../src/libvirt/remote_protocol.ts";
import {
  FAKE_DOMAIN,
  FAKE_PARAMS,
  FAKE_XML,
  type FakeLibvirtBehaviour,
  startFakeLibvirt,
} from "../support/fake_libvirt.ts";

const STATS = VIR_DOMAIN_STATS.state | VIR_DOMAIN_STATS.vcpu | VIR_DOMAIN_STATS.vm;
const FLAGS = VIR_CONNECT_GET_ALL_DOMAINS_STATS.active | VIR_CONNECT_GET_ALL_DOMAINS_STATS.nowait;

async function withFake(
  behaviour: FakeLibvirtBehaviour,
  timeoutMs: number,
  fn: (
    client: LibvirtClient,
    fake: ReturnType<typeof startFakeLibvirt>,
    path: string,
  ) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "fake_libvirt_" });
  const path = `${dir}/libvirt-sock-ro`;
  const fake = startFakeLibvirt(path, behaviour);
  const client = new LibvirtClient({ path, timeoutMs });
  try {
    await fn(client, fake, path);
  } finally {
    client.close();
    await fake.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("LibvirtClient.getAllDomainStats() decodes every typed-param type", async () => {
  await withFake("libvirt", 5000, async (client, fake) => {
    const records = await client.getAllDomainStats(STATS, FLAGS);
    strictEqual(records.length, 1);
    deepStrictEqual(records[0]!.domain, FAKE_DOMAIN);
    deepStrictEqual(records[0]!.params, FAKE_PARAMS.map(([field, , value]) => [field, value]));
    deepStrictEqual(fake.calls, [
      REMOTE_PROC.authList,
      REMOTE_PROC.connectOpen,
      REMOTE_PROC.connectGetAllDomainStats,
    ]);
  });
});

Deno.test("LibvirtClient reuses one connection across calls", async () => {
  await withFake("libvirt", 5000, async (client, fake) => {
    await client.getAllDomainStats(STATS, FLAGS);
    strictEqual(await client.getDomainXml(FAKE_DOMAIN), FAKE_XML);
    await client.getAllDomainStats(STATS, FLAGS);
    strictEqual(fake.connections, 1);
    strictEqual(fake.calls.filter((p) => p === REMOTE_PROC.connectOpen).length, 1);
  });
});

Deno.test("LibvirtClient answers a keepalive ping in the middle of a call", async () => {
  await withFake("keepalive-first", 5000, async (client) => {
    const records = await client.getAllDomainStats(STATS, FLAGS);
    strictEqual(records[0]!.params.length, FAKE_PARAMS.length);
  });
});

const BAD_PEERS: {
  behaviour: FakeLibvirtBehaviour;
  reason: LibvirtError["reason"];
  message: RegExp;
}[] = [
  {
    behaviour: "garbage",
    reason: "protocol",
    message: /Invalid libvirt frame length "1213486160"/,
  },
  { behaviour: "huge-length", reason: "protocol", message: /frame length "4294967295"/ },
  { behaviour: "short-length", reason: "protocol", message: /frame length "12": expected 28/ },
  { behaviour: "mid-frame", reason: "closed", message: /in the middle of a frame \(\d+ of \d+/ },
  {
    behaviour: "unknown-type",
    reason: "protocol",
    message: /Unknown typed parameter type "99" at byte \d+ for field "vcpu.0.exits.sum"/,
  },
  {
    behaviour: "error",
    reason: "remote",
    message:
      /^libvirt error 55 \(domain 10\) in procedure 344: Requested operation is not valid: domain is not running$/,
  },
  { behaviour: "silent", reason: "timeout", message: /did not answer within 300 ms/ },
  {
    behaviour: "refuse-open",
    reason: "remote",
    message: /^libvirt error 60 \(domain 10\) in procedure 1: no connection driver available/,
  },
];

Deno.test("LibvirtClient fails with a clear one-line error on a bad peer, then recovers", async (t) => {
  for (const bad of BAD_PEERS) {
    await t.step(bad.behaviour, async () => {
      await withFake(bad.behaviour, 300, async (client, fake) => {
        const error = await client.getAllDomainStats(STATS, FLAGS).then(
          () => undefined,
          (e: unknown) => e,
        );
        ok(error instanceof LibvirtError, String(error));
        strictEqual(error.reason, bad.reason, error.message);
        ok(bad.message.test(error.message), error.message);
        ok(!error.message.includes("\n"));
        // The connection was dropped: the next call opens a new one and succeeds.
        fake.behaviour = "libvirt";
        const records = await client.getAllDomainStats(STATS, FLAGS);
        strictEqual(records.length, 1);
        strictEqual(fake.connections, 2);
      });
    });
  }
});

Deno.test("LibvirtClient reconnects when libvirtd restarted between calls", async () => {
  await withFake("libvirt", 2000, async (client, fake, path) => {
    await client.getAllDomainStats(STATS, FLAGS);
    await fake.stop();
    await rejects(client.getAllDomainStats(STATS, FLAGS), (e: unknown) => {
      ok(e instanceof LibvirtError && e.reason === "refused", String(e));
      return true;
    });
    const again = startFakeLibvirt(path, "libvirt");
    try {
      strictEqual((await client.getAllDomainStats(STATS, FLAGS)).length, 1);
      strictEqual(again.connections, 1);
    } finally {
      await again.stop();
    }
  });
});

Deno.test("LibvirtClient retries once on a reused connection the daemon closed while idle", async () => {
  await withFake("libvirt", 2000, async (client, fake, path) => {
    await client.getAllDomainStats(STATS, FLAGS);
    await fake.stop();
    const again = startFakeLibvirt(path, "libvirt");
    try {
      // The old connection is dead; the call does not fail for it.
      strictEqual((await client.getAllDomainStats(STATS, FLAGS)).length, 1);
      strictEqual(again.connections, 1);
    } finally {
      await again.stop();
    }
  });
});

Deno.test("LibvirtClient refuses a frame above its own limit before reading it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fake_libvirt_" });
  const path = `${dir}/libvirt-sock-ro`;
  const fake = startFakeLibvirt(path, "libvirt");
  const client = new LibvirtClient({ path, timeoutMs: 5000, maxFrameBytes: 64 });
  try {
    await rejects(client.getAllDomainStats(STATS, FLAGS), (e: unknown) => {
      ok(e instanceof LibvirtError && e.reason === "protocol", String(e));
      ok(/frame of \d+ bytes exceeds the limit of 64/.test(e.message), e.message);
      return true;
    });
  } finally {
    client.close();
    await fake.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("LibvirtClient reports a missing socket as refused", async () => {
  const client = new LibvirtClient({ path: "/nonexistent/libvirt-sock-ro", timeoutMs: 1000 });
  await rejects(client.getAllDomainStats(STATS, FLAGS), (e: unknown) => {
    ok(e instanceof LibvirtError && e.reason === "refused", String(e));
    ok(/"\/nonexistent\/libvirt-sock-ro" \(is libvirtd running\?\)/.test(e.message), e.message);
    return true;
  });
});

Deno.test("LibvirtClient stops a call when its signal aborts", async () => {
  await withFake("silent", 60_000, async (client) => {
    const controller = new AbortController();
    const call = client.getAllDomainStats(STATS, FLAGS, { signal: controller.signal });
    setTimeout(() => controller.abort(new Error("scrape deadline")), 50);
    await rejects(call, (e: unknown) => {
      ok(e instanceof LibvirtError && e.reason === "timeout", String(e));
      ok(/aborted/.test(e.message), e.message);
      return true;
    });
  });
});

Deno.test("LibvirtClient() rejects a bad timeout or frame limit", () => {
  for (const timeoutMs of [0, -1, NaN]) {
    try {
      new LibvirtClient({ path: "/x", timeoutMs });
      ok(false, "accepted");
    } catch (e) {
      ok(e instanceof RangeError);
    }
  }
  try {
    new LibvirtClient({ path: "/x", timeoutMs: 1, maxFrameBytes: 10 });
    ok(false, "accepted");
  } catch (e) {
    ok(e instanceof RangeError);
  }
});
