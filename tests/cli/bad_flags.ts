/**
 * Bad command lines and environments, shared by the parseFlags() unit tests and the main.ts
 * process tests: each must be refused with a one-line message (exit 2 from main.ts).
 *
 * @module
 */

/** A refused command line. */
export interface BadFlags {
  /** Arguments of main.ts. */
  args: string[];
  /** Environment variables set for the run. */
  env?: Record<string, string>;
  /** A fragment the one-line message must contain (the flag or variable at fault). */
  says: string;
}

/** Bad command lines, and a fragment the one-line message must contain. */
export const BAD_FLAGS: readonly BadFlags[] = [
  { args: ["--bogus"], says: "--bogus" },
  { args: ["extra"], says: "extra" },
  { args: ["--collector.dir.depth=-1"], says: "--collector.dir.depth" },
  { args: ["--collector.dir.depth", "two"], says: "--collector.dir.depth" },
  { args: ["--collector.dir.depth=1.5"], says: "--collector.dir.depth" },
  { args: ["--web.max-requests=many"], says: "--web.max-requests" },
  { args: ["--web.max-requests=-1"], says: "--web.max-requests" },
  { args: ["--web.scrape-timeout=10"], says: "--web.scrape-timeout" },
  { args: ["--web.scrape-timeout=0s"], says: "--web.scrape-timeout" },
  { args: ["--web.max-connections=0"], says: "--web.max-connections" },
  { args: ["--web.telemetry-path=/a//b"], says: "--web.telemetry-path" },
  { args: ["--web.telemetry-path=/%6detrics"], says: "--web.telemetry-path" },
  { args: ["--web.read-header-timeout=0s"], says: "--web.read-header-timeout" },
  { args: ["--web.idle-timeout=soon"], says: "--web.idle-timeout" },
  { args: ["--web.listen-address=127.0.0.1"], says: "--web.listen-address" },
  { args: ["--web.listen-address=localhost:"], says: "--web.listen-address" },
  { args: ["--web.listen-address=:70000"], says: "--web.listen-address" },
  { args: ["--web.telemetry-path=metrics"], says: "--web.telemetry-path" },
  { args: ["--web.telemetry-path=/"], says: "--web.telemetry-path" },
  { args: ["--collector.kvm_stat=maybe"], says: "--collector.kvm_stat" },
  { args: ["--debug=yes"], says: "--debug" },
  { args: ["--collector.kvm_stat.readers=-1"], says: "--collector.kvm_stat.readers" },
  { args: ["--collector.kvm_stat.readers=65"], says: "--collector.kvm_stat.readers" },
  { args: ["--collector.kvm_stat.files-exclude=("], says: "--collector.kvm_stat.files-exclude" },
  { args: ["--collector.libvirt.device-include=["], says: "--collector.libvirt.device-include" },
  {
    args: ["--collector.libvirt.interface-exclude=*"],
    says: "--collector.libvirt.interface-exclude",
  },
  { args: ["--collector.libvirt.block=maybe"], says: "--collector.libvirt.block" },
  { args: ["--collector.kvm_stat.files-include=[a"], says: "--collector.kvm_stat.files-include" },
  { args: ["--log.level=verbose"], says: "--log.level" },
  { args: ["--log.format=xml"], says: "--log.format" },
  { args: [], env: { KVM_EXPORTER_COLLECTOR_DIR_DEPTH: "x" }, says: "COLLECTOR_DIR_DEPTH" },
  { args: [], env: { KVM_EXPORTER_COLLECTOR_KVM_STAT: "no" }, says: "KVM_EXPORTER_COLLECTOR" },
];
