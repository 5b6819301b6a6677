#!/usr/bin/env bash
# Apache Kafka without Docker: the broker's jars from Maven Central, and
# single-node KRaft brokers (broker + controller in one JVM) in directories of
# their own. scripts/stack.sh runs the shared broker on 9092 with it; the
# tests' private brokers (testkit::KafkaNode) and the chaos suite run theirs
# with it on spare ports.
#
#   scripts/kafka.sh install                     fetch the pinned jars once (stack/kafka/pom.xml)
#   scripts/kafka.sh init DIR PORT CONTROLLER_PORT
#                                                write DIR/server.properties and format DIR/data
#                                                (a formatted directory is kept as it is)
#   scripts/kafka.sh exec DIR                    replace this shell with the broker JVM; its
#                                                log goes to this process's stdout
#   scripts/kafka.sh tool NAME ARGS...           run one of Kafka's command-line tools against
#                                                a broker: topics, consumer-groups,
#                                                console-consumer, get-offsets
#                                                (e.g. tool consumer-groups --bootstrap-server
#                                                127.0.0.1:9092 --describe --all-groups)
#   scripts/kafka.sh version                     print the pinned Kafka version
#
# Progress goes to stderr, never stdout: `version` is the only command that
# prints a value.
#
# Environment: STACK_DIR (default .stack; the jars and the Maven repository
# live in $STACK_DIR/kafka), KAFKA_HEAP_OPTS (default -Xms256m -Xmx1g),
# JAVA (default: java on PATH).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK_DIR="${STACK_DIR:-$ROOT/.stack}"
POM="$ROOT/stack/kafka/pom.xml"
LOG4J="$ROOT/stack/kafka/log4j2.yaml"
KDIR="$STACK_DIR/kafka"
LIBS="$KDIR/libs"

say()  { printf '\033[1m[kafka]\033[0m %s\n' "$*" >&2; }
fail() { printf '\033[31m[kafka] FAILED:\033[0m %s\n' "$1" >&2; [ -n "${2:-}" ] && printf '[kafka] fix: %s\n' "$2" >&2; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

version() {
  sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM" | head -1
}

java_bin() {
  if [ -n "${JAVA:-}" ]; then printf '%s\n' "$JAVA"; return; fi
  command -v java || fail "no java on PATH" "install a JDK 17+ (apt-get install openjdk-17-jre-headless)"
}

ensure_tools() {
  local missing=()
  command -v java >/dev/null || [ -n "${JAVA:-}" ] || missing+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || missing+=(maven)
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq >&2 || fail "apt-get update failed" "check that the Debian package mirror is reachable"
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >&2 \
      || fail "apt-get install ${missing[*]} failed" "run it by hand and read its error"
  fi
  local major
  major="$("$(java_bin)" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)"
  [ -n "$major" ] && [ "$major" -ge 17 ] \
    || fail "Kafka $(version) needs Java 17 or newer; $(java_bin) is version ${major:-unknown}" \
            "put a JDK 17+ first on PATH, or set JAVA to its java binary"
}

cmd_install() {
  local v; v="$(version)"
  [ -n "$v" ] || fail "no <kafka.version> in $POM"
  # The stamp is the version and the pom's hash: editing the pom (a new
  # dependency, a new pin) fetches again.
  local stamp; stamp="$v $(sha256sum "$POM" | cut -c1-16)"
  if [ -f "$LIBS/.installed" ] && [ "$(cat "$LIBS/.installed")" = "$stamp" ]; then
    return
  fi
  ensure_tools
  say "fetching Apache Kafka $v and its dependencies from Maven Central (once; into $LIBS)"
  mkdir -p "$KDIR"
  rm -rf "$LIBS.tmp"
  if ! mvn -B -q -f "$POM" \
      -Dmaven.repo.local="$KDIR/m2" \
      dependency:copy-dependencies \
      -DincludeScope=runtime \
      -DoutputDirectory="$LIBS.tmp" >"$KDIR/maven.log" 2>&1; then
    tail -25 "$KDIR/maven.log" >&2
    fail "mvn could not fetch Kafka $v (log: $KDIR/maven.log)" \
         "check that Maven Central is reachable (mvn -v; ~/.m2/settings.xml mirrors)"
  fi
  ls "$LIBS.tmp"/kafka_2.13-"$v".jar >/dev/null 2>&1 \
    || fail "the fetched jars lack kafka_2.13-$v.jar" "see $KDIR/maven.log"
  rm -rf "$LIBS"
  mv "$LIBS.tmp" "$LIBS"
  printf '%s\n' "$stamp" >"$LIBS/.installed"
  say "Kafka $v: $(ls "$LIBS"/*.jar | wc -l) jars in $LIBS"
}

cmd_init() {
  local dir="${1:?init DIR PORT CONTROLLER_PORT}" port="${2:?port}" cport="${3:?controller port}"
  cmd_install
  mkdir -p "$dir/data"
  dir="$(cd "$dir" && pwd)"
  cat >"$dir/server.properties" <<PROPS
# Written by scripts/kafka.sh init: a single-node KRaft broker (broker and
# controller in one process) for the local stack and tests.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
# One node: every internal topic has one replica.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# The first member of a new group gets its partitions at once, not 3 s later.
group.initial.rebalance.delay.ms=0
# Topics are created by the producer and the bridge with the partition count
# they are given, as in docker-compose.yml.
auto.create.topics.enable=false
num.partitions=1
delete.topic.enable=true
# Two cores are shared by everything on this machine.
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
log.retention.hours=168
log.segment.bytes=268435456
PROPS
  if [ ! -f "$dir/data/meta.properties" ]; then
    local id
    id="$("$(java_bin)" -cp "$LIBS/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)"
    [ -n "$id" ] || fail "kafka-storage random-uuid printed nothing" "run: java -cp '$LIBS/*' kafka.tools.StorageTool random-uuid"
    "$(java_bin)" -Dlog4j2.configurationFile="$LOG4J" -cp "$LIBS/*" kafka.tools.StorageTool \
        format -t "$id" -c "$dir/server.properties" --standalone -g >"$dir/format.log" 2>&1 \
      || { cat "$dir/format.log" >&2; fail "could not format the KRaft log in $dir/data" "see $dir/format.log"; }
  fi
}

cmd_exec() {
  local dir="${1:?exec DIR}"
  [ -f "$dir/server.properties" ] || fail "$dir/server.properties is missing" "run: scripts/kafka.sh init $dir PORT CONTROLLER_PORT"
  [ -f "$LIBS/.installed" ] || fail "Kafka's jars are not installed in $LIBS" "run: scripts/kafka.sh install"
  # shellcheck disable=SC2086
  exec "$(java_bin)" ${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g} \
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$LOG4J" \
    -cp "$LIBS/*" kafka.Kafka "$dir/server.properties"
}

cmd_tool() {
  local name="${1:-}" class
  case "$name" in
    topics) class=org.apache.kafka.tools.TopicCommand ;;
    consumer-groups) class=org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ;;
    console-consumer) class=org.apache.kafka.tools.consumer.ConsoleConsumer ;;
    get-offsets) class=org.apache.kafka.tools.GetOffsetShell ;;
    *) fail "unknown tool '$name'" "use one of: topics, consumer-groups, console-consumer, get-offsets" ;;
  esac
  shift
  cmd_install
  exec "$(java_bin)" -Xmx256m -Dlog4j2.configurationFile="$ROOT/stack/kafka/log4j2-tools.yaml" \
    -cp "$LIBS/*" "$class" "$@"
}

case "${1:-}" in
  install) cmd_install ;;
  init) shift; cmd_init "$@" ;;
  exec) shift; cmd_exec "$@" ;;
  tool) shift; cmd_tool "$@" ;;
  version) version ;;
  *) fail "unknown command '${1:-}'" "use: scripts/kafka.sh install|init DIR PORT CONTROLLER_PORT|exec DIR|tool NAME ARGS|version" ;;
esac
