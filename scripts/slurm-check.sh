#!/usr/bin/env bash
# `cargo xtask slurm` on a real single-node SLURM (scripts/slurm-local.sh), as `.ci/run` runs it:
#
# 1. the quick config through `slurm --submit`: every job of the chain runs (fold and shard
#    arrays, dependent merges, report), and the results equal a local `reproduce-paper --quick`
#    (training CSVs and the per-scan relevance tables byte for byte, at the same seed on the CPU);
# 2. again with one array task cancelled (scancel) before it starts: `slurm status --wait` names
#    it and fails, the jobs after it never start, `slurm --submit --resume` submits only what is
#    missing and completes the run, with the same results;
# 3. refusals that submit nothing: a `--resume` after the config's training settings changed
#    (naming the stage and the setting), and `[train] device = "cuda"` without `--gpus`.
#
# The daemons are stopped at the end, also on failure. Needs root (slurm-local.sh installs
# slurm-wlm and munge when missing). About 2 minutes after the build.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
WAIT="${SLURM_CHECK_WAIT:-900}"

cargo build --release -p xtask
XTASK="$TARGET/release/xtask"
REF="results/reproduce-quick"
if [ ! -s "$REF/REPORT.md" ]; then
  "$XTASK" reproduce-paper --quick
fi

TMP="$(mktemp -d)"
cleanup() {
  scripts/slurm-local.sh stop || true
  rm -rf "$TMP"
}
trap cleanup EXIT
scripts/slurm-local.sh start
eval "$(scripts/slurm-local.sh env)"

# The files that must equal the local run's byte for byte (the mean maps, and the tables computed
# from them, agree within float rounding only: shards average in a different order).
SAME=(
  cv/metrics_epochs.csv cv/metrics_folds.csv cv/predictions.csv cv/summary.csv
  holdout/metrics_epochs.csv holdout/metrics_folds.csv holdout/predictions.csv holdout/summary.csv
  holdout/relevance/scans.csv holdout/relevance/scan_regions.csv holdout/relevance/ground_truth.csv
  report/tables/classification_cv_summary.csv report/tables/classification_holdout_summary.csv
  report/tables/patients.csv
)

compare() { # RUN: every task complete, REPORT.md written (its job checks every promised file), same results
  local run="$1" bad=0
  "$XTASK" slurm status --run "$run" | tee "$TMP/final.txt"
  grep -Eq '^([0-9]+) of \1 tasks complete on disk' "$TMP/final.txt" \
    || { echo "slurm-check: $run: not every task is complete"; return 1; }
  [ -s "$run/REPORT.md" ] || { echo "slurm-check: $run: no REPORT.md"; return 1; }
  # The chain's jobs computed every stage; the report job (--report-only) computed none.
  for stage in data train-cv train-holdout interpret sanity; do
    grep -Eq "^$stage,[0-9.]+,\"complete, skipped" "$run/stages.csv" \
      || { echo "slurm-check: $run/stages.csv: stage $stage was not computed by the chain's jobs"; return 1; }
  done
  for f in "${SAME[@]}"; do
    if ! cmp -s "$REF/$f" "$run/$f"; then
      echo "slurm-check: $run/$f differs from $REF/$f"
      bad=1
    fi
  done
  # The mean maps: the shards' means weighted by their scan counts, equal within float rounding.
  python3 - "$REF/holdout/relevance/maps" "$run/holdout/relevance/maps" <<'PY' || bad=1
import gzip, os, struct, sys
ref, got = sys.argv[1:3]
def voxels(path):
    raw = gzip.open(path).read()
    little = struct.unpack("<i", raw[:4])[0] == 348
    e = "<" if little else ">"
    datatype = struct.unpack(e + "h", raw[70:72])[0]
    assert datatype == 16, f"{path}: datatype {datatype}, expected float32"
    offset = int(struct.unpack(e + "f", raw[108:112])[0])
    n = (len(raw) - offset) // 4
    return struct.unpack(f"{e}{n}f", raw[offset:offset + 4 * n])
names = sorted(n for n in os.listdir(ref) if n.endswith(".nii.gz"))
assert names, f"no mean maps in {ref}"
worst = 0.0
for n in names:
    a, b = voxels(os.path.join(ref, n)), voxels(os.path.join(got, n))
    assert len(a) == len(b), f"{n}: {len(a)} vs {len(b)} voxels"
    scale = max(max(abs(v) for v in a), 1e-30)
    worst = max(worst, max(abs(x - y) for x, y in zip(a, b)) / scale)
print(f"slurm-check: {len(names)} mean maps, largest difference {worst:.2e} of the map's maximum")
sys.exit(0 if worst <= 1e-5 else 1)
PY
  [ "$bad" = 0 ] && echo "slurm-check: $run equals the local run (${#SAME[@]} files byte for byte, the mean maps within rounding)"
  return "$bad"
}

config_for() { # NAME: the quick config with its own run name
  sed "s/^name = \"reproduce-quick\"/name = \"$1\"/" configs/reproduce-quick.toml >"$TMP/$1.toml"
}

# 1. One plain submission.
config_for slurm-check
rm -rf results/slurm-check
"$XTASK" slurm --config "$TMP/slurm-check.toml" --cpus-per-task 2 --shards 2 --submit
"$XTASK" slurm status --run results/slurm-check --wait "$WAIT"
compare results/slurm-check

# 2. A cancelled array task, then --resume.
config_for slurm-resume
rm -rf results/slurm-resume
# The node drained while submitting, so that the task is cancelled before anything starts.
node="$(sinfo --noheader --format=%N | head -n 1)"
scontrol update nodename="$node" state=drain reason=slurm-check
"$XTASK" slurm --config "$TMP/slurm-resume.toml" --cpus-per-task 2 --shards 2 --submit | tee "$TMP/submit.txt"
cv_job="$(awk '$1 == "cv" && $2 == "job" {print $3}' "$TMP/submit.txt")"
[ -n "$cv_job" ] || { echo "slurm-check: no cv job id in the submission's output"; exit 1; }
scancel "${cv_job}_2"
scontrol update nodename="$node" state=resume
# The chain did not succeed: `status --wait` says so in its exit status.
if "$XTASK" slurm status --run results/slurm-resume --wait "$WAIT" >"$TMP/status.txt"; then
  cat "$TMP/status.txt"
  echo "slurm-check: status --wait exited 0 although a task was cancelled"
  exit 1
fi
cat "$TMP/status.txt"
# A pending array task cancelled leaves no trace in SLURM: status shows it GONE (or CANCELLED
# where accounting keeps it).
grep -Eq '^cv +2 +missing +(CANCELLED|GONE)' "$TMP/status.txt" \
  || { echo "slurm-check: status does not show cv task 2 cancelled"; exit 1; }
grep -Eq '^cv-merge .*DependencyNeverSatisfied' "$TMP/status.txt" \
  || { echo "slurm-check: status does not show cv-merge waiting on the failed task"; exit 1; }
if [ -e results/slurm-resume/REPORT.md ]; then
  echo "slurm-check: the report ran although a fold was cancelled"
  exit 1
fi
"$XTASK" slurm --config "$TMP/slurm-resume.toml" --cpus-per-task 2 --shards 2 --submit --resume | tee "$TMP/resume.txt"
grep -Eq '^ +cv +job [0-9]+ tasks 2$' "$TMP/resume.txt" \
  || { echo "slurm-check: --resume did not resubmit exactly cv task 2"; exit 1; }
grep -Eq '^ +holdout +complete, not submitted' "$TMP/resume.txt" \
  || { echo "slurm-check: --resume resubmitted the complete hold-out training"; exit 1; }
"$XTASK" slurm status --run results/slurm-resume --wait "$WAIT"
compare results/slurm-resume

# 3. Refusals, before anything is written or submitted.
sed 's/^epochs = .*/epochs = 120/' "$TMP/slurm-resume.toml" >"$TMP/slurm-resume-edited.toml"
cmp -s "$TMP/slurm-resume.toml" "$TMP/slurm-resume-edited.toml" \
  && { echo "slurm-check: the edit of [train] epochs changed nothing"; exit 1; }
jobs_before="$(cat results/slurm-resume/slurm/jobs.json)"
frozen_before="$(cat results/slurm-resume/slurm/config/cv.toml)"
if "$XTASK" slurm --config "$TMP/slurm-resume-edited.toml" --cpus-per-task 2 --shards 2 --submit --resume \
  >"$TMP/edited.txt" 2>&1; then
  cat "$TMP/edited.txt"
  echo "slurm-check: --resume after a change of [train] epochs was not refused"
  exit 1
fi
grep -q 'stage `cv`' "$TMP/edited.txt" && grep -q '\[train\] epochs' "$TMP/edited.txt" \
  || { cat "$TMP/edited.txt"; echo "slurm-check: the refusal does not name the stage and the setting"; exit 1; }
[ "$jobs_before" = "$(cat results/slurm-resume/slurm/jobs.json)" ] \
  && [ "$frozen_before" = "$(cat results/slurm-resume/slurm/config/cv.toml)" ] \
  || { echo "slurm-check: the refused --resume rewrote the chain's files"; exit 1; }
grep -q '^device' "$TMP/slurm-resume.toml" && { echo "slurm-check: the quick config names a device already"; exit 1; }
sed '/^\[train\]/a device = "cuda"' "$TMP/slurm-resume.toml" >"$TMP/slurm-cuda.toml"
grep -q '^device = "cuda"' "$TMP/slurm-cuda.toml" || { echo "slurm-check: could not write the CUDA config"; exit 1; }
if "$XTASK" slurm --config "$TMP/slurm-cuda.toml" >"$TMP/cuda.txt" 2>&1; then
  echo "slurm-check: device = \"cuda\" without --gpus was not refused"
  exit 1
fi
grep -q -- '--gpus N' "$TMP/cuda.txt" || { cat "$TMP/cuda.txt"; echo "slurm-check: no --gpus advice"; exit 1; }
echo "slurm-check: passed"
