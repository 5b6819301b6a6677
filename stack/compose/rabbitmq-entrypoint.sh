#!/bin/sh
# Entrypoint of the compose RabbitMQ: renders the broker's user from the
# environment, then runs the image's own entrypoint ("$@").
#
# RabbitMQ imports every file of /etc/rabbitmq/tickbridge-definitions.d at
# boot, in name order (stack/compose/rabbitmq.conf):
#   10-topology.json   stack/definitions.json itself (mounted read-only): the
#                      same exchanges, queues and bindings as the local stack
#   20-users.json      written here: the dedicated user and its permissions
#   30-compose.json    stack/compose/definitions.compose.json: what only the
#                      compose stack adds (the bridge's queue)
# Definition files cannot read environment variables, hence this step. When
# definitions are imported at boot RabbitMQ creates no default user, so there
# is no guest account at all (and rabbitmq.conf confines guest to localhost
# should one ever be created).
#
# Environment:
#   TICKBRIDGE_RABBITMQ_USER      user name (required)
#   TICKBRIDGE_RABBITMQ_PASSWORD  its password (required)
#   TICKBRIDGE_DEFINITIONS_DIR    where to write (default /etc/rabbitmq/tickbridge-definitions.d)
#
# Both are restricted to URL-safe characters (letters, digits, - . _ ~) so
# that the apps' AMQP URL, which embeds them, needs no percent-encoding, and
# so that the JSON written below needs no escaping. Anything else is refused
# here with a message, instead of failing later as a confusing login error.
set -eu

dir="${TICKBRIDGE_DEFINITIONS_DIR:-/etc/rabbitmq/tickbridge-definitions.d}"
user="${TICKBRIDGE_RABBITMQ_USER:-}"
pass="${TICKBRIDGE_RABBITMQ_PASSWORD:-}"

fail() { echo "tickbridge rabbitmq entrypoint: $*" >&2; exit 64; }

url_safe() {
  case "$1" in
    "" | *[!A-Za-z0-9._~-]*) return 1 ;;
    *) return 0 ;;
  esac
}

url_safe "$user" || fail "RABBITMQ_USER must be non-empty and use only letters, digits and - . _ ~ (got '$user')"
[ "$user" != guest ] || fail "RABBITMQ_USER must not be guest: the compose stack uses a dedicated user"
url_safe "$pass" || fail "RABBITMQ_PASSWORD must be non-empty and use only letters, digits and - . _ ~ (for example: openssl rand -hex 16)"
[ "${#pass}" -ge 12 ] || fail "RABBITMQ_PASSWORD must be at least 12 characters long"
[ -r "$dir/10-topology.json" ] || fail "$dir/10-topology.json (stack/definitions.json) is not mounted"

# The password file is readable by the broker's user only.
umask 077
tmp="$dir/.20-users.json.tmp"
cat >"$tmp" <<JSON
{
  "vhosts": [{ "name": "/" }],
  "users": [
    { "name": "$user", "password": "$pass", "tags": ["management"] }
  ],
  "permissions": [
    { "user": "$user", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*" }
  ]
}
JSON
if [ "$(id -u)" = 0 ] && id rabbitmq >/dev/null 2>&1; then
  chown rabbitmq:rabbitmq "$tmp"
fi
mv -f "$tmp" "$dir/20-users.json"

exec "$@"
