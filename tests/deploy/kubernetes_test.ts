/**
 * deploy/kubernetes: every manifest is valid against the Kubernetes API
 * schemas (and the Prometheus Operator's for the PodMonitor), and the three
 * fit together. No cluster runs here.
 *
 * @module
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import yaml from "js-yaml";
import { DaemonSet } from "kubernetes-models/apps/v1";
import { Service } from "kubernetes-models/v1";
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

const root = new URL("../../", import.meta.url).pathname;
const DIR = `${root}deploy/kubernetes`;

/** Every document of every YAML file in deploy/kubernetes, with the file it came from. */
async function loadManifests(): Promise<{ file: string; doc: Record<string, unknown> }[]> {
  const out: { file: string; doc: Record<string, unknown> }[] = [];
  const files: string[] = [];
  for await (const entry of Deno.readDir(DIR)) {
    if (entry.isFile && entry.name.endsWith(".yaml")) files.push(entry.name);
  }
  for (const file of files.sort()) {
    for (const doc of yaml.loadAll(await Deno.readTextFile(`${DIR}/${file}`))) {
      if (doc !== null) out.push({ file, doc: doc as Record<string, unknown> });
    }
  }
  return out;
}

/** The model class for a manifest's apiVersion and kind. */
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  "apps/v1 DaemonSet": DaemonSet,
  "v1 Service": Service,
  "monitoring.coreos.com/v1 PodMonitor": PodMonitor,
};

function byKind(manifests: { doc: Record<string, unknown> }[], kind: string): never {
  const found = manifests.filter((m) => m.doc.kind === kind);
  strictEqual(found.length, 1, `one ${kind}`);
  return found[0]!.doc as never;
}

Deno.test("deploy/kubernetes manifests validate against the API schemas", async () => {
  const manifests = await loadManifests();
  deepStrictEqual(manifests.map((m) => `${m.doc.apiVersion} ${m.doc.kind}`).sort(), [
    "apps/v1 DaemonSet",
    "monitoring.coreos.com/v1 PodMonitor",
    "v1 Service",
  ]);
  for (const { file, doc } of manifests) {
    const Model = MODELS[`${doc.apiVersion} ${doc.kind}`]!;
    // validate() checks types, enums and required fields; it lets unknown fields through, so the
    // fields that matter are asserted below and in least_privilege_test.ts.
    try {
      new Model(doc as never).validate();
    } catch (error) {
      throw new Error(`${file}: ${(error as Error).message}`);
    }
  }
});

Deno.test("deploy/kubernetes validation catches a wrong type (the check can fail)", () => {
  const bad = {
    apiVersion: "apps/v1",
    kind: "DaemonSet",
    metadata: { name: "x" },
    spec: {
      selector: {},
      template: { spec: { containers: [{ name: "x", securityContext: { privileged: "no" } }] } },
    },
  };
  let message = "";
  try {
    new DaemonSet(bad as never).validate();
  } catch (error) {
    message = (error as Error).message;
  }
  ok(message.includes("privileged must be boolean"), message);
});

Deno.test("the DaemonSet runs on KubeVirt nodes, probes the health endpoints, and has limits", async () => {
  const ds = new DaemonSet(byKind(await loadManifests(), "DaemonSet"));
  const pod = ds.spec!.template.spec!;
  deepStrictEqual(pod.nodeSelector, { "kubevirt.io/schedulable": "true" });
  deepStrictEqual(ds.spec!.selector.matchLabels, ds.spec!.template.metadata!.labels);
  strictEqual(pod.containers.length, 1);
  const container = pod.containers[0]!;
  strictEqual(container.livenessProbe?.httpGet?.path, "/-/healthy");
  strictEqual(container.readinessProbe?.httpGet?.path, "/-/ready");
  strictEqual(container.livenessProbe?.httpGet?.port, "metrics");
  deepStrictEqual(container.ports, [{ name: "metrics", containerPort: 9900, protocol: "TCP" }]);
  for (const kind of ["requests", "limits"] as const) {
    const resources = container.resources?.[kind];
    ok(resources?.cpu !== undefined && resources.memory !== undefined, kind);
  }
  // The image's default paths, given explicitly.
  deepStrictEqual(container.args?.slice(0, 3), [
    "--collector.kvmdebug.dir=/stat/kvm",
    "--path.procfs=/host/proc",
    "--path.sysfs=/host/sys",
  ]);
});

Deno.test("the Service and the PodMonitor select the DaemonSet's pods and its metrics port", async () => {
  const manifests = await loadManifests();
  const ds = new DaemonSet(byKind(manifests, "DaemonSet"));
  const svc = new Service(byKind(manifests, "Service"));
  const pm = new PodMonitor(byKind(manifests, "PodMonitor"));
  const labels = ds.spec!.template.metadata!.labels;
  deepStrictEqual(svc.spec!.selector, labels);
  strictEqual(svc.spec!.clusterIP, "None");
  strictEqual(svc.spec!.ports![0]!.targetPort, "metrics");
  deepStrictEqual(pm.spec.selector.matchLabels, labels);
  const endpoint = pm.spec.podMetricsEndpoints![0]!;
  strictEqual(endpoint.port, "metrics");
  // The rules select job="kvm_exporter".
  ok(
    endpoint.relabelings?.some((r) => r.targetLabel === "job" && r.replacement === "kvm_exporter"),
  );
  for (const m of [ds, svc, pm]) strictEqual(m.metadata?.namespace, "monitoring");
});
