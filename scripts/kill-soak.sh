#!/usr/bin/env bash
# Kill soak: SIGKILL `reproduce-paper --quick` at random moments, rerun it plainly, and check that
# the final results equal an uninterrupted run (scripts/golden-check.py: every CSV, NIfTI map and
# figure byte for byte, timings aside; the synthetic cohort likewise; no stray temporary file).
#
#   scripts/kill-soak.sh [KILLS] [SEED]      (default 20 kills, seed 1)
#
# Each try runs in a scratch project (a temporary folder named by $INTERPRETABLE_MRI_ROOT that
# holds a copy of configs/), so the checkout's own results/ and data/ are untouched. A kill lands
# at a uniformly random moment within the uninterrupted run's duration; after each kill the run
# is started again and killed again, until KILLS kills have landed, then one plain rerun must
# finish. Kills that land after the run has already finished are not counted.
# Prints one line per kill (moment, stages complete at that moment) and a summary.
set -euo pipefail
cd "$(dirname "$0")/.."
KILLS="${1:-20}"
SEED="${2:-1}"
RANDOM="$SEED"

BIN="${XTASK_BIN:-}"
if [[ -z "$BIN" ]]; then
  cargo build --release -q -p xtask
  BIN="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/xtask"
fi
WORK="$(mktemp -d "${TMPDIR:-/tmp}/kill-soak.XXXXXX")"
trap '[[ -n "${KEEP_SOAK:-}" ]] || rm -rf "$WORK"' EXIT
P="$WORK/project" # every run uses this root, so absolute paths in the outputs agree

fresh() { # a fresh scratch project root with the configs
  rm -rf "$P"
  mkdir -p "$P/xtask" "$P/configs"
  printf '[workspace]\nmembers = ["xtask"]\n' >"$P/Cargo.toml"
  printf '[package]\nname = "xtask"\n' >"$P/xtask/Cargo.toml"
  cp configs/*.toml "$P/configs/"
}
start_run() { # reproduce-paper --quick in the scratch project, in the background; pid in $pid
  (cd "$P" && INTERPRETABLE_MRI_ROOT="$P" exec "$BIN" reproduce-paper --quick) >>"$WORK/log" 2>&1 &
  pid=$!
}
fail() {
  echo "kill soak: $1 (log: $WORK/log)" >&2
  tail -20 "$WORK/log" >&2
  trap - EXIT
  exit 1
}

echo "== uninterrupted reference run"
fresh
t0=$(date +%s%N)
start_run
wait "$pid" || fail "the reference run failed"
ref_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
mv "$P" "$WORK/reference"
echo "reference: ${ref_ms} ms"

# Cycles: a fresh project, then start-and-kill at a random moment within the reference duration
# until a run finishes before its kill lands; the finished outputs must equal the reference.
landed=0
cycles=0
runs=0
while (( landed < KILLS )); do
  cycles=$((cycles + 1))
  fresh
  echo "== cycle $cycles"
  while true; do
    runs=$((runs + 1))
    delay_ms=$(( (RANDOM * 32768 + RANDOM) % ref_ms ))
    log_lines=$(wc -l <"$WORK/log")
    start_run
    sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
    if kill -KILL "$pid" 2>/dev/null; then
      wait "$pid" 2>/dev/null || true
      landed=$((landed + 1))
      stage=$(tail -n +"$((log_lines + 1))" "$WORK/log" | sed -n 's/^=== reproduce-paper: \([a-z -]*[a-z]\).*/\1/p' | tail -1)
      printf 'kill %2d at %5d ms, during %s\n' "$landed" "$delay_ms" "${stage:-start-up}"
    else
      wait "$pid" || fail "a run failed after $landed kills"
      break
    fi
  done
  python3 scripts/golden-check.py "$WORK/reference/results" "$P/results" >/dev/null \
    || { python3 scripts/golden-check.py "$WORK/reference/results" "$P/results" | tail -20; fail "cycle $cycles: results differ from the reference"; }
  # The synthetic cohort must be identical; data/cache is keyed by each source file's identity
  # (its modification time among it), so its names differ between cohorts written at two times.
  python3 scripts/golden-check.py "$WORK/reference/data/synth" "$P/data/synth" >/dev/null \
    || { python3 scripts/golden-check.py "$WORK/reference/data/synth" "$P/data/synth" | tail -20; fail "cycle $cycles: the cohort differs from the reference"; }
  left=$(find "$P" -name '.tmp-*' | wc -l)
  (( left == 0 )) || fail "cycle $cycles: $left temporary files left behind"
done
echo "kill soak: $landed kills survived in $cycles cycles ($runs runs started); every cycle's final results and data equal the uninterrupted run"
