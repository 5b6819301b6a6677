#!/usr/bin/env bash
# Every command README.md and docs/ show as runnable runs, and every relative
# link in them resolves. scripts/test.sh runs it after the compose check,
# against the local stack (scripts/stack.sh up) and the freshly built
# target/debug binaries.
#
# Convention: a fenced block whose info string is `sh runnable` is run.
#
#   ```sh runnable
#   stack-check --timeout 10
#   ```
#
# * Each block runs on its own, as `bash -euo pipefail`, from the repository
#   root, with target/debug ($CARGO_TARGET_DIR/debug when set) first on
#   PATH, so `producer --help` is the binary cargo just built
#   (DOC_COMMANDS_BIN_DIR picks another directory).
#   Blocks share nothing but the brokers and the files they write: a block
#   that needs a feed simulator starts one itself (`feed-sim ... &`).
# * It must exit 0 within its time limit: 300 s by default
#   (DOC_COMMANDS_TIMEOUT), or `timeout=SECONDS` in the info string.
# * Running past the limit is a failure, unless the block also says
#   `timeout-ok`: then still running at the limit is success, for commands
#   that run until stopped (a worker, the bridge). An exit before the limit
#   is judged by its exit code either way.
#
#   ```sh runnable timeout=20 timeout-ok
#   bridge rabbitmq-to-kafka --declare-topology --kafka-topic ticks-bridged
#   ```
#
# * When a block ends (or its time is up) its whole process group gets
#   SIGTERM, as from Ctrl-C, then SIGKILL 10 s later: nothing it started in
#   the background outlives it.
# * Any other fence (```sh, ```text, ...) is shown, not run. An unknown
#   option (`timeout=5s` is fine, `tiemout=5` is not) is an error.
#
# Links: every relative link, image and reference definition (and
# href/src in inline HTML) outside code must name an existing file or
# directory; a `#anchor` into a Markdown file must match one of its headings
# (GitHub's slugs: lower case, punctuation dropped, spaces to hyphens,
# `-1`, `-2` for repeats) or an explicit id="..."/name="...". External
# (https:, mailto:) links are not fetched.
#
# Each problem is printed as `path:line: what` (the block's opening fence,
# or the link's line), with the block and the tail of its output; the exit
# code is 1 if there was any.
#
# Usage: scripts/doc-commands.sh [--links-only | --list] [FILE.md ...]
#        scripts/doc-commands.sh --self-test   # the checker on sample files
# Files default to README.md and docs/**/*.md.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
exec python3 "$ROOT/scripts/doc_commands.py" --root "$ROOT" "$@"
