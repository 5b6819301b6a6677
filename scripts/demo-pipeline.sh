#!/usr/bin/env bash
# The pipeline part of the demo (scripts/demo.sh runs the stack and the build
# first). Runs, against the local brokers and the offline feed simulator:
#   feed-sim (with injected gaps, duplicates, malformed frames, disconnects)
#   producer --via ws    → RabbitMQ + Kafka + JSON Lines
#   producer --via poll  → JSON Lines (the batch twin of the stream)
#   2 workers on the RabbitMQ work queue (one failing on purpose)
#   2 Kafka consumer groups, 1 RabbitMQ stream reader
#   bridge RabbitMQ → Kafka (its own queue → a second topic)
#   dashboard (its own Kafka group; scrapes every process's /metrics) on
#   http://127.0.0.1:${DASHBOARD_PORT:-8088}/ (a free port if that one is taken)
# then `consumer --replay-from 0`, and prints a summary built from what each
# process reported. Every resource name is fresh per run, so the numbers are
# this run's alone. With --chart (or DEMO_CHART=1) it then draws the
# streaming-vs-polling SVG with the `report` binary and prints its path.
set -euo pipefail
for arg in "$@"; do
  case "$arg" in
    --chart) DEMO_CHART=1 ;;
    *) echo "demo-pipeline.sh: unknown argument $arg (use --chart)" >&2; exit 2 ;;
  esac
done
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# DEMO_BIN: where the binaries are (the browser test uses the debug build).
BIN="${DEMO_BIN:-$ROOT/target/release}"
SECONDS_RUN="${DEMO_SECONDS:-20}"
RATE="${DEMO_RATE:-150}"
SYMBOLS="${DEMO_SYMBOLS:-BTC-USDT,ETH-USDT,SOL-USDT}"
RUN_ID="demo-$(date +%H%M%S)"
OUT="$ROOT/out/$RUN_ID"
PREFIX="$RUN_ID"
TOPIC="$RUN_ID"
AMQP_URL="${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
KAFKA_BROKERS="${KAFKA_BROKERS:-127.0.0.1:9092}"
mkdir -p "$OUT"
export RUST_LOG="${RUST_LOG:-info}"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

say() { printf '\033[1m[demo %5ss]\033[0m %s\n' "$SECONDS" "$*"; }

say "run $RUN_ID: exchange prefix '$PREFIX', Kafka topic '$TOPIC', output in out/$RUN_ID/"

# Every process serves /metrics on a port of its own, for the dashboard.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port_free() { python3 -c 'import socket,sys; s=socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null; }
DASH_PORT="${DASHBOARD_PORT:-8088}"
port_free "$DASH_PORT" || DASH_PORT="$(free_port)"
declare -A MPORT
for n in worker-1 worker-2 group-analytics group-archive stream-reader bridge producer-ws producer-poll; do
  MPORT[$n]="$(free_port)"
done
maddr() { echo "--metrics-addr 127.0.0.1:${MPORT[$1]}"; }
SCRAPES=()
for n in producer-ws producer-poll worker-1 worker-2 group-analytics group-archive stream-reader bridge; do
  SCRAPES+=(--scrape "$n=http://127.0.0.1:${MPORT[$n]}/metrics")
done
"$BIN/dashboard" --listen "127.0.0.1:$DASH_PORT" --kafka-brokers "$KAFKA_BROKERS" --kafka-topic "$TOPIC" \
  --group "$RUN_ID-dashboard" --start earliest --topic-wait 120s "${SCRAPES[@]}" \
  --summary-json "$OUT/dashboard.json" >"$OUT/dashboard.out" 2>"$OUT/dashboard.log" &
PIDS+=($!); DASH=$!
say "dashboard: http://127.0.0.1:$DASH_PORT/   (live while the demo runs; replay button at the top right)"

# 1. Feed simulator with faults, so gap detection and dedup have work to do.
"$BIN/feed-sim" --listen 127.0.0.1:0 --rate "$RATE" --symbols "$SYMBOLS" \
  --gap-every 700 --gap-size 2 --dup-every 450 --malformed-every 900 --close-every 2500 \
  >"$OUT/feed-sim.out" 2>"$OUT/feed-sim.log" &
PIDS+=($!); SIM_PID=$!
for _ in $(seq 1 50); do grep -q "listening on" "$OUT/feed-sim.out" 2>/dev/null && break; sleep 0.1; done
SIM_ADDR="$(sed -n 's/^feed-sim listening on //p' "$OUT/feed-sim.out" | head -1)"
[ -n "$SIM_ADDR" ] || { echo "feed-sim did not start; see $OUT/feed-sim.log" >&2; exit 1; }
say "feed-sim on $SIM_ADDR ($RATE trades/s per symbol; faults injected)"

# 2. Readers: two competing workers, two broadcast groups, one stream reader.
COMMON_IDLE="--exit-when-idle ${DEMO_IDLE:-15s} --quiet --stats-interval 5s"
WORKER="--amqp-url $AMQP_URL --amqp-prefix $PREFIX --declare-topology"
"$BIN/worker" $WORKER --name worker-1 $(maddr worker-1) --fail-rate 0.05 --max-retries 1 \
  --jsonl "$OUT/worker-1.jsonl" --summary-json "$OUT/worker-1.json" $COMMON_IDLE 2>"$OUT/worker-1.log" &
PIDS+=($!); W1=$!
"$BIN/worker" $WORKER --name worker-2 $(maddr worker-2) \
  --jsonl "$OUT/worker-2.jsonl" --summary-json "$OUT/worker-2.json" $COMMON_IDLE 2>"$OUT/worker-2.log" &
PIDS+=($!); W2=$!
"$BIN/consumer" --kafka-brokers "$KAFKA_BROKERS" --kafka-topic "$TOPIC" --group "$RUN_ID-analytics" --name group-analytics --topic-wait 60s $(maddr group-analytics) \
  --summary-json "$OUT/group-analytics.json" $COMMON_IDLE 2>"$OUT/group-analytics.log" &
PIDS+=($!); G1=$!
"$BIN/consumer" --kafka-brokers "$KAFKA_BROKERS" --kafka-topic "$TOPIC" --group "$RUN_ID-archive" --name group-archive --topic-wait 60s $(maddr group-archive) \
  --summary-json "$OUT/group-archive.json" $COMMON_IDLE 2>"$OUT/group-archive.log" &
PIDS+=($!); G2=$!
sleep 1   # the workers declare the topology, stream queue included
"$BIN/consumer" --from rabbitmq-stream --amqp-url "$AMQP_URL" --amqp-prefix "$PREFIX" --replay-from first --name stream-reader --topic-wait 30s $(maddr stream-reader) \
  --summary-json "$OUT/stream-reader.json" $COMMON_IDLE 2>"$OUT/stream-reader.log" &
PIDS+=($!); SR=$!
READERS=($W1 $W2 $G1 $G2 $SR)

# The bridge copies everything published on RabbitMQ into a second Kafka
# topic, at least once: it reads its own queue, bound to the exchange.
MGMT="http://guest:guest@127.0.0.1:15672/api"
curl -fsS -X PUT -H 'content-type: application/json' -d '{"durable":true}' \
  "$MGMT/queues/%2f/$PREFIX.bridge" >/dev/null \
  && curl -fsS -X POST -H 'content-type: application/json' -d '{"routing_key":"#"}' \
  "$MGMT/bindings/%2f/e/$PREFIX/q/$PREFIX.bridge" >/dev/null \
  || { echo "could not declare the bridge queue through the management API" >&2; exit 1; }
"$BIN/bridge" rabbitmq-to-kafka --amqp-url "$AMQP_URL" --amqp-prefix "$PREFIX" --queue "$PREFIX.bridge" \
  --kafka-brokers "$KAFKA_BROKERS" --kafka-topic "$TOPIC-bridged" --declare-topology --name bridge $(maddr bridge) \
  >"$OUT/bridge.out" 2>"$OUT/bridge.log" &
PIDS+=($!); BR=$!

sleep 3   # let the Kafka groups join before the first tick

# 3. Producers: the WebSocket stream and the poller, side by side.
say "producer (WebSocket → RabbitMQ + Kafka + JSON Lines) and poller (REST, every 1s) for ${SECONDS_RUN}s"
"$BIN/producer" --exchange binance --symbols "$SYMBOLS" --url "ws://$SIM_ADDR" \
  --sink rabbitmq,kafka,jsonl --out-dir "$OUT" --amqp-url "$AMQP_URL" --amqp-prefix "$PREFIX" \
  --kafka-brokers "$KAFKA_BROKERS" --kafka-topic "$TOPIC" --max-seconds "$SECONDS_RUN" \
  --stats-interval 1s $(maddr producer-ws) --report "$OUT/producer-ws.json" >/dev/null 2>"$OUT/producer-ws.log" &
PIDS+=($!); PW=$!
"$BIN/producer" --exchange binance --symbols "$SYMBOLS" --via poll --rest-url "http://$SIM_ADDR" \
  --poll-interval 1s --poll-limit 100 --sink jsonl --out-dir "$OUT" --max-seconds "$SECONDS_RUN" \
  --stats-interval 1s $(maddr producer-poll) --report "$OUT/producer-poll.json" >/dev/null 2>"$OUT/producer-poll.log" &
PIDS+=($!); PP=$!

count() { [ -f "$1" ] && wc -l <"$1" | tr -d ' ' || echo 0; }
while kill -0 "$PW" 2>/dev/null; do
  sleep 3
  say "streamed=$(count "$OUT"/stream_ws_*.jsonl) polled=$(count "$OUT"/poll_*.jsonl) worker-1=$(count "$OUT/worker-1.jsonl") worker-2=$(count "$OUT/worker-2.jsonl")"
done
wait "$PW" || { echo "producer failed; see $OUT/producer-ws.log" >&2; exit 1; }
wait "$PP" || true
say "producers done; readers drain and exit after ${DEMO_IDLE:-15s} of quiet (a loaded machine can pause a reader for seconds)"
for p in "${READERS[@]}"; do
  while kill -0 "$p" 2>/dev/null; do sleep 2; say "waiting for readers to drain ..."; done
  wait "$p" || true
done
kill "$SIM_PID" 2>/dev/null || true
kill -TERM "$BR" 2>/dev/null || true
wait "$BR" || true

# 4. Replay: a brand-new reader of the whole topic from offset 0.
say "consumer --replay-from 0 (read-only, whole topic)"
"$BIN/consumer" --kafka-brokers "$KAFKA_BROKERS" --kafka-topic "$TOPIC" --group "$RUN_ID-replay" --name replay \
  --replay-from 0 --no-commit --summary-json "$OUT/replay.json" --exit-when-idle 5s --quiet \
  2>"$OUT/replay.log" || true

say "reading what the bridge wrote to Kafka topic $TOPIC-bridged"
"$BIN/consumer" --kafka-brokers "$KAFKA_BROKERS" --kafka-topic "$TOPIC-bridged" --group "$RUN_ID-bridged" --name bridged \
  --replay-from 0 --no-commit --summary-json "$OUT/bridged.json" --exit-when-idle 5s --quiet --topic-wait 30s \
  2>"$OUT/bridged.log" || true

# The dashboard stays up until here. DEMO_DASHBOARD_WAIT=<file> keeps it up
# until that file exists (at most 5 minutes): the browser test reads the
# page against the summaries in the meantime.
if [ -n "${DEMO_DASHBOARD_WAIT:-}" ]; then
  touch "$OUT/readers-done"
  for _ in $(seq 1 300); do [ -e "$DEMO_DASHBOARD_WAIT" ] && break; sleep 1; done
fi
kill -TERM "$DASH" 2>/dev/null || true
wait "$DASH" || echo "the dashboard exited with an error; see $OUT/dashboard.log" >&2

summary=0
python3 "$ROOT/scripts/demo_summary.py" "$OUT" "$PREFIX" "$TOPIC" || summary=$?

if [ "${DEMO_CHART:-0}" = 1 ]; then
  CHART="$OUT/streaming-vs-polling.svg"
  if "$BIN/report" --dir "$OUT" --out "$CHART" \
       --title "Streaming vs polling, run $RUN_ID (${SECONDS_RUN}s, $SYMBOLS)" >"$OUT/report.out" 2>"$OUT/report.log"; then
    printf '\033[1mChart\033[0m (latency distribution and arrival over time, WebSocket vs polling):\n  %s\n' "$CHART"
  else
    cat "$OUT/report.log" >&2
    echo "the chart could not be drawn; see $OUT/report.log" >&2
    [ "$summary" != 0 ] || summary=1
  fi
fi
exit "$summary"
