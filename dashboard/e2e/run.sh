#!/usr/bin/env bash
# Runs the dashboard's browser test (dashboard.e2e.mjs). Installs what it
# needs when missing: Debian's chromium (apt) and playwright-core from the
# lock file (npm ci). No browser is ever downloaded by npm: only
# playwright-core is installed, and it drives /usr/bin/chromium.
# Builds the debug binaries it runs (a no-op after test.sh's build) unless
# DEMO_BIN points elsewhere; expects the local brokers up (scripts/stack.sh up).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"
if [ ! -x /usr/bin/chromium ]; then
  echo "installing Debian's chromium (apt-get install chromium)"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium
fi
if ! command -v npm >/dev/null; then
  echo "installing node and npm (apt-get install nodejs npm)"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq nodejs npm
fi
# npm ci when playwright-core is missing or not the version the lock pins.
if ! node -e "const l = require('./package-lock.json').packages['node_modules/playwright-core'].version;
  process.exit(require('./node_modules/playwright-core/package.json').version === l ? 0 : 1)" 2>/dev/null; then
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
fi
if [ -z "${DEMO_BIN:-}" ]; then
  (cd ../.. && cargo build --bins -p tickbridge-dashboard -p tickbridge-producer -p tickbridge-consumer \
    -p tickbridge-bridge -p tickbridge-feed-sim)
fi
exec node dashboard.e2e.mjs
