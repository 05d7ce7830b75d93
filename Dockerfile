# syntax=docker/dockerfile:1
# socketio-exporter container image: a static (musl) binary on distroless/static, run as
# the distroless "nonroot" user. No shell and no HEALTHCHECK: Kubernetes probes /healthz and
# /readyz, compose and other orchestrators do the same (docs/deploy.md).
#
#   docker build -t socketio-exporter:dev \
#     --build-arg SOCKETIO_EXPORTER_REVISION="$(git rev-parse --short=12 HEAD)" .
#
# The builder compiles for <arch>-unknown-linux-musl of the platform it runs on
# (x86_64 or aarch64), so `docker buildx build --platform linux/amd64,linux/arm64` works
# (arm64 under emulation). Dependencies with C code (ring, under rustls) are compiled
# with musl-gcc from musl-tools.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools=1.2.3-1 \
    && rm -rf /var/lib/apt/lists/* \
    && rustup target add "$(uname -m)-unknown-linux-musl"
COPY . .
# build.rs reads the revision from this variable: the build context has no .git.
ARG SOCKETIO_EXPORTER_REVISION=unknown
ENV SOCKETIO_EXPORTER_REVISION=${SOCKETIO_EXPORTER_REVISION}
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    target="$(uname -m)-unknown-linux-musl" \
    && export "CC_$(uname -m)_unknown_linux_musl=musl-gcc" \
    && cargo build --release --locked --target "$target" --bin socketio-exporter \
    && install -D -m 0755 "target/$target/release/socketio-exporter" /out/socketio-exporter

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=0.1.0
ARG SOCKETIO_EXPORTER_REVISION=unknown
LABEL org.opencontainers.image.title="socketio-exporter" \
      org.opencontainers.image.description="Sidecar that reads a Socket.IO app's real per-namespace connection counts (admin-ui) and exports them to Prometheus" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${SOCKETIO_EXPORTER_REVISION}" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot"
COPY --from=builder /out/socketio-exporter /usr/local/bin/socketio-exporter
# The shipped example config; a real deployment mounts its own at this path
# (the Kubernetes manifests mount a ConfigMap over /etc/socketio-exporter).
COPY config.toml /etc/socketio-exporter/config.toml
ENV SOCKETIO_EXPORTER_CONFIG=/etc/socketio-exporter/config.toml
USER 65532:65532
EXPOSE 8797
ENTRYPOINT ["/usr/local/bin/socketio-exporter"]
