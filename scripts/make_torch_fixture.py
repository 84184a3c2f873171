#!/usr/bin/env python3
"""PyTorch side of the weights cross-check for the paper's ClassificationModel3D.

Writes, with real PyTorch, what the Rust side imports, and checks what the Rust side exports:

    python3 scripts/make_torch_fixture.py make DIR [--grid 97 115 97] [--small] [--seed 0]
                                                   [--legacy] [--no-num-batches-tracked]
        DIR/weights.pth       torch.save(model.state_dict()) of the class below (PyTorch >= 1.6
                              zip format; BatchNorm's num_batches_tracked included, as modern
                              PyTorch writes it; the authors' 0.3-era file has none)
        DIR/reference.json    grid, architecture, and the eval-mode logits and softmax
                              probabilities for the fixed input below
    python3 scripts/make_torch_fixture.py verify DIR/burn.safetensors [--grid …] [--small]
        loads a safetensors file exported by `model::weights::export_safetensors` into the same
        class with load_state_dict(strict=True) and prints its logits for the fixed input

Then `cargo run --release -p model --example torch_cross_check -- DIR` imports weights.pth,
compares its logits with reference.json (max |Δp| < 1e-4), exports DIR/burn.safetensors and
prints its own logits for `verify`.

The fixed input (batch of 2, shape [2, 1, D, H, W]), flat C-order index i, computed in float64
and rounded to float32 on both sides:  x[i] = sin(0.37·i) + 0.5·cos(0.011·i) + 0.1·(i mod 7).

Weights are PyTorch's default initialisation under torch.manual_seed(seed), then the BatchNorm
affine parameters and running statistics are set to seeded random values so that every tensor
matters (a freshly initialised BatchNorm is the identity in eval mode).
"""

import argparse
import json
import math
import struct
import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F


class ClassificationModel3D(nn.Module):
    """The paper's network (PAPER.md section 1), with the original attribute names."""

    def __init__(self, flatten, channels=(8, 16, 32, 64), pools=(2, 3, 2, 3), kernel=3,
                 dense=(128, 64), dropout=0.8, classes=2):
        super().__init__()
        self.pools = pools
        c_in = 1
        for i, (c, p) in enumerate(zip(channels, pools), start=1):
            setattr(self, f"Conv_{i}", nn.Conv3d(c_in, c, kernel))  # stride 1, no padding, bias
            setattr(self, f"Conv_{i}_bn", nn.BatchNorm3d(c))  # eps 1e-5, momentum 0.1
            setattr(self, f"Conv_{i}_mp", nn.MaxPool3d(p))  # kernel = stride, floor mode
            c_in = c
        self.dense_1 = nn.Linear(flatten, dense[0])
        self.dense_2 = nn.Linear(dense[0], dense[1])
        self.dense_3 = nn.Linear(dense[1], classes)
        self.dropout = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(0.0)

    def forward(self, x):
        for i in range(1, len(self.pools) + 1):
            x = getattr(self, f"Conv_{i}")(x)
            x = F.relu(getattr(self, f"Conv_{i}_bn")(x))
            x = getattr(self, f"Conv_{i}_mp")(x)
        x = x.view(x.size(0), -1)
        x = self.dropout(x)
        x = F.relu(self.dense_1(x))
        x = self.dropout2(x)
        x = F.relu(self.dense_2(x))
        return self.dense_3(x)


def architecture(small):
    if small:
        return dict(channels=[2, 3, 4, 5], pools=[2, 2, 2, 2], kernel=3, dense=[6, 4],
                    dropout=0.8, classes=2)
    return dict(channels=[8, 16, 32, 64], pools=[2, 3, 2, 3], kernel=3, dense=[128, 64],
                dropout=0.8, classes=2)


def flatten_size(arch, grid):
    size = list(grid)
    for p in arch["pools"]:
        size = [(s - (arch["kernel"] - 1)) // p for s in size]
        if min(size) < 1:
            sys.exit(f"grid {grid} is too small for this architecture")
    return arch["channels"][-1] * size[0] * size[1] * size[2]


def build(arch, grid):
    return ClassificationModel3D(flatten_size(arch, grid), arch["channels"], arch["pools"],
                                 arch["kernel"], arch["dense"], arch["dropout"], arch["classes"])


def fixed_input(grid, batch=2):
    n = batch * grid[0] * grid[1] * grid[2]
    i = torch.arange(n, dtype=torch.float64)
    x = torch.sin(0.37 * i) + 0.5 * torch.cos(0.011 * i) + 0.1 * torch.remainder(i, 7)
    return x.to(torch.float32).reshape(batch, 1, *grid)


def logits_of(model, grid):
    model.eval()
    with torch.no_grad():
        return model(fixed_input(grid))


def read_safetensors(path):
    """Minimal safetensors reader (8-byte length, JSON header, raw little-endian data)."""
    raw = Path(path).read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + length])
    base = 8 + length
    out = {}
    for key, info in header.items():
        if key == "__metadata__":
            continue
        if info["dtype"] != "F32":
            sys.exit(f"{path}: {key} has dtype {info['dtype']}, expected F32")
        start, end = info["data_offsets"]
        t = torch.frombuffer(bytearray(raw[base + start:base + end]), dtype=torch.float32)
        out[key] = t.reshape(info["shape"]) if info["shape"] else t.reshape(())
    return out, header.get("__metadata__", {})


def randomize_batchnorm(model, arch):
    """Seeded random BatchNorm affine parameters and running statistics (from torch's global
    generator), so that the BatchNorm layers matter in eval mode."""
    with torch.no_grad():
        for i in range(1, len(arch["pools"]) + 1):
            bn = getattr(model, f"Conv_{i}_bn")
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)
            bn.running_mean.uniform_(-0.1, 0.1)
            bn.running_var.uniform_(0.5, 2.0)


def make(args):
    out = Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    arch = architecture(args.small)
    grid = tuple(args.grid)
    torch.manual_seed(args.seed)
    model = build(arch, grid)
    randomize_batchnorm(model, arch)
    state = model.state_dict()
    if args.no_num_batches_tracked:
        state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    # --legacy: the pre-1.6 (non-zip) format, as the authors' PyTorch 0.3 release was written.
    torch.save(state, out / "weights.pth", _use_new_zipfile_serialization=not args.legacy)
    logits = logits_of(model, grid)
    probs = torch.softmax(logits, dim=1)
    reference = dict(grid=list(grid), config=arch, torch_version=torch.__version__,
                     input="x[i] = sin(0.37 i) + 0.5 cos(0.011 i) + 0.1 (i mod 7), batch 2",
                     logits=logits.tolist(), probabilities=probs.tolist())
    (out / "reference.json").write_text(json.dumps(reference, indent=2) + "\n")
    print(json.dumps(dict(logits=logits.tolist(), probabilities=probs.tolist())))


def verify(args):
    arch = architecture(args.small)
    state, metadata = read_safetensors(args.file)
    grid = tuple(args.grid)
    if "input_shape" in metadata:
        grid = tuple(int(v) for v in metadata["input_shape"].split(","))
    model = build(arch, grid)
    missing, unexpected = model.load_state_dict(state, strict=False)
    # num_batches_tracked is not part of the interchange format (the authors' file has none).
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        sys.exit(f"missing keys {missing}, unexpected keys {unexpected}")
    logits = logits_of(model, grid)
    probs = torch.softmax(logits, dim=1)
    print(json.dumps(dict(logits=logits.tolist(), probabilities=probs.tolist())))


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("make", "verify"):
        p = sub.add_parser(name)
        p.add_argument("dir" if name == "make" else "file")
        p.add_argument("--grid", type=int, nargs=3, default=[97, 115, 97])
        p.add_argument("--small", action="store_true",
                       help="channels 2,3,4,5, pools 2,2,2,2, dense 6,4 (fast; grid ≥ 46)")
        p.add_argument("--seed", type=int, default=0)
        if name == "make":
            p.add_argument("--legacy", action="store_true",
                           help="write the legacy (pre-1.6, non-zip) torch.save format")
            p.add_argument("--no-num-batches-tracked", action="store_true",
                           help="drop BatchNorm's num_batches_tracked, like the authors' file")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    make(args) if args.command == "make" else verify(args)


if __name__ == "__main__":
    main()
