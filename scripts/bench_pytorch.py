#!/usr/bin/env python3
"""PyTorch CPU reference for `cargo xtask bench`: the paper's CNN (PAPER.md section 1), same
shapes, batch sizes, semantics and timing rules as crates/model/benches/paper_cnn.rs.

Cases (per grid):
  train       one Adam step (lr 1e-4): train mode (BatchNorm batch statistics, dropout 0.8),
              forward + cross-entropy + backward + step, batch 5; reported per scan (time / 5)
  forward     eval forward (running statistics, no dropout, no autograd), batch 5; per scan
  input_grad  d softmax(logits)[class 1 = AD] / d input for one scan in eval mode, with
              parameters frozen (no weight gradients), batch 1

Every case runs in its own child process (fresh allocator, honest peak memory): one untimed
warm-up repetition, then N timed repetitions; median and min are reported. Peak memory is the
child's VmHWM (peak resident set) read from /proc/self/status at the end (host memory; on
--device cuda also torch's peak GPU allocation).

Prints one JSON object on standard output. Needs torch (CPU build or the default wheel).
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

GRIDS = {"2mm": (97, 115, 97), "1mm": (193, 229, 193)}
CASES = ("train", "forward", "input_grad")
CHANNELS = (8, 16, 32, 64)
POOLS = (2, 3, 2, 3)
TARGET_CLASS = 1


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return [float(v) for v in f.read().split()[:3]]
    except OSError:
        return None


def cpu_snapshot():
    """(CPU-busy seconds of the whole machine, CPU seconds of this process and its children)."""
    try:
        with open("/proc/stat") as f:
            v = [float(x) for x in f.readline().split()[1:]]
    except OSError:
        return None
    busy = v[0] + v[1] + v[2] + sum(v[5:8])
    t = os.times()
    return busy / os.sysconf("SC_CLK_TCK"), t.user + t.system + t.children_user + t.children_system


def other_cpu_cores(before, wall):
    """Average number of cores that other processes kept busy (near 0 for a trustworthy run)."""
    after = cpu_snapshot()
    if before is None or after is None or wall <= 0:
        return None
    return max(0.0, ((after[0] - before[0]) - (after[1] - before[1])) / wall)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def status_kib(field):
    """A `kB` field of /proc/self/status (VmHWM, VmRSS), in KiB; None where unavailable."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def build_model(torch, shape):
    """ClassificationModel3D exactly as PAPER.md section 1 (flatten size derived from the grid)."""
    nn = torch.nn

    class ClassificationModel3D(nn.Module):
        def __init__(self):
            super().__init__()
            layers = []
            c_in = 1
            dims = list(shape)
            for c_out, pool in zip(CHANNELS, POOLS):
                layers += [
                    nn.Conv3d(c_in, c_out, kernel_size=3),
                    nn.BatchNorm3d(c_out),
                    nn.ReLU(),
                    nn.MaxPool3d(pool, pool),
                ]
                dims = [(d - 2) // pool for d in dims]
                c_in = c_out
            self.features = nn.Sequential(*layers)
            flat = c_in * dims[0] * dims[1] * dims[2]
            self.head = nn.Sequential(
                nn.Flatten(),
                nn.Dropout(0.8),
                nn.Linear(flat, 128),
                nn.ReLU(),
                nn.Dropout(0.0),
                nn.Linear(128, 64),
                nn.ReLU(),
                nn.Linear(64, 2),
            )

        def forward(self, x):
            return self.head(self.features(x))

    return ClassificationModel3D()


def run_case(args):
    """Child mode: measures one (grid, case) and prints one JSON object."""
    rss_start = status_kib("VmRSS")
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    shape = GRIDS[args.grid]
    model = build_model(torch, shape).to(device)
    batch = 1 if args.case == "input_grad" else args.batch
    x = torch.randn(batch, 1, *shape).to(device)
    y = torch.tensor([i % 2 for i in range(batch)]).to(device)

    def sync():
        # float(...) below already waits for the result; this makes the rule explicit on CUDA.
        if device.type == "cuda":
            torch.cuda.synchronize()

    if args.case == "train":
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)

        def step():
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            sync()
            return float(loss)

    elif args.case == "forward":
        model.eval()

        def step():
            with torch.no_grad():
                out = model(x).cpu()
            sync()
            return float(out.sum())

    else:
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)

        def step():
            # Class 1 (AD), as the Rust benchmark; the cost does not depend on the class.
            xi = x.clone().requires_grad_(True)
            probs = torch.softmax(model(xi), dim=1)
            (grad,) = torch.autograd.grad(probs[0, TARGET_CLASS], xi)
            sync()
            return float(grad.abs().sum())

    rss_ready = status_kib("VmRSS")
    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    per = 1 if args.case == "input_grad" else batch
    hwm = status_kib("VmHWM")
    out = {
        "grid": args.grid,
        "shape": list(shape),
        "case": args.case,
        "batch": batch,
        "warmup": args.warmup,
        "reps": args.reps,
        "times_s": times,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "per_scan_median_s": statistics.median(times) / per,
        "per_scan_min_s": min(times) / per,
        "peak_rss_mb": hwm / 1024 if hwm is not None else None,
        "start_rss_mb": rss_start / 1024 if rss_start is not None else None,
        "ready_rss_mb": rss_ready / 1024 if rss_ready is not None else None,
        "threads": torch.get_num_threads(),
        "device": args.device,
    }
    if device.type == "cuda":
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(out))


def device_name(text):
    """cpu, cuda or cuda:N (GPU number N), as torch.device reads them."""
    name = text.strip().lower()
    if name in ("cpu", "cuda") or (name.startswith("cuda:") and name[5:].isdigit()):
        return name
    raise argparse.ArgumentTypeError(f"unknown device `{text}`; expected cpu, cuda or cuda:N")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grids", default="2mm", help="comma-separated: 2mm,1mm (default 2mm)")
    p.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of " + ",".join(CASES))
    p.add_argument("--reps", type=int, default=5, help="timed repetitions per case (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed repetitions first (default 1)")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    p.add_argument("--batch", type=int, default=5, help="batch for train and forward (default 5)")
    p.add_argument("--seed", type=int, default=2018)
    p.add_argument("--device", default="cpu", type=device_name, help="cpu (default), cuda or cuda:N (GPU number N)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--grid", choices=sorted(GRIDS), help=argparse.SUPPRESS)
    p.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.reps < 1:
        p.error("--reps must be at least 1")
    if args.child:
        run_case(args)
        return

    try:
        import torch
    except ImportError as e:
        print(json.dumps({"error": f"torch is not installed: {e}"}))
        sys.exit(3)
    grids = [g for g in args.grids.split(",") if g]
    cases = [c for c in args.cases.split(",") if c]
    for g in grids:
        if g not in GRIDS:
            p.error(f"unknown grid {g!r}; expected one of {', '.join(GRIDS)}")
    for c in cases:
        if c not in CASES:
            p.error(f"unknown case {c!r}; expected one of {', '.join(CASES)}")
    results = []
    load_before = loadavg()
    cpu_before = cpu_snapshot()
    started = time.perf_counter()
    for g in grids:
        for c in cases:
            cmd = [sys.executable, os.path.abspath(__file__), "--child", "--grid", g, "--case", c,
                   "--reps", str(args.reps), "--warmup", str(args.warmup), "--threads", str(args.threads),
                   "--batch", str(args.batch), "--seed", str(args.seed), "--device", args.device]
            print(f"bench_pytorch: {g} {c} ...", file=sys.stderr, flush=True)
            done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
            if done.returncode != 0:
                print(json.dumps({"error": f"case {g}/{c} failed with exit code {done.returncode}"}))
                sys.exit(1)
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(json.dumps({
        "framework": "pytorch",
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "threads": args.threads,
        "device": args.device,
        "cpu": cpu_model(),
        "command": " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:]),
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
        "other_cpu_cores": other_cpu_cores(cpu_before, time.perf_counter() - started),
        # Allocator and thread settings change the timings a lot (see paper_cnn.rs, timing_env).
        "env": {k: v for k, v in os.environ.items()
                if k.startswith(("MALLOC_", "GLIBC_", "OMP_", "MKL_", "KMP_", "RAYON_")) or k == "LD_PRELOAD"},
        "wall_s": time.perf_counter() - started,
        "results": results,
    }, indent=1))


if __name__ == "__main__":
    main()
