import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { DomainInfoCache, domainInfoLabels } from "../../src/libvirt/domain_info.ts";

Deno.test("domainInfoLabels() gives libvirt_name and the Nova names it has", async (t) => {
  const cases: [string, Parameters<typeof domainInfoLabels>[0], [string, string][]][] = [
    ["no Nova metadata", { libvirtName: "web", nova: undefined }, [["libvirt_name", "web"]]],
    [
      "every Nova name",
      {
        libvirtName: "instance-0000002a",
        nova: { name: "web-1", projectName: "demo", flavorName: "m1.small", userName: "alice" },
      },
      [
        ["libvirt_name", "instance-0000002a"],
        ["nova_name", "web-1"],
        ["nova_project", "demo"],
        ["nova_flavor", "m1.small"],
      ],
    ],
    [
      "a project without a name (uuid only)",
      { libvirtName: "i", nova: { projectUuid: "p1" } },
      [["libvirt_name", "i"]],
    ],
  ];
  for (const [what, info, want] of cases) {
    await t.step(what, () => deepStrictEqual(domainInfoLabels(info), want));
  }
});

Deno.test("DomainInfoCache keys by UUID and pid, and forgets VMs that went", () => {
  const cache = new DomainInfoCache();
  const vm = { uuid: "6a1f3b2c-0d4e-4f5a-9b8c-7d6e5f4a3b21", pid: 10 };
  cache.set(vm, { libvirtName: "a", nova: undefined });
  cache.set({ pid: 11 }, { libvirtName: "no-uuid", nova: undefined });
  strictEqual(cache.size, 1, "a VM without a UUID is not kept");
  strictEqual(cache.get(vm)?.libvirtName, "a");
  strictEqual(cache.get({ ...vm, pid: 12 }), undefined, "a new QEMU under the same UUID");
  cache.retain([vm]);
  strictEqual(cache.size, 1);
  cache.retain([{ ...vm, pid: 12 }]);
  strictEqual(cache.size, 0);
});
