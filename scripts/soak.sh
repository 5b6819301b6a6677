#!/usr/bin/env bash
# Soak benchmark (not a test): pushes SOAK_TICKS ticks (default 10,000,000)
# through the whole pipeline and records every binary's resident memory,
# open file descriptors and threads over time:
#
#   feed-sim (full speed, or SOAK_RATE trades/s per symbol)
#     → producer --sink rabbitmq,kafka   (confirms, persistence, idempotence)
#       → worker   on the RabbitMQ work queue
#       → consumer in a Kafka consumer group
#
# This script only builds the release binaries and runs `chaos soak`
# (chaos/src/soak.rs), which does the rest: a private RabbitMQ node and a
# private Apache Kafka node on spare ports (the testkit's, as the chaos
# suite's), so the shared stack on 5672/9092 is neither disturbed nor a
# source of noise; the pipeline as child processes; a sample of each
# process every SOAK_INTERVAL seconds; the delivery check; and then
# scripts/soak_report.py, which writes SOAK.md (tables and the flatness
# verdict) and SOAK.csv (every sample). Exit status is non-zero when a
# binary's RSS is not flat, a process fails, or a tick is missing.
#
#   SOAK_TICKS=200000 scripts/soak.sh        # smoke run, ~20 s of traffic
#   nice -n 5 scripts/soak.sh                # the full 10M run, ~30 min
#
# Knobs (each is also a flag of `chaos soak`, see `chaos soak --help`):
# SOAK_TICKS, SOAK_RATE (0 = full speed), SOAK_INTERVAL (seconds between
# samples, default 5), SOAK_DEDUP_WINDOW (the readers' --dedup-window,
# default 1,000,000, or a quarter of SOAK_TICKS when less, so a smoke run's
# readers fill it and can be judged), SOAK_MAX_SECONDS (stop publishing after this long even
# if SOAK_TICKS is not reached; the report then judges the shorter run and
# says so), SOAK_DRAIN_SECONDS (how long the readers get to catch up,
# default 1800), SOAK_OUT / SOAK_CSV (result files), SOAK_KEEP=1 (keep the
# run directory under out/; a failing run's is always kept),
# SOAK_KAFKA_HEAP_OPTS (the private broker's heap, default -Xms256m -Xmx1g,
# as the shared stack's). Ctrl-C stops the run cleanly and still writes the
# report of what was sampled.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"
export RUST_LOG="${RUST_LOG:-info}"

cargo build --release -p tickbridge-feed-sim -p tickbridge-producer -p tickbridge-consumer -p tickbridge-chaos --bins
exec "${CARGO_TARGET_DIR:-$ROOT/target}/release/chaos" soak "$@"
