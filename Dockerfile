# Build: docker build -t kvm_exporter .
# Run:   see README.md, "In a container".
FROM denoland/deno:2.9.6 AS build
# deno compile downloads its runtime unless DENORT_BIN names a local copy. Offline: put denort
# (same Deno version) in the build context and build with --build-arg DENORT_BIN=/src/denort.
# A build argument is in the environment of RUN, and unset when not given.
ARG DENORT_BIN
# The git revision for kvm_exporter_build_info (.git is not sent to the build).
ARG REVISION
WORKDIR /src
# denort* matches nothing unless an offline build put denort there.
COPY deno.json deno.lock main.ts denort* ./
COPY src ./src
COPY tools ./tools
RUN deno task compile /kvm_exporter

# Deno executables need glibc: distroless/cc has it and nothing else.
FROM gcr.io/distroless/cc-debian12
COPY --from=build /kvm_exporter /kvm_exporter
# Not root: uid 65532 ("nonroot" in distroless), no capability. What kvm_stat reads is readable
# by any uid once mounted: only /sys/kernel/debug itself is root-only (mode 0700), the kvm dir
# under it is 0755 and its stat files 0444/0644; a VMM's /proc/PID/cmdline is 0444.
# --collector.qmp is the exception: connecting to QEMU's QMP sockets needs write access to them,
# which root (or QEMU's user) has; run the container with --user 0 for it (README "In a container").
USER 65532:65532
EXPOSE 9900
ENTRYPOINT ["/kvm_exporter"]
CMD ["--collector.kvmdebug.dir=/stat/kvm", "--path.procfs=/host/proc", "--path.sysfs=/host/sys"]
