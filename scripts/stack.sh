#!/usr/bin/env bash
# Local broker stack without Docker: RabbitMQ (Debian's rabbitmq-server, with
# the management UI and the stream plugin) and Apache Kafka (the version
# pinned in stack/kafka/pom.xml, fetched from Maven Central by
# scripts/kafka.sh; a single KRaft node with durable data under
# $STACK_DIR/kafka). Idempotent: running `up` twice is fine.
#
#   scripts/stack.sh up      install what is missing, start what is down, wait, print where things are
#   scripts/stack.sh down    stop only what this script started
#   scripts/stack.sh status  say what answers
#
# Environment: STACK_DIR (default .stack), AMQP_PORT (5672), KAFKA_PORT (9092),
# KAFKA_CONTROLLER_PORT (9093), KAFKA_HEAP_OPTS (-Xms256m -Xmx1g),
# STACK_TIMEOUT (seconds to wait for each broker, default 90).
#
# Progress goes to stderr: nothing this script prints is meant to be
# captured.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK_DIR="${STACK_DIR:-$ROOT/.stack}"
AMQP_PORT="${AMQP_PORT:-5672}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
MGMT_PORT="${MGMT_PORT:-15672}"
STACK_TIMEOUT="${STACK_TIMEOUT:-90}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}"
export PATH="$HOME/.cargo/bin:$PATH"

say()  { printf '\033[1m[stack]\033[0m %s\n' "$*" >&2; }
fail() { printf '\033[31m[stack] FAILED:\033[0m %s\n' "$1" >&2; [ -n "${2:-}" ] && printf '[stack] fix: %s\n' "$2" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && exec 3>&- 3<&- ; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  say "installing Debian packages: $*"
  if [ ! -f "$STACK_DIR/.apt-updated" ]; then
    as_root apt-get update -qq || fail "apt-get update failed" "check that the Debian package mirror is reachable"
    touch "$STACK_DIR/.apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null \
    || fail "apt-get install $* failed" "run 'apt-get install $*' by hand and read its error"
}

ensure_build_deps() {
  local missing=()
  command -v cc >/dev/null || missing+=(build-essential)
  command -v make >/dev/null || missing+=(make)
  command -v pkg-config >/dev/null || missing+=(pkg-config)
  dpkg -s libssl-dev >/dev/null 2>&1 || missing+=(libssl-dev)
  dpkg -s zlib1g-dev >/dev/null 2>&1 || missing+=(zlib1g-dev)
  command -v curl >/dev/null || missing+=(curl)
  command -v openssl >/dev/null || missing+=(openssl)
  [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
}

stack_check() {
  local bin="${CARGO_TARGET_DIR:-$ROOT/target}/debug/stack-check"
  [ -x "$bin" ] || say "building the stack-check tool (first run only)"
  cargo build -q -p tickbridge-broker --bin stack-check >&2 \
    || fail "could not build the stack-check tool" "run 'cargo build -p tickbridge-broker' and read the error"
  "$bin" --amqp-url "amqp://127.0.0.1:$AMQP_PORT/%2f" \
    --kafka-brokers "127.0.0.1:$KAFKA_PORT" --timeout "$STACK_TIMEOUT" "$@"
}

rabbitmq_up() {
  if port_open "$AMQP_PORT"; then
    local out
    out="$(STACK_TIMEOUT=20 stack_check --amqp-only 2>&1)" \
      || fail "port $AMQP_PORT is open but does not answer an AMQP open as guest/guest: $(tail -2 <<<"$out")" \
              "check the process on it (ss -ltnp | grep $AMQP_PORT) and /var/log/rabbitmq/"
    say "RabbitMQ port $AMQP_PORT already answers"
  else
    if ! command -v rabbitmq-server >/dev/null && [ ! -x /usr/sbin/rabbitmq-server ]; then
      apt_install rabbitmq-server
    fi
    say "starting rabbitmq-server"
    # Debian's package starts it through systemd where there is one; in
    # containers and CI there is none, so start the node detached.
    if ! as_root rabbitmq-server -detached >/dev/null 2>&1; then
      fail "rabbitmq-server -detached failed" "see /var/log/rabbitmq/ for the node's log"
    fi
    touch "$STACK_DIR/rabbitmq.started-by-stack"
    local i=0
    until port_open "$AMQP_PORT"; do
      i=$((i+1)); [ $i -gt "$STACK_TIMEOUT" ] && fail "RabbitMQ did not open port $AMQP_PORT within ${STACK_TIMEOUT}s" \
        "look at /var/log/rabbitmq/*.log; is another process bound to $AMQP_PORT?"
      sleep 1
    done
  fi
  as_root rabbitmqctl await_startup >/dev/null 2>&1 || true
  local enabled; enabled="$(as_root rabbitmq-plugins list -e -m 2>/dev/null || true)"
  for plugin in rabbitmq_management rabbitmq_stream; do
    if ! grep -qx "$plugin" <<<"$enabled"; then
      say "enabling $plugin"
      as_root rabbitmq-plugins enable "$plugin" >/dev/null \
        || fail "could not enable $plugin" "run 'rabbitmq-plugins enable $plugin' by hand"
    fi
  done
  say "loading topology from stack/definitions.json"
  # Debian's rabbitmqctl runs as the rabbitmq user, which cannot read a
  # checkout under a private directory (a clean clone under mktemp -d is
  # mode 700), so hand it a world-readable copy in /tmp.
  local defs; defs="$(mktemp /tmp/tickbridge-definitions.XXXXXX.json)"
  cp "$ROOT/stack/definitions.json" "$defs"; chmod 644 "$defs"
  if ! as_root rabbitmqctl import_definitions "$defs" >/dev/null; then
    rm -f "$defs"
    fail "rabbitmqctl import_definitions failed" "check stack/definitions.json against the broker version"
  fi
  rm -f "$defs"
  local i=0
  until port_open "$MGMT_PORT"; do
    i=$((i+1)); [ $i -gt 60 ] && fail "management UI did not open port $MGMT_PORT" "look at /var/log/rabbitmq/*.log"
    sleep 1
  done
}

kafka_pid() { cat "$STACK_DIR/kafka/node/kafka.pid" 2>/dev/null || true; }

stop_kafka() {
  local pid; pid="$(kafka_pid)"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    # SIGTERM is a controlled shutdown: the broker flushes and closes its
    # logs, so the next start needs no recovery.
    kill "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$STACK_DIR/kafka/node/kafka.pid"
}

kafka_up() {
  local node="$STACK_DIR/kafka/node"
  if port_open "$KAFKA_PORT"; then
    if STACK_TIMEOUT=15 stack_check --kafka-only >&2; then
      say "Kafka port $KAFKA_PORT already answers"
      return
    fi
    # A broker that holds the port but answers no metadata request is worse
    # than none: restart it if it is ours, otherwise say who is in the way.
    if [ -n "$(kafka_pid)" ] && kill -0 "$(kafka_pid)" 2>/dev/null; then
      say "our Kafka holds port $KAFKA_PORT but does not answer metadata requests; restarting it"
      stop_kafka
    else
      fail "port $KAFKA_PORT is taken by a process that does not answer Kafka metadata requests" \
        "stop it (ss -ltnp | grep $KAFKA_PORT) or set KAFKA_PORT"
    fi
  fi
  port_open "$KAFKA_CONTROLLER_PORT" && fail "the KRaft controller port $KAFKA_CONTROLLER_PORT is taken" \
    "stop the process on it (ss -ltnp | grep $KAFKA_CONTROLLER_PORT) or set KAFKA_CONTROLLER_PORT"
  STACK_DIR="$STACK_DIR" "$ROOT/scripts/kafka.sh" install
  STACK_DIR="$STACK_DIR" "$ROOT/scripts/kafka.sh" init "$node" "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"
  say "starting Apache Kafka $("$ROOT/scripts/kafka.sh" version) on 127.0.0.1:$KAFKA_PORT (KRaft, data in $node/data, heap ${KAFKA_HEAP_OPTS})"
  (
    STACK_DIR="$STACK_DIR" KAFKA_HEAP_OPTS="$KAFKA_HEAP_OPTS" \
      nohup "$ROOT/scripts/kafka.sh" exec "$node" >>"$node/kafka.log" 2>&1 </dev/null &
    echo $! >"$node/kafka.pid"
  )
  local i=0
  until port_open "$KAFKA_PORT"; do
    i=$((i+1))
    kill -0 "$(kafka_pid)" 2>/dev/null \
      || { tail -20 "$node/kafka.log" >&2; fail "Kafka exited during startup" "see $node/kafka.log; is port $KAFKA_PORT or $KAFKA_CONTROLLER_PORT taken?"; }
    [ $i -gt "$STACK_TIMEOUT" ] && fail "Kafka did not open port $KAFKA_PORT within ${STACK_TIMEOUT}s" "see $node/kafka.log"
    sleep 1
  done
}

cmd_up() {
  mkdir -p "$STACK_DIR"
  ensure_build_deps
  rabbitmq_up
  kafka_up
  say "waiting for both brokers to answer protocol requests"
  stack_check >&2 || fail "a broker is not answering" "run 'scripts/stack.sh status' and see the logs under $STACK_DIR"
  cat >&2 <<MSG
[stack] ready:
  RabbitMQ   amqp://guest:guest@127.0.0.1:$AMQP_PORT/%2f
  Mgmt UI    http://127.0.0.1:$MGMT_PORT/  (login guest / guest)
  Kafka      127.0.0.1:$KAFKA_PORT (Apache Kafka $("$ROOT/scripts/kafka.sh" version), KRaft, data in $STACK_DIR/kafka/node/data)
  Logs       $STACK_DIR/kafka/node/kafka.log, /var/log/rabbitmq/
MSG
}

cmd_down() {
  if [ -n "$(kafka_pid)" ]; then
    say "stopping Kafka (pid $(kafka_pid))"
    stop_kafka
  fi
  if [ -f "$STACK_DIR/rabbitmq.started-by-stack" ]; then
    say "stopping RabbitMQ (started by this script)"
    as_root rabbitmqctl stop >/dev/null 2>&1 || true
    rm -f "$STACK_DIR/rabbitmq.started-by-stack"
  fi
  say "stopped what this script started"
}

cmd_status() {
  local KAFKA_PID; KAFKA_PID="$(kafka_pid)"
  [ -n "$KAFKA_PID" ] && kill -0 "$KAFKA_PID" 2>/dev/null || KAFKA_PID=""
  port_open "$AMQP_PORT" && echo "RabbitMQ: port $AMQP_PORT open" || echo "RabbitMQ: down"
  port_open "$MGMT_PORT" && echo "Mgmt UI: http://127.0.0.1:$MGMT_PORT/" || echo "Mgmt UI: down"
  if port_open "$KAFKA_PORT"; then
    echo "Kafka: port $KAFKA_PORT open${KAFKA_PID:+ (pid $KAFKA_PID, ours)}"
  else
    echo "Kafka: down"
  fi
}

case "${1:-up}" in
  up) cmd_up ;;
  down|stop) cmd_down ;;
  status) cmd_status ;;
  *) fail "unknown command ${1}" "use: scripts/stack.sh up|down|status" ;;
esac
