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
# Everything runs against brokers of the soak's own on spare ports (a private
# RabbitMQ node and a private Apache Kafka node started with scripts/kafka.sh,
# its log under the run directory), so the shared stack on 5672/9092 is
# neither disturbed nor a source of noise. Results go to
# SOAK.md (tables and the flatness verdict) and SOAK.csv (every sample);
# see scripts/soak_report.py for the rule. Exit status is non-zero when a
# binary's RSS is not flat, a process fails, or a tick is missing.
#
#   SOAK_TICKS=200000 scripts/soak.sh        # smoke run, ~20 s of traffic
#   nice -n 5 scripts/soak.sh                # the full 10M run, ~30 min
#
# Knobs: SOAK_TICKS, SOAK_RATE (0 = full speed), SOAK_INTERVAL (seconds
# between samples, default 5), SOAK_DEDUP_WINDOW (the readers'
# --dedup-window, default 1,000,000), SOAK_MAX_SECONDS (stop publishing after this
# long even if SOAK_TICKS is not reached; the report then judges the shorter
# run and says so), SOAK_OUT / SOAK_CSV (result files), SOAK_KEEP=1 (keep
# the run directory under out/), SOAK_KAFKA_HEAP_OPTS (the private broker's
# heap, default -Xms256m -Xmx1g, as the shared stack's).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"

TICKS="${SOAK_TICKS:-10000000}"
RATE="${SOAK_RATE:-0}"
INTERVAL="${SOAK_INTERVAL:-5}"
OUT_MD="${SOAK_OUT:-$ROOT/SOAK.md}"
OUT_CSV="${SOAK_CSV:-$ROOT/SOAK.csv}"
SYMBOLS="BTC-USDT,ETH-USDT,SOL-USDT"
NSYM=3
BIN="$ROOT/target/release"
RUN_ID="soak-$(date +%H%M%S)-$$"
RUN="$ROOT/out/$RUN_ID"
export RUST_LOG="${RUST_LOG:-info}"

if ! [[ "$TICKS" =~ ^[0-9]+$ ]] || [ "$TICKS" -lt "$NSYM" ]; then
  echo "soak: SOAK_TICKS must be a whole number of at least $NSYM, got '$TICKS'" >&2
  exit 2
fi
# Each market ends at PER_SYMBOL; the producer stops at exactly TICKS.
PER_SYMBOL=$(((TICKS + NSYM - 1) / NSYM))
say() { printf '[soak %5ss] %s\n' "$SECONDS" "$*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # port, seconds
  local i
  for i in $(seq 1 $(($2 * 10))); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

mkdir -p "$RUN"
PIDS=()
RABBIT_NODE=""
RABBIT_DIR=""
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  # The broker shuts down cleanly on SIGTERM; let it finish before its
  # directory goes.
  [ -n "${KAFKA_PID:-}" ] && { wait "$KAFKA_PID" 2>/dev/null || true; }
  if [ -n "$RABBIT_NODE" ]; then
    rabbitmqctl -n "$RABBIT_NODE" stop >/dev/null 2>&1 || true
  fi
  [ -n "$RABBIT_DIR" ] && rm -rf "$RABBIT_DIR"
  [ "${SOAK_KEEP:-0}" = 1 ] || rm -rf "$RUN"
}
trap cleanup EXIT

say "run $RUN_ID: $TICKS ticks ($PER_SYMBOL per symbol), feed rate ${RATE} (0 = full speed), sample every ${INTERVAL}s"

say "release build"
cargo build --release -p tickbridge-feed-sim -p tickbridge-producer -p tickbridge-consumer -p tickbridge-broker --bins

# 1. A private RabbitMQ node (the same recipe as tickbridge_testkit::RabbitNode).
RABBIT_PORT="$(free_port)"
RABBIT_DIST="$(free_port)"
RABBIT_NODE="tbsoak$(printf '%08x' $((RANDOM * 32768 + RANDOM)))@localhost"
RABBIT_DIR="$(mktemp -d /tmp/tickbridge-soak-rabbit.XXXXXX)"
echo '[].' >"$RABBIT_DIR/enabled_plugins"
printf 'listeners.tcp.default = 127.0.0.1:%s\nloopback_users = none\n' "$RABBIT_PORT" >"$RABBIT_DIR/rabbitmq.conf"
[ "$(id -u)" = 0 ] && chown -R rabbitmq:rabbitmq "$RABBIT_DIR"
export RABBITMQ_NODENAME="$RABBIT_NODE" RABBITMQ_NODE_PORT="$RABBIT_PORT" RABBITMQ_DIST_PORT="$RABBIT_DIST" \
  RABBITMQ_MNESIA_BASE="$RABBIT_DIR/mnesia" RABBITMQ_LOG_BASE="$RABBIT_DIR/log" \
  RABBITMQ_ENABLED_PLUGINS_FILE="$RABBIT_DIR/enabled_plugins" RABBITMQ_CONFIG_FILE="$RABBIT_DIR/rabbitmq" \
  RABBITMQ_PID_FILE="$RABBIT_DIR/pid"
rabbitmq-server -detached >/dev/null 2>&1 || { echo "soak: rabbitmq-server failed to start (scripts/stack.sh up installs it)" >&2; exit 1; }
wait_port "$RABBIT_PORT" 90 || { echo "soak: private RabbitMQ did not open port $RABBIT_PORT (logs in $RABBIT_DIR/log)" >&2; exit 1; }
unset RABBITMQ_NODENAME RABBITMQ_NODE_PORT RABBITMQ_DIST_PORT RABBITMQ_MNESIA_BASE RABBITMQ_LOG_BASE \
  RABBITMQ_ENABLED_PLUGINS_FILE RABBITMQ_CONFIG_FILE RABBITMQ_PID_FILE
AMQP_URL="amqp://guest:guest@127.0.0.1:$RABBIT_PORT/%2f"
RABBIT_PID=""
for _ in $(seq 1 50); do RABBIT_PID="$(cat "$RABBIT_DIR/pid" 2>/dev/null || true)"; [ -n "$RABBIT_PID" ] && break; sleep 0.2; done
say "private RabbitMQ $RABBIT_NODE on 127.0.0.1:$RABBIT_PORT (pid ${RABBIT_PID:-?})"

# 2. A private Apache Kafka node (KRaft, one JVM) with its log in the run
#    directory: the same recipe as tickbridge_testkit::KafkaNode. `kafka.sh exec`
#    replaces itself with the JVM, so KAFKA_PID is the broker.
KAFKA_PORT="$(free_port)"
KAFKA_CONTROLLER_PORT="$(free_port)"
"$ROOT/scripts/kafka.sh" install
"$ROOT/scripts/kafka.sh" init "$RUN/kafka" "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" \
  || { echo "soak: scripts/kafka.sh init failed for the private Kafka node" >&2; exit 1; }
KAFKA_HEAP_OPTS="${SOAK_KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}" \
  "$ROOT/scripts/kafka.sh" exec "$RUN/kafka" >"$RUN/kafka.log" 2>&1 </dev/null &
KAFKA_PID=$!; PIDS+=($KAFKA_PID)
KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"
# The port opens before the broker serves: wait for a metadata answer.
"$BIN/stack-check" --kafka-only --kafka-brokers "$KAFKA_BROKERS" --timeout 90 >/dev/null \
  || { echo "soak: the private Kafka node on $KAFKA_BROKERS did not answer (log $RUN/kafka.log)" >&2; exit 1; }
say "private Apache Kafka $("$ROOT/scripts/kafka.sh" version) on $KAFKA_BROKERS (pid $KAFKA_PID)"

# 3. The pipeline, readers first.
PREFIX="$RUN_ID"; TOPIC="$RUN_ID"
P_METRICS="127.0.0.1:$(free_port)"; W_METRICS="127.0.0.1:$(free_port)"; C_METRICS="127.0.0.1:$(free_port)"
DEDUP_WINDOW="${SOAK_DEDUP_WINDOW:-1000000}"
READER_COMMON=(--quiet --stats-interval 10s --exit-when-idle 30s --dedup-window "$DEDUP_WINDOW")
"$BIN/worker" --amqp-url "$AMQP_URL" --amqp-prefix "$PREFIX" --declare-topology --name soak-worker \
  --metrics-addr "$W_METRICS" --summary-json "$RUN/worker.json" "${READER_COMMON[@]}" 2>"$RUN/worker.log" &
WORKER_PID=$!; PIDS+=($WORKER_PID)
"$BIN/consumer" --kafka-brokers "$KAFKA_BROKERS" --kafka-topic "$TOPIC" --group "$RUN_ID-group" --name soak-consumer \
  --topic-wait 120s --metrics-addr "$C_METRICS" --summary-json "$RUN/consumer.json" "${READER_COMMON[@]}" 2>"$RUN/consumer.log" &
CONSUMER_PID=$!; PIDS+=($CONSUMER_PID)

"$BIN/feed-sim" --listen 127.0.0.1:0 --rate "$RATE" --symbols "$SYMBOLS" --max-count "$PER_SYMBOL" \
  >"$RUN/feed-sim.out" 2>"$RUN/feed-sim.log" &
SIM_PID=$!; PIDS+=($SIM_PID)
for _ in $(seq 1 100); do grep -q "listening on" "$RUN/feed-sim.out" 2>/dev/null && break; sleep 0.1; done
SIM_ADDR="$(sed -n 's/^feed-sim listening on //p' "$RUN/feed-sim.out" | head -1)"
[ -n "$SIM_ADDR" ] || { echo "soak: feed-sim did not start; see $RUN/feed-sim.log" >&2; exit 1; }
sleep 2 # the worker declares the topology before the producer publishes

"$BIN/producer" --exchange binance --symbols "$SYMBOLS" --url "ws://$SIM_ADDR" --sink rabbitmq,kafka \
  --amqp-url "$AMQP_URL" --amqp-prefix "$PREFIX" --kafka-brokers "$KAFKA_BROKERS" --kafka-topic "$TOPIC" \
  --max-events "$TICKS" ${SOAK_MAX_SECONDS:+--max-seconds "$SOAK_MAX_SECONDS"} --drain-timeout 60s --stats-interval 5s --metrics-addr "$P_METRICS" \
  --report "$RUN/producer.json" >"$RUN/producer.out" 2>"$RUN/producer.log" &
PRODUCER_PID=$!; PIDS+=($PRODUCER_PID)
say "feed-sim $SIM_PID on $SIM_ADDR, producer $PRODUCER_PID, worker $WORKER_PID, consumer $CONSUMER_PID"

# 4. Sample every process until the readers are done.
python3 "$ROOT/scripts/soak_report.py" sample --interval "$INTERVAL" --out "$RUN/samples.csv" \
  --proc "feed-sim=$SIM_PID" --proc "producer=$PRODUCER_PID@http://$P_METRICS/metrics" \
  --proc "worker=$WORKER_PID@http://$W_METRICS/metrics" --proc "consumer=$CONSUMER_PID@http://$C_METRICS/metrics" \
  --proc "rabbitmq=${RABBIT_PID:-0}" --proc "kafka=$KAFKA_PID" \
  --until "$WORKER_PID,$CONSUMER_PID" --progress &
SAMPLER_PID=$!; PIDS+=($SAMPLER_PID)

set +e
wait "$PRODUCER_PID"; PRODUCER_RC=$?
say "producer exited with $PRODUCER_RC; stopping feed-sim, waiting for the readers to drain (they exit after 30 s idle)"
kill -TERM "$SIM_PID" 2>/dev/null; wait "$SIM_PID" 2>/dev/null
READER_DEADLINE=$((SECONDS + ${SOAK_DRAIN_SECONDS:-1800}))
while kill -0 "$WORKER_PID" 2>/dev/null || kill -0 "$CONSUMER_PID" 2>/dev/null; do
  if [ "$SECONDS" -gt "$READER_DEADLINE" ]; then
    say "readers still busy after ${SOAK_DRAIN_SECONDS:-1800}s; stopping them"
    kill -TERM "$WORKER_PID" "$CONSUMER_PID" 2>/dev/null
  fi
  sleep 1
done
wait "$WORKER_PID"; WORKER_RC=$?
wait "$CONSUMER_PID"; CONSUMER_RC=$?
wait "$SAMPLER_PID"
set -e

python3 "$ROOT/scripts/soak_report.py" report --samples "$RUN/samples.csv" --ticks "$TICKS" --rate "$RATE" --interval "$INTERVAL" \
  --producer-report "$RUN/producer.json" --worker "$RUN/worker.json" --consumer "$RUN/consumer.json" \
  --exit-codes "producer=$PRODUCER_RC,worker=$WORKER_RC,consumer=$CONSUMER_RC" --dedup-window "$DEDUP_WINDOW" \
  ${SOAK_MAX_SECONDS:+--stopped-early} --md "$OUT_MD" --csv "$OUT_CSV"
