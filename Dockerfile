# syntax=docker/dockerfile:1
# The frontdesk image: the one binary on distroless/cc (glibc and libgcc only: no shell, no
# package manager), run as distroless's `nonroot` user (65532), which the chart also sets.
#
#   docker build -t ghcr.io/frontdesk-dev/frontdesk:0.1.0 .

# The toolchain the workspace is tested with (rust-version in Cargo.toml is the minimum).
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS builder
WORKDIR /src
COPY . .
# Cache mounts keep the registry and target dir between builds; the binary is copied out of
# the cached target dir because a cache mount is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin frontdesk \
 && install -D -m 0755 target/release/frontdesk /out/frontdesk

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/frontdesk /usr/local/bin/frontdesk
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/frontdesk"]
CMD ["run", "--help"]
