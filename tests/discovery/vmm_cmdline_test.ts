import { deepStrictEqual, strictEqual } from "node:assert/strict";
import {
  parseQemuOpts,
  qmpSocketsFromArgv,
  splitCmdline,
  vmNameFromArgv,
  vmUuidFromArgv,
} from "../../src/discovery/vmm_cmdline.ts";

// Command lines as libvirt, Proxmox, OpenStack (via libvirt), plain QEMU,
// Firecracker and cloud-hypervisor start their VMMs.
const NAME_CASES: { what: string; argv: string[]; name: string | undefined }[] = [
  {
    what: "libvirt: -name guest=NAME,debug-threads=on",
    argv: [
      "/usr/bin/qemu-system-x86_64",
      "-name",
      "guest=rhel9-web,debug-threads=on",
      "-S",
      "-object",
      '{"qom-type":"secret","id":"masterKey0"}',
      "-machine",
      "pc-q35-7.2,usb=off,dump-guest-core=off",
      "-accel",
      "kvm",
    ],
    name: "rhel9-web",
  },
  {
    what: "OpenStack nova via libvirt: instance name",
    argv: ["/usr/libexec/qemu-kvm", "-name", "guest=instance-0000002a,debug-threads=on", "-S"],
    name: "instance-0000002a",
  },
  {
    what: "Proxmox: -name NAME,debug-threads=on",
    argv: [
      "/usr/bin/kvm",
      "-id",
      "101",
      "-name",
      "db-01,debug-threads=on",
      "-no-shutdown",
      "-chardev",
      "socket,id=qmp,path=/var/run/qemu-server/101.qmp,server=on,wait=off",
      "-mon",
      "chardev=qmp,mode=control",
    ],
    name: "db-01",
  },
  { what: "plain QEMU: -name NAME", argv: ["qemu-system-x86_64", "-name", "test"], name: "test" },
  {
    what: "escaped comma",
    argv: ["qemu-system-x86_64", "-name", 'guest=a,,b "q" ünï,debug-threads=on'],
    name: 'a,b "q" ünï',
  },
  {
    what: "--name spelling",
    argv: ["qemu-system-x86_64", "--name", "guest=dashed"],
    name: "dashed",
  },
  {
    what: "last -name wins, as in QEMU",
    argv: ["qemu-system-x86_64", "-name", "first", "-name", "second"],
    name: "second",
  },
  { what: "no -name", argv: ["qemu-system-x86_64", "-m", "64"], name: undefined },
  { what: "empty name", argv: ["qemu-system-x86_64", "-name", "guest="], name: undefined },
  { what: "-name without a value", argv: ["qemu-system-x86_64", "-name"], name: undefined },
  {
    what: "Firecracker --id ID",
    argv: ["/usr/bin/firecracker", "--api-sock", "/run/fc.sock", "--id", "fc-vm-7"],
    name: "fc-vm-7",
  },
  {
    what: "Firecracker --id=ID",
    argv: ["firecracker", "--id=fc-vm-8", "--api-sock", "/run/fc.sock"],
    name: "fc-vm-8",
  },
  {
    what: "cloud-hypervisor has no name",
    argv: ["/usr/bin/cloud-hypervisor", "--api-socket", "/run/ch.sock", "--cpus", "boot=2"],
    name: undefined,
  },
];

Deno.test("vmNameFromArgv() reads each VMM's name option", async (t) => {
  for (const c of NAME_CASES) {
    await t.step(c.what, () => strictEqual(vmNameFromArgv(c.argv), c.name));
  }
});

Deno.test("splitCmdline() splits on NUL and drops the trailing one", () => {
  deepStrictEqual(splitCmdline("qemu\0-name\0a b\0"), ["qemu", "-name", "a b"]);
  deepStrictEqual(splitCmdline(""), []);
});

Deno.test("parseQemuOpts() handles implied keys, flags and escaped commas", async (t) => {
  const cases: [string, string | undefined, [string, string][]][] = [
    ["guest=a,debug-threads=on", "guest", [["guest", "a"], ["debug-threads", "on"]]],
    ["a,,b,process=x", "guest", [["guest", "a,b"], ["process", "x"]]],
    ["unix:/s,server,nowait", "path", [["path", "unix:/s"], ["server", "on"], ["nowait", "on"]]],
    ["x=1,,2", undefined, [["x", "1,2"]]],
    ["k=v=w", undefined, [["k", "v=w"]]],
  ];
  for (const [text, implied, expected] of cases) {
    await t.step(text, () => deepStrictEqual([...parseQemuOpts(text, implied)], expected));
  }
});

Deno.test("qmpSocketsFromArgv() finds -qmp unix: and -chardev used by -mon mode=control", async (t) => {
  const cases: { what: string; argv: string[]; sockets: string[] }[] = [
    {
      what: "-qmp unix:PATH,server=on,wait=off",
      argv: ["qemu", "-qmp", "unix:/run/a.qmp,server=on,wait=off"],
      sockets: ["/run/a.qmp"],
    },
    {
      what: "old server,nowait spelling",
      argv: ["qemu", "-qmp", "unix:/run/b.qmp,server,nowait"],
      sockets: ["/run/b.qmp"],
    },
    {
      what: "Proxmox chardev + mon",
      argv: NAME_CASES[2]!.argv,
      sockets: ["/var/run/qemu-server/101.qmp"],
    },
    {
      what: "a readline monitor is not QMP",
      argv: [
        "qemu",
        "-chardev",
        "socket,id=hmp,path=/run/hmp.sock,server=on",
        "-mon",
        "chardev=hmp",
      ],
      sockets: [],
    },
    {
      what: "libvirt passes an fd: no path to connect to",
      argv: [
        "qemu",
        "-chardev",
        "socket,id=charmonitor,fd=31,server=on,wait=off",
        "-mon",
        "chardev=charmonitor,id=monitor,mode=control",
      ],
      sockets: [],
    },
    {
      what: "tcp QMP is not a unix socket",
      argv: ["qemu", "-qmp", "tcp:127.0.0.1:4444,server"],
      sockets: [],
    },
    {
      what: "path with an escaped comma",
      argv: ["qemu", "-qmp", "unix:/run/a,,b.qmp,server=on"],
      sockets: ["/run/a,b.qmp"],
    },
  ];
  for (const c of cases) {
    await t.step(c.what, () => deepStrictEqual(qmpSocketsFromArgv(c.argv), c.sockets));
  }
});

Deno.test("vmUuidFromArgv() reads -uuid as libvirt, Proxmox and plain QEMU pass it", async (t) => {
  const cases: { what: string; argv: string[]; uuid: string | undefined }[] = [
    {
      what: "libvirt",
      argv: [
        "/usr/bin/qemu-system-x86_64",
        "-name",
        "guest=web,debug-threads=on",
        "-smp",
        "2,sockets=2,cores=1,threads=1",
        "-uuid",
        "6a1f3b2c-0d4e-4f5a-9b8c-7d6e5f4a3b21",
        "-display",
        "none",
      ],
      uuid: "6a1f3b2c-0d4e-4f5a-9b8c-7d6e5f4a3b21",
    },
    {
      what: "upper case is lowered",
      argv: ["qemu-system-x86_64", "-uuid", "6A1F3B2C-0D4E-4F5A-9B8C-7D6E5F4A3B21"],
      uuid: "6a1f3b2c-0d4e-4f5a-9b8c-7d6e5f4a3b21",
    },
    {
      what: "--uuid spelling",
      argv: ["qemu-system-x86_64", "--uuid", "00000000-0000-0000-0000-000000000001"],
      uuid: "00000000-0000-0000-0000-000000000001",
    },
    {
      what: "the last one wins, as in QEMU",
      argv: [
        "qemu-system-x86_64",
        "-uuid",
        "00000000-0000-0000-0000-000000000001",
        "-uuid",
        "00000000-0000-0000-0000-000000000002",
      ],
      uuid: "00000000-0000-0000-0000-000000000002",
    },
    { what: "none", argv: ["qemu-system-x86_64", "-name", "x"], uuid: undefined },
    { what: "not a UUID", argv: ["qemu-system-x86_64", "-uuid", "nope"], uuid: undefined },
    { what: "missing value", argv: ["qemu-system-x86_64", "-uuid"], uuid: undefined },
    {
      what: "a -uuid inside another option's value is not one",
      argv: ["qemu-system-x86_64", "-append", "-uuid 00000000-0000-0000-0000-000000000001"],
      uuid: undefined,
    },
  ];
  for (const c of cases) {
    await t.step(c.what, () => strictEqual(vmUuidFromArgv(c.argv), c.uuid));
  }
});
