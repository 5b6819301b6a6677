#!/usr/bin/env bash
# Proves the README's stack set-up on a clean clone: nothing cached, no
# .stack directory, no Kafka jars. Run from the root of a clean clone (.ci/run
# makes one); it
#   1. checks the clone really is clean (no .stack, no fetched jars);
#   2. runs `scripts/stack.sh up`, which installs RabbitMQ when missing,
#      fetches Kafka from Maven Central and starts both brokers;
#   3. asserts that the jars were fetched into this clone, that the Kafka
#      answering is the one this clone started, and that both brokers answer
#      protocol requests (stack-check: an AMQP open and a Kafka metadata
#      request);
#   4. prints how long the set-up took.
# Environment: as scripts/stack.sh (KAFKA_PORT, KAFKA_CONTROLLER_PORT, ...).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
STACK_DIR="${STACK_DIR:-$ROOT/.stack}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
AMQP_PORT="${AMQP_PORT:-5672}"

say()  { printf '\033[1m[fresh]\033[0m %s\n' "$*" >&2; }
fail() { printf '\033[31m[fresh] FAILED:\033[0m %s\n' "$*" >&2; exit 1; }

[ -e "$STACK_DIR" ] && fail "$STACK_DIR exists: this check needs a clean clone (git clone into a new directory)"
[ -z "$(git status --porcelain --ignored 2>/dev/null | grep -v '^!! target/' || true)" ] \
  || fail "the clone is not clean: $(git status --porcelain --ignored | head -5 | tr '\n' ' ')"

say "clean clone at $ROOT (commit $(git rev-parse --short HEAD)); running scripts/stack.sh up"
started=$(date +%s)
STACK_DIR="$STACK_DIR" scripts/stack.sh up
took=$(( $(date +%s) - started ))

libs="$STACK_DIR/kafka/libs"
[ -f "$libs/.installed" ] || fail "no Kafka jars were fetched into $libs"
v="$(scripts/kafka.sh version)"
[ "$(cut -d' ' -f1 "$libs/.installed")" = "$v" ] || fail "$libs holds Kafka $(cat "$libs/.installed"), the pom pins $v"
ls "$libs/kafka_2.13-$v.jar" >/dev/null || fail "$libs lacks kafka_2.13-$v.jar"
[ -s "$STACK_DIR/kafka/m2/org/apache/kafka/kafka_2.13/$v/kafka_2.13-$v.pom" ] \
  || fail "the Maven repository of this clone ($STACK_DIR/kafka/m2) did not receive kafka_2.13 $v"

pid="$(cat "$STACK_DIR/kafka/node/kafka.pid" 2>/dev/null || true)"
[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || fail "the Kafka this clone started is not running (pid file $STACK_DIR/kafka/node/kafka.pid)"
ss -ltnp 2>/dev/null | grep -q ":$KAFKA_PORT .*pid=$pid," \
  || fail "port $KAFKA_PORT is not held by this clone's Kafka (pid $pid): $(ss -ltnp | grep ":$KAFKA_PORT " || echo nothing listens)"

"${CARGO_TARGET_DIR:-$ROOT/target}/debug/stack-check" \
  --amqp-url "amqp://127.0.0.1:$AMQP_PORT/%2f" --kafka-brokers "127.0.0.1:$KAFKA_PORT" --timeout 30 >&2 \
  || fail "a broker does not answer after scripts/stack.sh up"
say "stack set-up from a clean clone: ${took}s (Kafka $v jars fetched: $(ls "$libs"/*.jar | wc -l), both brokers answer)"
