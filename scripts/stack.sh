#!/usr/bin/env bash
# Local broker stack without Docker: RabbitMQ (Debian's rabbitmq-server, with
# the management UI) and a Kafka-protocol broker (tansu on durable sqlite
# storage). Idempotent: running `up` twice is fine.
#
#   scripts/stack.sh up      install what is missing, start what is down, wait, print where things are
#   scripts/stack.sh down    stop only what this script started
#   scripts/stack.sh status  say what answers
#
# Environment: STACK_DIR (default .stack), AMQP_PORT (5672), KAFKA_PORT (9092),
# STACK_TIMEOUT (seconds to wait for each broker, default 90).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK_DIR="${STACK_DIR:-$ROOT/.stack}"
AMQP_PORT="${AMQP_PORT:-5672}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
MGMT_PORT="${MGMT_PORT:-15672}"
STACK_TIMEOUT="${STACK_TIMEOUT:-90}"
TANSU_VERSION="0.6.0"
export PATH="$HOME/.cargo/bin:$PATH"

say()  { printf '\033[1m[stack]\033[0m %s\n' "$*"; }
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
  command -v sqlite3 >/dev/null || missing+=(sqlite3)
  [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
}

stack_check() {
  [ -x "$ROOT/target/debug/stack-check" ] || say "building the stack-check tool (first run only)"
  cargo build -q -p tickbridge-core --bin stack-check \
    || fail "could not build the stack-check tool" "run 'cargo build -p tickbridge-core' and read the error"
  "$ROOT/target/debug/stack-check" --amqp-url "amqp://127.0.0.1:$AMQP_PORT/%2f" \
    --kafka-brokers "127.0.0.1:$KAFKA_PORT" --timeout "$STACK_TIMEOUT" "$@"
}

rabbitmq_up() {
  if port_open "$AMQP_PORT"; then
    STACK_TIMEOUT=20 stack_check --amqp-only >/dev/null 2>&1 \
      || fail "port $AMQP_PORT is open but does not answer an AMQP open as guest/guest" \
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
  if ! as_root rabbitmq-plugins list -e -m 2>/dev/null | grep -qx rabbitmq_management; then
    say "enabling rabbitmq_management"
    as_root rabbitmq-plugins enable rabbitmq_management >/dev/null \
      || fail "could not enable rabbitmq_management" "run 'rabbitmq-plugins enable rabbitmq_management' by hand"
  fi
  say "loading topology from stack/definitions.json"
  as_root rabbitmqctl import_definitions "$ROOT/stack/definitions.json" >/dev/null \
    || fail "rabbitmqctl import_definitions failed" "check stack/definitions.json against the broker version"
  local i=0
  until port_open "$MGMT_PORT"; do
    i=$((i+1)); [ $i -gt 60 ] && fail "management UI did not open port $MGMT_PORT" "look at /var/log/rabbitmq/*.log"
    sleep 1
  done
}

tansu_bin() {
  if command -v tansu >/dev/null; then command -v tansu; return; fi
  say "tansu $TANSU_VERSION is not installed: building it from crates.io (10-15 minutes, once; cached in ~/.cargo/bin)"
  cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore,libsql >"$STACK_DIR/tansu-build.log" 2>&1 \
    || { tail -20 "$STACK_DIR/tansu-build.log" >&2; fail "cargo install tansu failed" "see $STACK_DIR/tansu-build.log"; }
  command -v tansu
}

stop_tansu() {
  local pid; pid="$(cat "$STACK_DIR/kafka/tansu.pid" 2>/dev/null || true)"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid"; for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$STACK_DIR/kafka/tansu.pid"
}

kafka_up() {
  if port_open "$KAFKA_PORT"; then
    if STACK_TIMEOUT=15 stack_check --kafka-only >/dev/null 2>&1; then
      say "Kafka port $KAFKA_PORT already answers"
      return
    fi
    # A broker that holds the port but answers no metadata request is worse
    # than none: restart it if it is ours, otherwise say who is in the way.
    if [ -f "$STACK_DIR/kafka/tansu.pid" ] && kill -0 "$(cat "$STACK_DIR/kafka/tansu.pid")" 2>/dev/null; then
      say "tansu holds port $KAFKA_PORT but does not answer metadata requests; restarting it"
      stop_tansu
    else
      fail "port $KAFKA_PORT is taken by a process that does not answer Kafka metadata requests" \
        "stop it (ss -ltnp | grep $KAFKA_PORT) or set KAFKA_PORT"
    fi
  fi
  local bin; bin="$(tansu_bin)"
  mkdir -p "$STACK_DIR/kafka"
  say "starting tansu on 127.0.0.1:$KAFKA_PORT (storage sqlite://$STACK_DIR/kafka/tansu.db)"
  (
    cd "$STACK_DIR/kafka"
    nohup "$bin" broker \
      --storage-engine "sqlite://tansu.db" \
      --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
      --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
      >>"$STACK_DIR/kafka/tansu.log" 2>&1 &
    echo $! >"$STACK_DIR/kafka/tansu.pid"
  )
  local i=0
  until port_open "$KAFKA_PORT"; do
    i=$((i+1))
    kill -0 "$(cat "$STACK_DIR/kafka/tansu.pid")" 2>/dev/null \
      || { tail -20 "$STACK_DIR/kafka/tansu.log" >&2; fail "tansu exited during startup" "see $STACK_DIR/kafka/tansu.log; is port $KAFKA_PORT taken?"; }
    [ $i -gt "$STACK_TIMEOUT" ] && fail "tansu did not open port $KAFKA_PORT within ${STACK_TIMEOUT}s" "see $STACK_DIR/kafka/tansu.log"
    sleep 1
  done
  tansu_index "$STACK_DIR/kafka/tansu.db"
}

# tansu 0.6.0's sqlite schema has no index on header(topition, offset_id), so
# every fetched record scans the whole header table: with headers on every
# message (tickbridge sets seven), fetching a few thousand records takes
# minutes and stalls the broker. The index is pure operations on the local
# broker's own file; no tickbridge code depends on it.
tansu_index() {
  local db="$1" i=0
  until sqlite3 "$db" "create index if not exists tb_header_record on header (topition, offset_id);" 2>/dev/null; do
    i=$((i+1)); [ $i -gt 20 ] && fail "could not add the header index to $db" "run: sqlite3 $db 'create index if not exists tb_header_record on header (topition, offset_id);'"
    sleep 0.5
  done
}

cmd_up() {
  mkdir -p "$STACK_DIR"
  ensure_build_deps
  rabbitmq_up
  kafka_up
  say "waiting for both brokers to answer protocol requests"
  stack_check || fail "a broker is not answering" "run 'scripts/stack.sh status' and see the logs under $STACK_DIR"
  cat <<MSG
[stack] ready:
  RabbitMQ   amqp://guest:guest@127.0.0.1:$AMQP_PORT/%2f
  Mgmt UI    http://127.0.0.1:$MGMT_PORT/  (login guest / guest)
  Kafka      127.0.0.1:$KAFKA_PORT (tansu, data in $STACK_DIR/kafka)
MSG
}

cmd_down() {
  if [ -f "$STACK_DIR/kafka/tansu.pid" ]; then
    say "stopping tansu (pid $(cat "$STACK_DIR/kafka/tansu.pid"))"
    stop_tansu
  fi
  if [ -f "$STACK_DIR/rabbitmq.started-by-stack" ]; then
    say "stopping RabbitMQ (started by this script)"
    as_root rabbitmqctl stop >/dev/null 2>&1 || true
    rm -f "$STACK_DIR/rabbitmq.started-by-stack"
  fi
  say "stopped what this script started"
}

cmd_status() {
  port_open "$AMQP_PORT" && say "RabbitMQ: port $AMQP_PORT open" || say "RabbitMQ: down"
  port_open "$MGMT_PORT" && say "Mgmt UI: http://127.0.0.1:$MGMT_PORT/" || say "Mgmt UI: down"
  port_open "$KAFKA_PORT" && say "Kafka: port $KAFKA_PORT open" || say "Kafka: down"
}

case "${1:-up}" in
  up) cmd_up ;;
  down|stop) cmd_down ;;
  status) cmd_status ;;
  *) fail "unknown command ${1}" "use: scripts/stack.sh up|down|status" ;;
esac
