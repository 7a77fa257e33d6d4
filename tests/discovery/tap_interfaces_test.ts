import { deepStrictEqual } from "node:assert/strict";
import {
  MAX_TAPS_PER_VM,
  type TapInterface,
  tapInterfacesFromArgv,
} from "../../src/discovery/vmm_cmdline.ts";

const tap = (ifname: string, more: Partial<TapInterface> = {}): TapInterface => ({
  ifname,
  netdev: "",
  mac: "",
  model: "",
  ...more,
});

const CASES: { what: string; argv: string[]; taps: TapInterface[] }[] = [
  {
    what: "plain QEMU: -netdev tap,ifname=,id= with its -device's MAC",
    argv: [
      "qemu-system-x86_64",
      "-netdev",
      "tap,id=n1,ifname=tapvm1,script=no,downscript=no",
      "-device",
      "virtio-net-pci,netdev=n1,mac=52:54:00:AB:CD:EF,id=nic1",
    ],
    taps: [tap("tapvm1", { netdev: "n1", mac: "52:54:00:ab:cd:ef", model: "virtio-net-pci" })],
  },
  {
    what: "Proxmox: type=tap with ifname tap<vmid>i<n>, and a firewall bridge's second NIC",
    argv: [
      "/usr/bin/kvm",
      "-id",
      "100",
      "-netdev",
      "type=tap,id=net0,ifname=tap100i0,script=/var/lib/qemu-server/pve-bridge,downscript=/var/lib/qemu-server/pve-bridgedown,vhost=on",
      "-device",
      "virtio-net-pci,mac=BC:24:11:2E:8A:01,netdev=net0,bus=pci.0,addr=0x12,id=net0,bootindex=102",
      "-netdev",
      "type=tap,id=net1,ifname=tap100i1,script=/var/lib/qemu-server/pve-bridge",
      "-device",
      "e1000,mac=BC:24:11:2E:8A:02,netdev=net1,bus=pci.0,addr=0x13,id=net1",
    ],
    taps: [
      tap("tap100i0", { netdev: "net0", mac: "bc:24:11:2e:8a:01", model: "virtio-net-pci" }),
      tap("tap100i1", { netdev: "net1", mac: "bc:24:11:2e:8a:02", model: "e1000" }),
    ],
  },
  {
    what: "Proxmox's convention where ifname is missing (-id and netN)",
    argv: ["/usr/bin/kvm", "-id", "205", "-netdev", "type=tap,id=net3,vhost=on"],
    taps: [tap("tap205i3", { netdev: "net3" })],
  },
  {
    what: "no convention without Proxmox's -id, nor for a tap passed as an fd",
    argv: [
      "qemu-system-x86_64",
      "-netdev",
      "tap,id=net0",
      "-netdev",
      '{"type":"tap","fd":"34","id":"hostnet0"}',
    ],
    taps: [],
  },
  {
    what: "JSON -netdev and -device",
    argv: [
      "qemu-system-x86_64",
      "-netdev",
      '{"type":"tap","ifname":"vnet7","id":"hostnet0","vhost":true}',
      "-device",
      '{"driver":"virtio-net-pci","netdev":"hostnet0","id":"net0","mac":"52:54:00:00:00:07"}',
    ],
    taps: [tap("vnet7", { netdev: "hostnet0", mac: "52:54:00:00:00:07", model: "virtio-net-pci" })],
  },
  {
    what: "-nic tap with its own MAC and model",
    argv: ["qemu-system-x86_64", "-nic", "tap,ifname=tap9,model=e1000,mac=52:54:00:12:34:56"],
    taps: [tap("tap9", { mac: "52:54:00:12:34:56", model: "e1000" })],
  },
  {
    what: "other netdev types, bad names, a bad MAC and a repeated name are left out",
    argv: [
      "qemu-system-x86_64",
      "-netdev",
      "user,id=u0",
      "-netdev",
      "bridge,id=b0,br=br0",
      "-netdev",
      "tap,id=a,ifname=../../etc",
      "-netdev",
      "tap,id=b,ifname=averyveryverylongname",
      "-netdev",
      "tap,id=c,ifname=has space",
      "-netdev",
      "tap,id=d,ifname=ok0",
      "-netdev",
      "tap,id=e,ifname=ok0",
      "-device",
      "virtio-net-pci,netdev=d,mac=not-a-mac",
      "-netdev",
      "{not json",
    ],
    taps: [tap("ok0", { netdev: "d", model: "virtio-net-pci" })],
  },
];

Deno.test("tapInterfacesFromArgv() finds the tap devices a command line names", () => {
  for (const c of CASES) deepStrictEqual(tapInterfacesFromArgv(c.argv), c.taps, c.what);
});

Deno.test("tapInterfacesFromArgv() takes at most MAX_TAPS_PER_VM taps", () => {
  const argv = ["qemu-system-x86_64"];
  for (let i = 0; i < MAX_TAPS_PER_VM + 10; i++) argv.push("-netdev", `tap,id=n${i},ifname=t${i}`);
  deepStrictEqual(tapInterfacesFromArgv(argv).length, MAX_TAPS_PER_VM);
});
