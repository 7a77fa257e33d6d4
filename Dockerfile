# Build: docker build -t kvm_exporter .
# Run:   see README.md, "In a container".
FROM denoland/deno:2.9.6 AS build
WORKDIR /src
COPY deno.json deno.lock main.ts ./
COPY src ./src
COPY tools ./tools
RUN deno task compile /kvm_exporter

# Deno executables need glibc: distroless/cc has it and nothing else.
FROM gcr.io/distroless/cc-debian12
COPY --from=build /kvm_exporter /kvm_exporter
EXPOSE 9900
ENTRYPOINT ["/kvm_exporter"]
CMD ["--collector.kvmdebug.dir=/stat/kvm", "--path.procfs=/host/proc", "--path.sysfs=/host/sys"]
