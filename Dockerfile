# Build: deno task release && docker build -t kvm_exporter .
# Run:   see README.md, "In a container".
# The image is the offline bundle from dist/ (the same files as the tarball and the .deb), run
# by Deno's runtime with the launcher's flags, on distroless/cc (glibc and nothing else).
# tests/deploy/release_test.ts lays out this root file system as files and runs it.
FROM debian:12-slim AS bundle
ARG ARCH=amd64
# dist/ holds one release (deno task release empties it first); its version comes from git.
COPY dist/kvm_exporter-*-linux-${ARCH}.tar.gz /tmp/bundle/
RUN mkdir /opt/kvm_exporter \
  && tar -xzf /tmp/bundle/*.tar.gz -C /opt/kvm_exporter --strip-components=1

FROM gcr.io/distroless/cc-debian12
COPY --from=bundle /opt/kvm_exporter /opt/kvm_exporter
# A user record for uid 65532, for whatever looks it up (libvirtd looks up its clients' uids in
# its own passwd: on the host, add the same line, docs/deployment.md "Container user").
COPY deploy/container/passwd deploy/container/group /etc/
# The launcher's settings (bin/kvm_exporter is a shell script; distroless has no shell): Deno's
# caches stay in memory, nothing is downloaded or written.
ENV DENO_DIR=/dev/null/kvm_exporter DENO_NO_UPDATE_CHECK=1
# Not root: uid 65532, no capability. What kvm_stat reads is readable by any uid once mounted:
# only /sys/kernel/debug itself is root-only (mode 0700), the kvm dir under it is 0755 and its
# stat files 0444/0644; a VMM's /proc/PID/cmdline is 0444.
# --collector.qmp is the exception: connecting to QEMU's QMP sockets needs write access to them,
# which root (or QEMU's user) has; run the container with --user 0 for it (README "In a container").
USER 65532:65532
EXPOSE 9900
# bin/kvm_exporter's command: the single executable's permissions, offline.
ENTRYPOINT ["/opt/kvm_exporter/lib/deno", "run", "--cached-only", "--no-remote", "--frozen", "--no-prompt", "--v8-flags=--max-semi-space-size=2,--max-old-space-size=1536", "--allow-read", "--allow-net", "--allow-env=KVM_EXPORTER_*", "--allow-write=/run,/var/run", "--config", "/opt/kvm_exporter/lib/app/deno.json", "/opt/kvm_exporter/lib/app/main.ts"]
CMD ["--collector.kvmdebug.dir=/stat/kvm", "--path.procfs=/host/proc", "--path.sysfs=/host/sys"]
