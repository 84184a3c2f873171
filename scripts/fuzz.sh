#!/usr/bin/env bash
# Fuzzing of the project's file readers with cargo-fuzz (libFuzzer); see fuzz/README.md.
#
#   scripts/fuzz.sh build               build every target (nightly, cargo-fuzz installed if missing)
#   scripts/fuzz.sh smoke [SECONDS] [TARGET...]
#                                       build, then run each target SECONDS (default 30) from the
#                                       committed seeds in a throw-away corpus; fails on any crash,
#                                       timeout or out-of-memory
#   scripts/fuzz.sh long [SECONDS] [TARGET...]
#                                       the campaign: each target until 1,000,000 executions
#                                       (RUNS=…) or SECONDS (default 900), growing the working
#                                       corpus fuzz/corpus/<target>; prints executions per target
#
# Every run: one in-process fuzzer (no -jobs/-workers), -rss_limit_mb=2048, -timeout=10; the build is
# `--release` with debug assertions and overflow checks (cargo-fuzz's default) and no sanitizer
# (`-s none`; the targets' allocator caps single allocations at 1 GiB instead). Crash inputs land
# in fuzz/artifacts/<target>/, logs in fuzz/artifacts/logs/. The build goes to FUZZ_TARGET_DIR
# (default ~/.cache/adni-relevance/fuzz-target), never into the main checkout's target/.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS=(nifti adni_table atlas_labels config weights)
TARGET_DIR="${FUZZ_TARGET_DIR:-${HOME}/.cache/adni-relevance/fuzz-target}"
LOGS=fuzz/artifacts/logs
FLAGS=(-s none --target-dir "$TARGET_DIR")

ensure_tools() {
    if ! rustup toolchain list | grep -q '^nightly'; then
        rustup toolchain install nightly --profile minimal
    fi
    if ! cargo fuzz --version >/dev/null 2>&1; then
        cargo install cargo-fuzz --locked
    fi
}

build() {
    ensure_tools
    local start=$SECONDS
    cargo +nightly fuzz build "${FLAGS[@]}"
    echo "== fuzz build took $((SECONDS - start)) s"
}

# Scratch folders of finished target processes (each writes its inputs to /dev/shm/adni-fuzz-<pid>).
clean_scratch() {
    local d
    for d in /dev/shm/adni-fuzz-*; do
        [ -d "$d" ] || continue
        kill -0 "${d##*-}" 2>/dev/null || rm -rf "$d"
    done
}

# run TARGET CORPUS SECONDS RUNS: one libFuzzer process; prints "target runs seconds exec/s corpus".
run_one() {
    local t=$1 corpus=$2 secs=$3 runs=$4 log rc
    mkdir -p "$LOGS" "fuzz/artifacts/$t" "$corpus"
    log="$LOGS/$t.log"
    local start=$SECONDS
    set +e
    cargo +nightly fuzz run "${FLAGS[@]}" "$t" "$corpus" "fuzz/seeds/$t" -- \
        -rss_limit_mb=2048 -timeout=10 -max_total_time="$secs" -runs="$runs" \
        -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" >"$log" 2>&1
    rc=$?
    set -e
    clean_scratch
    local wall=$((SECONDS - start))
    local done_runs
    done_runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
    local rate
    rate=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
    local files
    files=$(find "$corpus" -type f | wc -l)
    printf '%-13s %12s runs %6s s %8s exec/s %6s corpus files  exit %s\n' \
        "$t" "${done_runs:-?}" "$wall" "${rate:-?}" "$files" "$rc"
    if [ "$rc" -ne 0 ]; then
        echo "!! $t failed (exit $rc); the end of $log:" >&2
        tail -40 "$log" >&2
        return 1
    fi
}

cmd="${1:-smoke}"
shift || true
case "$cmd" in
build)
    build
    ;;
smoke)
    secs="${1:-30}"
    shift || true
    [ "$#" -gt 0 ] && TARGETS=("$@")
    build
    failed=0
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    for t in "${TARGETS[@]}"; do
        run_one "$t" "$tmp/$t" "$secs" -1 || failed=1
    done
    [ "$failed" -eq 0 ] || { echo "== fuzz smoke FAILED" >&2; exit 1; }
    echo "== fuzz smoke passed"
    ;;
long)
    secs="${1:-900}"
    shift || true
    [ "$#" -gt 0 ] && TARGETS=("$@")
    build
    failed=0
    for t in "${TARGETS[@]}"; do
        run_one "$t" "fuzz/corpus/$t" "$secs" "${RUNS:-1000000}" || failed=1
    done
    [ "$failed" -eq 0 ] || exit 1
    ;;
*)
    sed -n '2,20p' "$0"
    exit 2
    ;;
esac
