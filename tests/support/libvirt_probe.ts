/**
 * Run as a child process with chosen Deno permissions: calls get-all-domain-stats
 * once on the socket given as the first argument and prints one JSON line,
 * `{"records":N}` or `{"reason":"...","message":"..."}`.
 *
 * @module
 */

import { LibvirtClient, LibvirtError } from "../../src/libvirt/libvirt_client.ts";
import { VIR_DOMAIN_STATS } from "../../src/libvirt/remote_protocol.ts";

const client = new LibvirtClient({ path: Deno.args[0]!, timeoutMs: 5000 });
try {
  const records = await client.getAllDomainStats(VIR_DOMAIN_STATS.state, 0);
  console.log(JSON.stringify({ records: records.length }));
} catch (error) {
  const reason = error instanceof LibvirtError ? error.reason : "uncaught";
  console.log(JSON.stringify({ reason, message: (error as Error).message }));
} finally {
  client.close();
}
