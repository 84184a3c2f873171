#!/usr/bin/env bash
# GPU check (issues 3 and 11), for a session that is lent a GPU machine (the `device` tool).
# `build` builds with `--features cuda` (xtask and the paper_cnn benchmark); `run [STEPS]` runs
# these steps, in this order, each under its own time limit (`timeout`), and writes
# gpu-check.md (a Markdown table, growing step by step) and the raw files to $OUT (or
# results/gpu-check):
#   probe      the per-operation probe of a training step (`xtask bench --ops`, 2 mm then 1 mm,
#              batch 5): each operation alone, killed after 20 s, compared with the CPU at 2 mm
#   training   3 fixed-seed Adam steps (dropout off) on the CPU and on CUDA, losses within 1e-3
#   agreement  CPU vs CUDA inference on the same weights (max |Δp| < 1e-4, 1 mm)
#   epoch      a 1 mm synthetic cohort (procedural phantom, 193×229×193; no download) and one
#              training epoch on CUDA (hold-out split, the paper's network and settings), timed
#   bench      `cargo xtask bench` on CUDA (Burn vs PyTorch CUDA where torch is there; 2 mm, 1 mm)
# STEPS is a comma-separated subset (default: all). GPU time is short (about 15 minutes a
# session, at most 10 a call), so split it over calls, the most telling first:
#   bash scripts/gpu-check.sh build      # on this machine: → target/gpu-check/*.xz (~20 MB)
#   device run: "bash scripts/gpu-check.sh run probe", carry ["target/gpu-check"], timeout_s 540
#   device run: "bash scripts/gpu-check.sh run training,agreement,epoch" (same carry)
#   device run: "bash scripts/gpu-check.sh run bench" (same carry), if time is left
# `MODEL_GPU_OPS=burn` trains with Burn's own CUDA operations instead of the portable ones
# (model::fast::portable). On a GPU machine that has cargo and the crates, `bash
# scripts/gpu-check.sh all` builds and runs. `SMOKE=1 bash scripts/gpu-check.sh run` runs the
# same steps on the CPU with a tiny phantom (checks this script without a GPU; the agreement
# check is skipped, the training check compares the fast CPU paths with Burn's operations).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
pkg=target/gpu-check

# The CUDA build, exactly as .ci/run checks it (one cargo call, so the Burn stack builds once),
# printing "name path" for the xtask binary and the paper_cnn bench. Extra cargo arguments follow.
cuda_build() {
    cargo build --release -p xtask -p model --bin xtask --bench paper_cnn --message-format=json-render-diagnostics "$@" |
        python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] in ("xtask", "paper_cnn") and m.get("executable"):
        print(m["target"]["name"], m["executable"])'
}

build() {
    echo "== build (--features xtask/cuda)"
    mkdir -p "$pkg"
    local name src
    cuda_build --features xtask/cuda | while read -r name src; do
        cp "$src" "$pkg/$name" && strip "$pkg/$name" && xz -T0 -6 -f "$pkg/$name"
    done
    [ -f "$pkg/xtask.xz" ] && [ -f "$pkg/paper_cnn.xz" ] || { echo "build incomplete: $(ls "$pkg")" >&2; exit 1; }
    ls -la "$pkg"
}

unpack() {
    bin=/tmp/gpu-check-bin
    mkdir -p "$bin"
    for name in xtask paper_cnn; do
        if [ -f "$pkg/$name.xz" ]; then
            if command -v xz >/dev/null; then xz -dc "$pkg/$name.xz" >"$bin/$name"; else
                python3 -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
                    "$pkg/$name.xz" "$bin/$name"; fi
            chmod +x "$bin/$name"
        elif [ "${SMOKE:-0}" = 1 ] && command -v cargo >/dev/null; then
            # CPU smoke test on a development machine: this build, without CUDA.
            cp "$(cuda_build | awk -v n="$name" '$1 == n {print $2}')" "$bin/$name"
        else
            echo "no $name binary: run 'bash scripts/gpu-check.sh build' first (and carry $pkg)" >&2; exit 1
        fi
    done
}

# Whether step $1 is among the requested ones.
want() { [[ ",$steps," == *",$1,"* ]]; }

run() {
    steps=${1:-probe,training,agreement,epoch,bench}
    unpack
    local out=${OUT:-$root/results/gpu-check} work=/tmp/gpu-check-work device=cuda
    local shape="[193, 229, 193]" n=8 grids=2mm,1mm reps=5 probe_grids=2mm,1mm probe_reps=3
    if [ "${SMOKE:-0}" = 1 ]; then
        device=cpu shape="[80, 96, 80]" n=3 grids=2mm reps=1 probe_grids=80x81x80 probe_reps=1
    fi
    mkdir -p "$out" && rm -rf "$work" && mkdir -p "$work"
    # cudarc loads libcuda and libnvrtc at run time: add the usual CUDA folders and the pip wheels'.
    local extra
    extra=$(ls -d /usr/local/cuda/lib64 /usr/local/nvidia/lib64 \
        "$(python3 -c 'import nvidia,os; print(os.path.dirname(nvidia.__path__[0]))' 2>/dev/null)"/nvidia/*/lib 2>/dev/null |
        tr '\n' ':' || true)
    export LD_LIBRARY_PATH="${extra}${LD_LIBRARY_PATH:-}"
    { nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"; } | tee "$out/gpu.txt"
    # The report grows row by row, so a run cut off by its time limit still says what it got.
    local md="$out/gpu-check.md"
    [ -f "$md" ] || printf '# GPU check (issues 3, 11)\n\n| check | result |\n|---|---|\n' >"$md"
    echo "| GPU ($steps) | $(head -1 "$out/gpu.txt") |" >>"$md"

    if want probe; then
        echo "== per-operation probe on $device ($probe_grids, batch 5)"
        local probe_line="done: see probe/ops.md"
        timeout 420 "$bin/xtask" bench --ops --device "$device" --bench-bin "$bin/paper_cnn" --grids "$probe_grids" \
            --reps "$probe_reps" --op-timeout 20 --reference-grids "${probe_grids%%,*}" --out "$out/probe" ||
            probe_line="FAILED or cut off (see the log; probe/.ops.json holds the grids it finished)"
        echo "| per-operation probe ($probe_grids) | $probe_line |" >>"$md"
    fi

    if want training; then
        echo "== 3 fixed-seed training steps on the CPU and on $device (2 mm, dropout off)"
        local train_line
        train_line=$(timeout 240 "$bin/paper_cnn" --check-training --device "$device" --grids 2mm \
            --json "$out/training.json" >/dev/null 2>"$out/training.log" && python3 -c 'import json, sys
a = json.load(open(sys.argv[1]))
other = [k for k in a if k.startswith("loss_") and k != "loss_cpu"][0]
print("max abs Δloss = %.2e (%s, tolerance %g); CPU %s, %s %s" % (a["max_abs_dloss"], "pass" if a["pass"] else "FAIL",
      a["tolerance"], [round(x, 6) for x in a["loss_cpu"]], other[5:], [round(x, 6) for x in a[other]]))' \
            "$out/training.json" || echo "FAILED (see training.log)")
        echo "| training steps, CPU vs $device (2 mm, batch 5, dropout off) | $train_line |" >>"$md"
    fi

    if want agreement; then
    local agree="skipped (SMOKE)"
    if [ "$device" = cuda ]; then
        echo "== CPU vs CUDA inference on the same weights (1 mm, 3 scans)"
        # Exits non-zero on disagreement (after writing the JSON); the other checks still run.
        "$bin/paper_cnn" --device cuda --cases "" --grids 1mm --check-agreement --json "$out/agreement.json" ||
            echo "agreement check FAILED" >&2
        agree=$(python3 -c 'import json, sys
a = json.load(open(sys.argv[1]))["agreement"]
verdict = "pass" if a["pass"] else "FAIL"
print("max abs Δp = %.2e (%s, tolerance %g)" % (a["max_abs_dp"], verdict, a["tolerance"]))' "$out/agreement.json" ||
            echo "FAILED (see the log)")
    fi
    echo "| CPU vs CUDA inference, same weights (1 mm, 3 scans) | $agree |" >>"$md"
    fi

    if want epoch; then

    echo "== synthetic cohort $shape (phantom) and one training epoch on $device"
    cat >"$work/gpu-check.toml" <<EOF
[run]
name = "gpu-check"
results_dir = "$work/results"

[synth]
out_dir = "$work/synth"
anatomy = "phantom"
phantom_shape = $shape
n_cn = $n
n_ad = $n
n_mci = 0
n_corrupt = 0
missing_fraction = 0.0

[data]
table = "$work/synth/ADNI_synth_1.5T.csv"
images = "$work/synth/images"
known_corrupt_file = "$work/synth/known_corrupt.txt"

[split]
k = 2
holdout_ad = 2
holdout_cn = 2

[preprocess]
mask = "$work/synth/brain_mask.nii.gz"
downsample = 1
cache_dir = "$work/cache"

[train]
mode = "holdout"
epochs = 1
device = "$device"
EOF
    local t0 t1 t2
    t0=$(date +%s.%N)
    timeout 240 "$bin/xtask" prepare --config "$work/gpu-check.toml" 2>&1 | tail -5
    t1=$(date +%s.%N)
    echo "| prepare (synth + preprocess, $shape, $((2 * n)) patients) | $(python3 -c "print(f'{$t1 - $t0:.1f} s')") |" >>"$md"
    local trained=1
    timeout 360 "$bin/xtask" train --config "$work/gpu-check.toml" --device "$device" 2>&1 | tee "$out/train.log" | tail -15 ||
        trained=0
    t2=$(date +%s.%N)
    local timing
    timing=$(find "$work/results" -name timing.csv 2>/dev/null | head -1 || true)
    [ -n "$timing" ] && cp "$timing" "$out/timing.csv"
    local epoch_line="FAILED (see train.log)"
    [ "$trained" = 1 ] && epoch_line=$(python3 - "$work/gpu-check.toml" "$t1" "$t2" "${timing:-}" <<'PY'
import csv, sys
_, cfg, t1, t2, timing = sys.argv
rows = list(csv.DictReader(open(timing))) if timing else []
epoch = next((r for r in rows if r.get("epoch") not in (None, "", "total")), None)
col = next((c for c in (epoch or {}) if "second" in c), None)
sec = f"{float(epoch[col]):.1f} s" if epoch and col else "see timing.csv"
print(f"epoch {sec}; whole `xtask train` {float(t2) - float(t1):.1f} s (incl. start-up, kernel compilation, evaluation)")
PY
)
    echo "| one training epoch on $device ($shape, hold-out, batch 5) | $epoch_line |" >>"$md"
    fi

    if want bench; then
    echo "== benchmark on $device"
    timeout 420 "$bin/xtask" bench --device "$device" --bench-bin "$bin/paper_cnn" --grids "$grids" --reps "$reps" --out "$out" ||
        echo "| benchmark FAILED or cut off (see the log) |" >"$out/bench.md"

    { echo; sed -n '/^| threads/,/^$/p;/^| benchmark FAILED/p' "$out/bench.md"; } >>"$md"
    fi
    cat "$out/gpu-check.md"
    # On a GPU every step is reported, failed or not; the CPU smoke run (CI) fails on a failure.
    if [ "${SMOKE:-0}" = 1 ] && grep -q 'FAILED\|FAIL)' "$md"; then
        echo "gpu-check smoke: a step failed (see $md)" >&2
        return 1
    fi
}

case "${1:-run}" in
build) build ;;
run) run "${2:-}" ;;
all) build && run "${2:-}" ;;
*) echo "usage: $0 [build|run|all]" >&2; exit 2 ;;
esac
