import { startExporter, SAMPLE_ARGS, LOOPBACK_ANY_PORT } from "../support/exporter_process.ts";
Deno.test("keepalive", async () => {
  const e = await startExporter([...SAMPLE_ARGS, LOOPBACK_ANY_PORT]);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: e.port });
  await conn.write(new TextEncoder().encode("GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n"));
  const buf = new Uint8Array(4096); const n = await conn.read(buf);
  console.log(new TextDecoder().decode(buf.subarray(0, n!)));
  const t0 = Date.now();
  Deno.kill(e.pid, "SIGTERM");
  try { console.log(await e.waitForExit(8000), Date.now() - t0); } catch (err) { console.log("ERR", (err as Error).message, Date.now() - t0); }
  const n2 = await conn.read(buf); console.log("conn read after:", n2);
  conn.close();
});
