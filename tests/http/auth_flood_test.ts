/**
 * A flood of wrong passwords against main.ts with basic auth: each one costs a bcrypt (tens of
 * ms of CPU on the event loop), so only a few run at once and the rest are answered 503 at
 * once; a client whose credentials are cached is served promptly throughout.
 */

import assert from "node:assert/strict";
import {
  fetchText,
  LOOPBACK_ANY_PORT,
  SAMPLE_ARGS,
  startExporter,
} from "../support/exporter_process.ts";
import { bcryptHash, onPath } from "../support/tls.ts";

const FLOODERS = 64;
const SAMPLES = 5;
const hasHtpasswd = onPath("htpasswd");
if (!hasHtpasswd) console.log("auth_flood_test: skipped: htpasswd (apache2-utils) is missing");

function basic(user: string, password: string): string {
  return `Basic ${btoa(`${user}:${password}`)}`;
}

async function timed(url: string, authorization: string): Promise<[number, number]> {
  const start = performance.now();
  const { status } = await fetchText(url, {
    headers: { Authorization: authorization },
    signal: AbortSignal.timeout(30_000),
  });
  return [status, performance.now() - start];
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

Deno.test({
  name: "main.ts answers 503 past 2 bcrypts in flight and serves cached users during a flood",
  ignore: !hasHtpasswd,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_authflood_" });
    try {
      const hash = await bcryptHash("secret");
      await Deno.writeTextFile(`${dir}/web.yml`, `basic_auth_users:\n  alice: ${hash}\n`);
      await using exporter = await startExporter([
        ...SAMPLE_ARGS,
        LOOPBACK_ANY_PORT,
        `--web.config.file=${dir}/web.yml`,
      ]);
      const url = `${exporter.baseUrl}/metrics`;
      const good = basic("alice", "secret");
      assert.equal((await timed(url, good))[0], 200);
      // Same-run baseline: what one bcrypt (a wrong password, alone) costs a request here.
      const alone: number[] = [];
      for (let i = 0; i < SAMPLES; i++) {
        const [status, ms] = await timed(url, basic("alice", `alone${i}`));
        assert.equal(status, 401);
        alone.push(ms);
      }

      const statuses = new Map<number, number>();
      let flooding = true;
      let n = 0;
      const deadline = Date.now() + 60_000;
      const flood = Array.from({ length: FLOODERS }, async () => {
        while (flooding && Date.now() < deadline) {
          // Each password differs, so none is answered from the cache of recent failures.
          const [status] = await timed(url, basic("alice", `wrong${n++}`));
          statuses.set(status, (statuses.get(status) ?? 0) + 1);
        }
      });
      const cached: number[] = [];
      try {
        while (n < FLOODERS * 2 && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        for (let i = 0; i < SAMPLES; i++) {
          const [status, ms] = await timed(url, good);
          assert.equal(status, 200);
          cached.push(ms);
        }
      } finally {
        flooding = false;
        await Promise.all(flood);
      }
      const ratio = median(cached) / median(alone);
      console.log(
        `auth_flood_test: cached request ${median(cached).toFixed(0)} ms under the flood, ` +
          `one bcrypt ${median(alone).toFixed(0)} ms alone, ${
            JSON.stringify(Object.fromEntries(statuses))
          }`,
      );
      assert.deepEqual([...statuses.keys()].filter((s) => s !== 401 && s !== 503), []);
      assert.ok((statuses.get(503) ?? 0) > 0, `no 503 in ${JSON.stringify([...statuses])}`);
      // Before the limit, a cached scrape waited behind every flooder's bcrypt: 12.8 s against
      // 66 ms for one bcrypt (194 times) measured with 64 flooders. Now at most two run at once:
      // 0.55-0.63 s (some 9 times, more when the machine is busy).
      assert.ok(ratio < 50, `cached request under the flood took ${ratio.toFixed(1)}x one bcrypt`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
