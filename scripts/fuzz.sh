#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a fixed time budget each.
#
#   scripts/fuzz.sh                     # 25 s per target (the CI budget, ~2 min in all)
#   FUZZ_SECONDS=600 scripts/fuzz.sh    # longer, on demand
#   scripts/fuzz.sh schema_decode       # only the named target(s)
#
# Works on the stable toolchain: cargo-fuzz passes nightly-only `-Z` flags
# to rustc, which RUSTC_BOOTSTRAP=1 allows. No sanitizer by default (the
# crates are `#![forbid(unsafe_code)]`; what fuzzing hunts here is panics,
# overflows caught by debug assertions, hangs and runaway memory);
# FUZZ_SANITIZER=address turns AddressSanitizer on. Each run starts from the
# seeds in fuzz/seeds/<target> in a scratch corpus, so the tree stays clean;
# a crashing input is saved under fuzz/artifacts/<target>/ and the script
# exits non-zero. Turn every crash into a unit test with the exact input.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"
export RUSTC_BOOTSTRAP=1
SECONDS_PER_TARGET="${FUZZ_SECONDS:-25}"
SANITIZER="${FUZZ_SANITIZER:-none}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz (once)"
    cargo install cargo-fuzz --locked
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi

# One build of every target: release, with debug assertions (overflow checks).
echo "== building fuzz targets"
cargo fuzz build --fuzz-dir fuzz -O -a --sanitizer "$SANITIZER"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
status=0
summary=""
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t"
    log="$scratch/$t.log"
    echo "== fuzz $t for ${SECONDS_PER_TARGET}s"
    if cargo fuzz run --fuzz-dir fuzz -O -a --sanitizer "$SANITIZER" "$t" \
        "$scratch/$t" "fuzz/seeds/$t" -- \
        -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
        -max_len=65536 -print_final_stats=1 >"$log" 2>&1; then
        result="ok"
    else
        result="FAILED (see fuzz/artifacts/$t/)"
        status=1
        tail -n 40 "$log"
    fi
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    corpus="$(find "$scratch/$t" -type f | wc -l)"
    summary+="$(printf '%-16s %12s execs  %6s corpus  %s' "$t" "${execs:-?}" "$corpus" "$result")"$'\n'
done
echo
echo "fuzz summary (${SECONDS_PER_TARGET}s per target, sanitizer: $SANITIZER)"
printf '%s' "$summary"
exit "$status"
