#!/usr/bin/env bash
# Checks the compose stack without a Docker engine (scripts/test.sh runs it):
#   1. docker-compose validates docker-compose.yml alone and with
#      docker-compose.real-exchanges.yml, and refuses to run without
#      RABBITMQ_PASSWORD;
#   2. every environment variable set on an app service is a flag of its
#      binary (scripts/compose_env_check.py), and the check does fail on a
#      variable no binary knows;
#   3. the compose Kafka image is the version stack/kafka/pom.xml pins;
#   4. the RabbitMQ entrypoint renders a valid user file from the
#      environment and refuses guest, short or URL-unsafe passwords.
# Installs Debian's docker-compose when no docker-compose is on PATH.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"

say()  { printf '\033[1m[compose]\033[0m %s\n' "$*"; }
fail() { printf '\033[31m[compose] FAILED:\033[0m %s\n' "$*" >&2; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v docker-compose >/dev/null; then
  say "installing Debian's docker-compose (no Docker engine needed for 'config')"
  as_root apt-get update -qq || fail "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq docker-compose >/dev/null \
    || fail "apt-get install docker-compose failed; run it by hand and read its error"
fi

PY=""
for candidate in python3 /usr/bin/python3; do
  if command -v "$candidate" >/dev/null && "$candidate" -c 'import yaml' 2>/dev/null; then PY="$candidate"; break; fi
done
[ -n "$PY" ] || fail "no python3 with the yaml module (Debian: python3-yaml, which docker-compose depends on)"

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

# A throwaway password: `config` only interpolates it. An empty env file
# keeps a developer's .env (which holds the real password) out of the check.
export RABBITMQ_PASSWORD="compose-check-only-0123"
: >"$TMP/empty.env"
DC=(docker-compose --env-file "$TMP/empty.env" --project-directory "$ROOT")
BASE=(-f docker-compose.yml)
REAL=(-f docker-compose.yml -f docker-compose.real-exchanges.yml)

say "docker-compose config -q (docker-compose.yml, and with docker-compose.real-exchanges.yml)"
"${DC[@]}" "${BASE[@]}" config -q || fail "docker-compose.yml does not validate"
"${DC[@]}" "${REAL[@]}" config -q || fail "docker-compose.yml + docker-compose.real-exchanges.yml do not validate"
if env -u RABBITMQ_PASSWORD "${DC[@]}" "${BASE[@]}" config -q >/dev/null 2>&1; then
  fail "docker-compose.yml validates without RABBITMQ_PASSWORD: the password must be required"
fi
"${DC[@]}" "${BASE[@]}" config >"$TMP/base.yml"
"${DC[@]}" "${REAL[@]}" config >"$TMP/real.yml"
grep -q "stack/definitions.json:/etc/rabbitmq/tickbridge-definitions.d/10-topology.json:ro" "$TMP/base.yml" \
  || fail "the compose RabbitMQ does not import stack/definitions.json itself"

say "the compose Kafka image is the version the local stack pins"
pinned="$(scripts/kafka.sh version)"
image="$(sed -n 's/^ *image: apache\/kafka:\(.*\)$/\1/p' docker-compose.yml | head -1)"
[ -n "$pinned" ] && [ "$image" = "$pinned" ] \
  || fail "docker-compose.yml runs apache/kafka:${image:-?} but stack/kafka/pom.xml pins Kafka ${pinned:-?}: make them equal"

say "building the binaries whose --help the env check reads"
cargo build -q -p tickbridge-feed-sim -p tickbridge-producer -p tickbridge-consumer \
  -p tickbridge-bridge -p tickbridge-broker -p tickbridge-dashboard --bins || fail "cargo build of the binaries failed"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug"

say "every variable set on an app service is a flag of its binary"
"$PY" scripts/compose_env_check.py "$BIN" Dockerfile <"$TMP/base.yml" || fail "docker-compose.yml"
"$PY" scripts/compose_env_check.py "$BIN" Dockerfile <"$TMP/real.yml" || fail "docker-compose.yml + docker-compose.real-exchanges.yml"

say "the env check fails on a variable no binary accepts"
cat >"$TMP/bogus.yml" <<'EOF'
services:
  worker:
    environment:
      WORKER_PREFETCHH: 10
EOF
"${DC[@]}" -f docker-compose.yml -f "$TMP/bogus.yml" config >"$TMP/bogus-config.yml"
if "$PY" scripts/compose_env_check.py "$BIN" Dockerfile <"$TMP/bogus-config.yml" 2>"$TMP/bogus.err"; then
  fail "the env check accepted WORKER_PREFETCHH on worker"
fi
grep -q "service worker: WORKER_PREFETCHH is not a flag" "$TMP/bogus.err" \
  || { cat "$TMP/bogus.err" >&2; fail "the env check failed without naming the service and the variable"; }

say "the RabbitMQ entrypoint renders the dedicated user and refuses bad credentials"
render() {  # render DIR USER PASSWORD
  mkdir -p "$1"; cp stack/definitions.json "$1/10-topology.json"
  TICKBRIDGE_DEFINITIONS_DIR="$1" TICKBRIDGE_RABBITMQ_USER="$2" TICKBRIDGE_RABBITMQ_PASSWORD="$3" \
    sh stack/compose/rabbitmq-entrypoint.sh true
}
render "$TMP/ok" app-user "Secret.pass_0123~" || fail "the entrypoint refused valid credentials"
"$PY" - "$TMP/ok/20-users.json" <<'EOF' || fail "the rendered 20-users.json is wrong"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["users"] == [{"name": "app-user", "password": "Secret.pass_0123~", "tags": ["management"]}], d["users"]
assert d["permissions"][0]["user"] == "app-user" and d["permissions"][0]["vhost"] == "/", d["permissions"]
EOF
[ "$(stat -c %a "$TMP/ok/20-users.json")" = 600 ] || fail "the rendered password file is readable by others"
for bad in "guest|long-enough-password" "app|short" "app|has space in it" 'app|quote"inside-123' "app|" "|long-enough-password"; do
  if render "$TMP/bad" "${bad%%|*}" "${bad#*|}" 2>/dev/null; then
    fail "the entrypoint accepted user/password '${bad%%|*}' / '${bad#*|}'"
  fi
done
say "compose checks passed"
