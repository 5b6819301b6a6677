#!/usr/bin/env bash
# Removes the broker resources of earlier demo runs: every RabbitMQ queue and
# exchange and every Kafka topic whose name starts with `demo-<HHMMSS>`
# (scripts/demo-pipeline.sh names each run's resources so), and the run's
# consumer groups. scripts/demo.sh calls it before a run unless --keep is
# given, so the brokers hold at most the last run's resources: enough to
# look at in the management UI afterwards, never ten runs' worth on disk.
#
#   scripts/demo-cleanup.sh            remove every demo run's resources
#   scripts/demo-cleanup.sh --dry-run  list them only
#
# Environment: MGMT_URL (default http://guest:guest@127.0.0.1:15672/api),
# KAFKA_BROKERS (127.0.0.1:9092).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MGMT_URL="${MGMT_URL:-http://guest:guest@127.0.0.1:15672/api}"
KAFKA_BROKERS="${KAFKA_BROKERS:-127.0.0.1:9092}"
DRY=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY=1 ;;
    *) echo "demo-cleanup.sh: unknown argument $arg (use --dry-run)" >&2; exit 2 ;;
  esac
done
say() { printf '\033[1m[cleanup]\033[0m %s\n' "$*" >&2; }

# RabbitMQ, through the management API.
DRY="$DRY" MGMT_URL="$MGMT_URL" python3 - <<'PY' || say "RabbitMQ: could not clean up (management API at ${MGMT_URL%%@*}@… not answering?)"
import base64, json, os, re, sys, urllib.parse, urllib.request

url = urllib.parse.urlsplit(os.environ["MGMT_URL"])
base = f"{url.scheme}://{url.hostname}:{url.port}{url.path}"
auth = base64.b64encode(f"{url.username}:{url.password}".encode()).decode()
demo = re.compile(r"^demo-\d{6}([.-]|$)")

def call(method, path):
    req = urllib.request.Request(base + path, method=method, headers={"authorization": "Basic " + auth})
    with urllib.request.urlopen(req, timeout=10) as r:
        body = r.read()
        return json.loads(body) if body else None

removed = 0
for kind in ("queues", "exchanges"):
    for item in call("GET", f"/{kind}?columns=name,vhost"):
        if not demo.match(item["name"]):
            continue
        removed += 1
        if os.environ["DRY"] == "1":
            print(f"would delete {kind[:-1]} {item['name']}", file=sys.stderr)
            continue
        vhost = urllib.parse.quote(item["vhost"], safe="")
        name = urllib.parse.quote(item["name"], safe="")
        try:
            call("DELETE", f"/{kind}/{vhost}/{name}")
        except urllib.error.HTTPError as e:
            if e.code != 404:
                raise
print(f"\033[1m[cleanup]\033[0m RabbitMQ: {removed} queues and exchanges of earlier demo runs {'found' if os.environ['DRY'] == '1' else 'removed'}", file=sys.stderr)
PY

# Kafka, with Kafka's own tools (topics first; a group without a topic then
# has nothing to describe).
topics="$("$ROOT/scripts/kafka.sh" tool topics --bootstrap-server "$KAFKA_BROKERS" --list 2>/dev/null \
  | grep -E '^demo-[0-9]{6}([.-]|$)' || true)"
groups="$("$ROOT/scripts/kafka.sh" tool consumer-groups --bootstrap-server "$KAFKA_BROKERS" --list 2>/dev/null \
  | grep -E '^demo-[0-9]{6}([.-]|$)' || true)"
if [ "$DRY" = 1 ]; then
  for t in $topics; do say "would delete topic $t"; done
  for g in $groups; do say "would delete group $g"; done
  exit 0
fi
if [ -n "$topics" ]; then
  "$ROOT/scripts/kafka.sh" tool topics --bootstrap-server "$KAFKA_BROKERS" --delete \
    --topic "$(paste -sd'|' <<<"$topics")" >/dev/null 2>&1 || say "Kafka: could not delete some demo topics"
fi
if [ -n "$groups" ]; then
  args=(); for g in $groups; do args+=(--group "$g"); done
  "$ROOT/scripts/kafka.sh" tool consumer-groups --bootstrap-server "$KAFKA_BROKERS" --delete "${args[@]}" \
    >/dev/null 2>&1 || say "Kafka: could not delete some demo groups (a member still running?)"
fi
say "Kafka: $(grep -c . <<<"$topics" || true) topics and $(grep -c . <<<"$groups" || true) consumer groups of earlier demo runs removed"
