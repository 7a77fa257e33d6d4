/**
 * A real Prometheus scrapes the exporter over TLS with basic auth, from its own config
 * (`tls_config.ca_file`, `basic_auth`), and sees `up == 1`; with a wrong password, `up == 0`.
 */

import assert from "node:assert/strict";
import { LOOPBACK_ANY_PORT, SAMPLE_ARGS, startExporter } from "../support/exporter_process.ts";
import { prometheusPath, type ScrapeJob, startPrometheus } from "../support/prometheus.ts";
import { bcryptHash, makeCert, onPath } from "../support/tls.ts";

const ready = prometheusPath() !== undefined && onPath("openssl") && onPath("htpasswd");
if (!ready) console.log("prometheus_tls_test: skipped: prometheus, openssl or htpasswd missing");

function scrapeJob(port: number, password: string, job: string): ScrapeJob {
  return {
    name: job,
    targets: [`127.0.0.1:${port}`],
    settings: {
      scheme: "https",
      tls_config: { ca_file: "{{dir}}/ca.crt", server_name: "localhost" },
      basic_auth: { username: "prom", password },
    },
  };
}

Deno.test({
  name: "prometheus scrapes main.ts over TLS with basic auth: up == 1, and 0 with a wrong password",
  ignore: !ready,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_promtls_" });
    try {
      const { certFile } = await makeCert(dir);
      await Deno.writeTextFile(
        `${dir}/web.yml`,
        `tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  prom: ${await bcryptHash(
          "pw",
        )}\n`,
      );
      await using exporter = await startExporter([
        ...SAMPLE_ARGS,
        LOOPBACK_ANY_PORT,
        `--web.config.file=${dir}/web.yml`,
      ]);
      await using prometheus = await startPrometheus({
        jobs: [scrapeJob(exporter.port, "pw", "kvm"), scrapeJob(exporter.port, "wrong", "kvm_bad")],
        files: { "ca.crt": await Deno.readTextFile(certFile) },
      });
      await prometheus.waitForQuery('up{job="kvm"}', (v) => v === "1", { what: "up == 1" });
      await prometheus.waitForQuery('up{job="kvm_bad"}', (v) => v === "0", { what: "bad up == 0" });
      const exits = await prometheus.query('kvm_stat_exits_count{job="kvm",domain="global"}');
      assert.equal(exits.length, 1, "a KVM series stored from the TLS scrape");
      const bad = (await prometheus.targets()).find((t) => t.health === "down");
      assert.match(bad?.lastError ?? "", /401/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
