#!/usr/bin/env bash
# The main demo: brings up the local stack, builds in release mode, runs the
# whole pipeline against the offline feed simulator for DEMO_SECONDS
# (default 20), replays the topic from offset 0 and prints a summary that
# proves each claim with this run's numbers.
#
#   ./scripts/demo.sh            the demo
#   ./scripts/demo.sh --chart    the demo, then an SVG comparing WebSocket and
#                                polling (also DEMO_CHART=1)
#   ./scripts/demo.sh --keep     keep the queues, stream and topics of earlier
#                                runs (also DEMO_KEEP=1); by default each run
#                                first removes them (scripts/demo-cleanup.sh),
#                                so the brokers hold only the last run's
set -euo pipefail
for arg in "$@"; do
  case "$arg" in
    --chart) export DEMO_CHART=1 ;;
    --keep) export DEMO_KEEP=1 ;;
    *) echo "demo.sh: unknown argument $arg (use --chart or --keep)" >&2; exit 2 ;;
  esac
done
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"

# The dashboard's address, printed first so it can be opened while the
# build runs (demo-pipeline.sh takes a free port if this one is taken and
# says so).
export DASHBOARD_PORT="${DASHBOARD_PORT:-8088}"
echo "== live dashboard: http://127.0.0.1:$DASHBOARD_PORT/ (from step 3/3 on)"

echo "== 1/3 local broker stack (RabbitMQ + Apache Kafka)"
scripts/stack.sh up
if [ "${DEMO_KEEP:-0}" != 1 ]; then
  scripts/demo-cleanup.sh || echo "(could not remove earlier demo runs' resources; continuing)" >&2
fi

echo "== 2/3 release build"
cargo build --release --workspace

echo "== 3/3 pipeline for ${DEMO_SECONDS:-20}s"
exec "$ROOT/scripts/demo-pipeline.sh"
