/**
 * A fake VMM as a process of its own: started with QEMU's options
 * (`-name NAME -qmp unix:PATH,server=on,wait=off`), it listens on the QMP
 * socket its command line names and serves the "qemu" fake monitor there
 * until killed. The kernel's evidence about it (its argv, the listening
 * socket among its fds) is real, which a fake monitor inside the test
 * process cannot give.
 *
 * @module
 */

import { qmpSocketsFromArgv } from "../../src/discovery/vmm_cmdline.ts";
import { startFakeQmp } from "./fake_qmp.ts";

if (import.meta.main) {
  const [path] = qmpSocketsFromArgv(["fake_qmp_vmm", ...Deno.args]);
  if (path === undefined) {
    console.error("fake_qmp_vmm: no -qmp unix:PATH,server=on on the command line");
    Deno.exit(2);
  }
  startFakeQmp(path, { behaviour: "qemu" });
}
