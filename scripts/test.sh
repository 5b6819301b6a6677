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

step "cargo clippy --all-targets --all-features -- -D warnings"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "cargo build --workspace --bins (the chaos suite and the compose check run the real binaries)"
cargo build --workspace --bins

step "compose stack: docker-compose config, env vars vs flags, RabbitMQ user rendering"
scripts/compose-check.sh

step "docs: the commands README.md and docs/ mark runnable run, and their relative links resolve"
scripts/doc-commands.sh --self-test
scripts/doc-commands.sh

step "unit and integration tests (real RabbitMQ and Kafka; the chaos suite on its own brokers)"
export AMQP_URL="${AMQP_URL:-amqp://127.0.0.1:5672/%2f}"
export KAFKA_BROKERS="${KAFKA_BROKERS:-127.0.0.1:${KAFKA_PORT:-9092}}"
TEST_LOG="$ROOT/target/test-output.log"
mkdir -p "$ROOT/target"
set +e
cargo test --workspace --all-features --no-fail-fast -- --test-threads "${TEST_THREADS:-2}" 2>&1 | tee "$TEST_LOG"
tests_rc=${PIPESTATUS[0]}
set -e
if [ "$tests_rc" -ne 0 ]; then
    # The full output is long and a failing test's panic sits far above its
    # end; repeat every panic with its message last, where a reader of the
    # log's tail (CI) sees it. The whole output stays in $TEST_LOG.
    step "FAILED: the panics of the failing tests (whole output in $TEST_LOG)"
    grep -n -A 14 -E "^---- .* stdout ----$|panicked at" "$TEST_LOG" \
        | grep -v -E "^[0-9]+-[0-9T:.-]+Z +(INFO|DEBUG)" | cut -c1-400 || true
    grep -E '^    [A-Za-z_:0-9]+$|^error: [0-9]+ targets? failed|^    `' "$TEST_LOG" | tail -40 || true
    exit "$tests_rc"
fi

# ---- dashboard browser test (one step of its own) --------------------------
# The whole pipeline against the feed simulator, the dashboard page in
# Debian's headless chromium driven by playwright-core; installs chromium
# (apt) and the lock file's npm packages (npm ci) when missing.
step "dashboard in a real browser (chromium + playwright-core; pipeline on the feed simulator)"
dashboard/e2e/run.sh
# ---------------------------------------------------------------------------

step "fuzzing (every target in fuzz/, ${FUZZ_SECONDS:-25}s each)"
scripts/fuzz.sh
