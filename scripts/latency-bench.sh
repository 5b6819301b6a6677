#!/usr/bin/env bash
# End-to-end latency of the demo pipeline at a fixed rate (default 1,000
# ticks/s for 60 s): feed-sim, producer (RabbitMQ + Kafka), 2 workers,
# 2 Kafka groups, the stream reader, the bridge and a reader of the bridged
# topic, all release binaries, against the local brokers. Prints p50/p99/max
# per path and the CPU per tick of every process and of both brokers; see
# scripts/latency_bench.py for what is measured and how.
#
#   scripts/latency-bench.sh                                  one run, print only
#   scripts/latency-bench.sh --runs 3 --write docs/benchmarks/latency.md --label "defaults"
#   scripts/latency-bench.sh --group-arg '--fetch-wait 100ms' --producer-arg '--kafka-linger-ms 1'
#   scripts/latency-bench.sh --kafka-only ...                 producer --sink kafka and the two groups only
#   scripts/latency-bench.sh --build ...                      cargo build --release first
#
# Environment: AMQP_URL, MGMT_URL, KAFKA_BROKERS (the local stack's by
# default), CARGO_TARGET_DIR.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
args=()
for arg in "$@"; do
  if [ "$arg" = --build ]; then
    cargo build --release -p tickbridge-feed-sim -p tickbridge-producer -p tickbridge-consumer -p tickbridge-bridge >&2
  else
    args+=("$arg")
  fi
done
exec python3 "$ROOT/scripts/latency_bench.py" "${args[@]}"
