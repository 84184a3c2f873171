#!/usr/bin/env bash
# Write faults: `reproduce-paper --quick` into a results folder that fills up, turns read-only, or
# meets a file-size limit. Each must stop with a clear error that names the file (exit status 1,
# never a panic), leave no partial file under a final name (every file there equals the same file
# of an uninterrupted run), and a plain rerun once the fault is gone must finish with results
# equal to an uninterrupted run.
#
#   scripts/write-faults.sh
#
# 1. full disk: the results folder is a 1 MiB tmpfs (the run writes about 27 MB) → ENOSPC;
# 2. read-only: the same tmpfs, remounted read-only → EROFS;
# 3. the tmpfs grown and made writable again → the rerun resumes and completes;
# 4. `ulimit -f` (with SIGXFSZ ignored, as a full disk would behave; with the default action the
#    kernel kills the process, which is what scripts/kill-soak.sh covers) → EFBIG, then a rerun.
# Needs root for the tmpfs mounts; without it, it says so and checks only step 4.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN="${XTASK_BIN:-}"
if [[ -z "$BIN" ]]; then
  cargo build --release -q -p xtask
  BIN="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/xtask"
fi
WORK="$(mktemp -d "${TMPDIR:-/tmp}/write-faults.XXXXXX")"
P="$WORK/project"
R="$P/results"
cleanup() {
  mountpoint -q "$R" 2>/dev/null && umount "$R"
  rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$P/xtask" "$P/configs"
printf '[workspace]\nmembers = ["xtask"]\n' >"$P/Cargo.toml"
printf '[package]\nname = "xtask"\n' >"$P/xtask/Cargo.toml"
cp configs/*.toml "$P/configs/"

run() { # run [shell prefix]: reproduce-paper --quick in the scratch project; stderr in $WORK/err
  (cd "$P" && INTERPRETABLE_MRI_ROOT="$P" bash -c "${1:-} exec \"$BIN\" reproduce-paper --quick") \
    >"$WORK/out" 2>"$WORK/err"
}
fail() {
  echo "write faults: $1" >&2
  tail -15 "$WORK/err" >&2 || true
  exit 1
}
expect_failure() { # expect_failure NAME PATTERN [shell prefix]
  local rc=0
  run "${3:-}" || rc=$?
  ((rc == 1)) || fail "$1: expected exit status 1 (an error), got $rc"
  ! grep -q "panicked" "$WORK/err" || fail "$1: the run panicked"
  local msg
  msg=$(grep '^error: ' "$WORK/err" | tail -1)
  [[ "$msg" =~ $2 ]] || fail "$1: the error does not say '$2': $msg"
  [[ "$msg" == *"$R"* ]] || fail "$1: the error does not name a file under the results folder: $msg"
  echo "$1: $msg" | sed "s|$WORK|<tmp>|g"
  local left
  left=$(find "$R" -name '.tmp-*' 2>/dev/null | wc -l)
  ((left == 0)) || fail "$1: $left temporary files left behind"
  python3 scripts/golden-check.py --subset "$WORK/reference" "$R" >/dev/null \
    || { python3 scripts/golden-check.py --subset "$WORK/reference" "$R" | tail; fail "$1: a file under its final name differs from the uninterrupted run"; }
  echo "$1: every file under its final name ($(find "$R" -type f | wc -l)) equals the uninterrupted run's"
}
expect_complete() { # expect_complete NAME
  run || fail "$1: the rerun failed"
  python3 scripts/golden-check.py "$WORK/reference" "$R" >/dev/null \
    || { python3 scripts/golden-check.py "$WORK/reference" "$R" | tail; fail "$1: results differ from the uninterrupted run"; }
  echo "$1: the rerun completed; results equal the uninterrupted run"
}

echo "== uninterrupted reference run"
run || fail "the reference run failed"
mv "$R" "$WORK/reference"

if [[ "$(id -u)" == 0 ]] && mkdir -p "$R" && mount -t tmpfs -o size=1m tmpfs "$R" 2>/dev/null; then
  echo "== full disk (1 MiB tmpfs)"
  expect_failure "full disk" "No space left on device"
  echo "== read-only"
  mount -o remount,ro,size=512m "$R"
  expect_failure "read-only" "Read-only file system"
  echo "== space again"
  mount -o remount,rw "$R"
  expect_complete "after full disk and read-only"
  umount "$R"
else
  echo "== (not root, or mounts not allowed: the full-disk and read-only steps are skipped)"
fi

echo "== file size limit (ulimit -f 256 KiB, SIGXFSZ ignored)"
rm -rf "$R"
expect_failure "file size limit" "File too large" "trap '' XFSZ; ulimit -f 256;"
expect_complete "after the file size limit"
echo "write faults: all checks passed"
