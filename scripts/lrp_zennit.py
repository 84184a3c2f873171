#!/usr/bin/env python3
"""zennit side of the LRP cross-check (run by hand; needs `pip install zennit`, which brings torch).

    python3 scripts/lrp_zennit.py DIR [--grid 46 46 46] [--seed 0] [--no-bias] [--full]

Writes into DIR, with real PyTorch and zennit:

    weights.pth        the paper network (scripts/make_torch_fixture.py's class, --small
                       architecture unless --full) with seeded weights and random BatchNorm
                       statistics, as torch.save(state_dict)
    lrp.json           grid, architecture, target class, z^B box, epsilon, zennit version, and
                       per composite the file of its maps and their sums and logits
    lrp_<name>.f32     the LRP maps of the fixed input (batch 2, make_torch_fixture's formula),
                       float32 little-endian, C order [2, 1, D, H, W]

for every composite that `relevance::lrp::LrpComposite::NAMES` names, built from zennit's own
rules (Epsilon, ZPlus, AlphaBeta, ZBox; Pass at the ReLUs; max pooling by its gradient) with
BatchNorm merged into the convolutions by zennit's SequentialMergeBatchNorm canonizer. Then

    cargo run --release -p relevance --example lrp_zennit_check -- DIR

computes the same maps in Rust from weights.pth and fails when a map differs by more than 1e-3
of its largest value.
"""

import argparse
import importlib.metadata
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_torch_fixture import architecture, build, fixed_input, randomize_batchnorm  # noqa: E402

from zennit.attribution import Gradient  # noqa: E402
from zennit.canonizers import SequentialMergeBatchNorm  # noqa: E402
from zennit.composites import SpecialFirstLayerMapComposite  # noqa: E402
from zennit.rules import AlphaBeta, Epsilon, Pass, ZBox, ZPlus  # noqa: E402
from zennit.types import Activation, Convolution  # noqa: E402


def composites(epsilon, low, high):
    """name -> (first layer rule, convolution rule, dense rule), as in relevance::lrp."""
    eps = lambda: Epsilon(epsilon)  # noqa: E731
    plus = lambda: ZPlus()  # noqa: E731
    ab21 = lambda: AlphaBeta(alpha=2.0, beta=1.0)  # noqa: E731
    ab10 = lambda: AlphaBeta(alpha=1.0, beta=0.0)  # noqa: E731
    box = lambda: ZBox(low=low, high=high)  # noqa: E731
    return {
        "epsilon": (eps, eps, eps),
        "alpha1-beta0": (ab10, ab10, ab10),
        "alpha2-beta1": (ab21, ab21, ab21),
        "epsilon-plus": (plus, plus, eps),
        "epsilon-alpha2-beta1": (ab21, ab21, eps),
        "epsilon-plus-box": (box, plus, eps),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir")
    parser.add_argument("--grid", type=int, nargs=3, default=[46, 46, 46])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--full", action="store_true", help="the paper's widths (slower)")
    parser.add_argument("--epsilon", type=float, default=1e-6)
    parser.add_argument("--no-bias", action="store_true",
                        help="zero every bias and BatchNorm shift, so that relevance is conserved "
                             "and the sums equal the logits (a live check of conservation)")
    args = parser.parse_args()

    out = Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    arch = architecture(not args.full)
    grid = tuple(args.grid)
    torch.manual_seed(args.seed)
    model = build(arch, grid)
    randomize_batchnorm(model, arch)
    if args.no_bias:
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, (torch.nn.Conv3d, torch.nn.Linear)):
                    module.bias.zero_()
                if isinstance(module, torch.nn.BatchNorm3d):
                    module.bias.zero_()
                    module.running_mean.zero_()
    torch.save(model.state_dict(), out / "weights.pth")
    model.eval()

    x = fixed_input(grid)
    low, high = float(x.min()), float(x.max())
    target = 1
    report = dict(grid=list(grid), config=arch, target=target, low=low, high=high,
                  epsilon=args.epsilon, zennit_version=importlib.metadata.version("zennit"),
                  torch_version=torch.__version__, maps={})
    for name, (first, conv, dense) in composites(args.epsilon, low, high).items():
        composite = SpecialFirstLayerMapComposite(
            layer_map=[(Activation, Pass()), (Convolution, conv()), (torch.nn.Linear, dense())],
            first_map=[(Convolution, first())],
            canonizers=[SequentialMergeBatchNorm()],
        )
        inp = x.clone().requires_grad_(True)
        with Gradient(model=model, composite=composite) as attributor:
            logits, relevance = attributor(
                inp, lambda o: torch.nn.functional.one_hot(torch.full((o.shape[0],), target), o.shape[1]) * o)
        rel = relevance.detach().to(torch.float32).contiguous()
        (out / f"lrp_{name}.f32").write_bytes(rel.numpy().astype("<f4").tobytes())
        report["maps"][name] = dict(file=f"lrp_{name}.f32",
                                    logits=logits[:, target].tolist(),
                                    sums=rel.flatten(1).sum(1).tolist())
        print(f"{name:22s} logits {logits[:, target].tolist()} sums {rel.flatten(1).sum(1).tolist()}")
    (out / "lrp.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
