#!/usr/bin/env bash
# The whole test suite, from a fresh clone: brings up the local brokers,
# checks formatting and lints, then runs unit and integration tests against
# the real brokers. Exits non-zero on the first failure.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "local broker stack"
scripts/stack.sh up

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo build --workspace --bins (the chaos suite and the compose check run the real binaries)"
cargo build --workspace --bins

step "compose stack: docker-compose config, env vars vs flags, RabbitMQ user rendering"
scripts/compose-check.sh

step "unit and integration tests (real RabbitMQ and Kafka; the chaos suite on its own brokers)"
export AMQP_URL="${AMQP_URL:-amqp://127.0.0.1:5672/%2f}"
export KAFKA_BROKERS="${KAFKA_BROKERS:-127.0.0.1:9092}"
cargo test --workspace --no-fail-fast -- --test-threads "${TEST_THREADS:-2}"

step "fuzzing (every target in fuzz/, ${FUZZ_SECONDS:-25}s each)"
scripts/fuzz.sh
