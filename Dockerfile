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
EXPOSE 9900
ENTRYPOINT ["/kvm_exporter"]
CMD ["--collector.kvmdebug.dir=/stat/kvm", "--path.procfs=/host/proc", "--path.sysfs=/host/sys"]
