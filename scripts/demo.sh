#!/usr/bin/env bash
# The main demo: brings up the local stack, builds in release mode, runs the
# pipeline against the offline feed simulator and prints what happened.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"
DEMO_SECONDS="${DEMO_SECONDS:-20}"

echo "== 1/3 local broker stack"
scripts/stack.sh up

echo "== 2/3 release build"
cargo build --release --workspace

echo "== 3/3 pipeline (${DEMO_SECONDS}s)"
if [ -x target/release/producer ] && [ -x target/release/feed-sim ]; then
  exec "$ROOT/scripts/demo-pipeline.sh"
else
  echo "producer and feed-sim are not built yet; the stack is up:"
  scripts/stack.sh status
fi
