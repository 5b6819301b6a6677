# One image for every tickbridge binary; docker-compose.yml picks the binary
# with `command:`.
#
#   docker build -t tickbridge .
#   docker run --rm tickbridge producer --help
#
# Builder: the official Rust image on Debian bookworm, pinned to the
# toolchain the workspace is built and tested with. rdkafka is built with
# its default mklove `./configure && make` (the workspace does not enable
# rdkafka's `cmake-build` feature), with `ssl` (OpenSSL, linked dynamically)
# and `libz` (the system zlib): that needs a C and C++ compiler, make,
# pkg-config, perl/python3 for the build scripts and the OpenSSL and zlib
# headers. The image ships most of them already; listing them keeps the
# build independent of what the base image happens to carry.
FROM rust:1.95.0-bookworm AS builder
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential pkg-config libssl-dev zlib1g-dev perl python3 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# --locked: the image is built from exactly the versions in Cargo.lock.
RUN cargo build --release --locked \
      -p tickbridge-feed-sim -p tickbridge-producer -p tickbridge-consumer \
      -p tickbridge-bridge -p tickbridge-broker -p tickbridge-dashboard --bins \
 && mkdir -p /out \
 && cp target/release/feed-sim target/release/producer target/release/worker \
       target/release/consumer target/release/bridge target/release/stack-check \
       target/release/dashboard /out/

# Runtime: Debian bookworm slim, pinned to a point release. OpenSSL (for
# librdkafka's TLS) and zlib are the only shared libraries beyond libc;
# RabbitMQ, WebSocket and REST TLS use rustls with compiled-in roots;
# ca-certificates is the trust store for librdkafka's TLS (OpenSSL).
FROM debian:12.11-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates libssl3 zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 tickbridge \
 && useradd --system --uid 10001 --gid tickbridge --home-dir /var/lib/tickbridge \
      --create-home --shell /usr/sbin/nologin tickbridge \
 && install -d -o tickbridge -g tickbridge -m 0750 /var/lib/tickbridge/data
COPY --from=builder /out/ /usr/local/bin/
# The producer's JSON Lines (`--out-dir`, default `out`) and the readers'
# `--jsonl` / `--summary-json` files land under the working directory;
# `data/` exists (owned by tickbridge) so a named volume mounted there starts
# out writable by the non-root user.
WORKDIR /var/lib/tickbridge
USER tickbridge:tickbridge
# No default binary on purpose: `docker run tickbridge` prints what to run.
CMD ["sh", "-c", "echo 'run one of: feed-sim producer worker consumer bridge dashboard stack-check (each has --help)'; exit 2"]
