"""Evaluation time of FID + KID + IS: gan-lightning's evaluator against torch-fidelity.

    python benchmarks/metrics.py --num 200 --rounds 2 --write benchmarks/RESULTS.md

Both sides score the same N generated images (a randomly initialised DCGAN generator at
32x32, seeded) against the same N real images (the first N training digits at 32x32), with
the same Inception weights: the standard FID file with a seeded random classifier head
written by this script (the FID file has none, and IS needs one), so IS is a timing
workload only. gan-lightning has the real features cached on disk (as every evaluation after
the first has); torch-fidelity extracts both sets, as a ``calculate_metrics`` call does.
A second torch-fidelity line gives it its own cache of the real features, for reference.
Timed from the evaluator's construction (weights loading included) to the values. Rounds
run in ABBA order in one process.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch_fidelity
from torch.utils.data import Dataset

from gan_lightning.data.digits import load_digits_tensors
from gan_lightning.images import to_rgb, to_uint8
from gan_lightning.metrics import Evaluator, FeatureSet
from gan_lightning.metrics.real import cache_file, load_cached, save_cached
from gan_lightning.metrics.weights import _file_digest
from gan_lightning.networks import DCGANGenerator

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "weights"
WEIGHTS = SHARED / "inception-2015-12-05-fid-features.pth"


class Uint8Images(Dataset):
    """uint8 RGB ``(3, H, W)`` items, as torch-fidelity reads them."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = to_rgb(to_uint8(images))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[index]


def make_images(num: int) -> tuple[torch.Tensor, torch.Tensor]:
    real = load_digits_tensors(32)[0][:num]
    torch.manual_seed(0)
    generator = DCGANGenerator(latent_dim=64, image_size=32, channels=1, base_channels=32).eval()
    with torch.no_grad():
        fake = generator(torch.randn(num, 64, generator=torch.Generator().manual_seed(1)))
    return real, fake


def weights_with_head(folder: Path) -> Path:
    state = torch.load(WEIGHTS, map_location="cpu", weights_only=True)
    generator = torch.Generator().manual_seed(0)
    for name in ("fc.weight", "fc.bias"):
        state[name] = torch.randn(state[name].shape, generator=generator) * 0.05
    path = folder / "inception-with-head.pth"
    torch.save(state, path)
    return path


def ours(fake: torch.Tensor, weights: Path, cache_dir: Path, num: int, batch: int) -> dict:
    _file_digest.cache_clear()
    evaluator = Evaluator(
        ["fid", "kid", "is"],
        weights_path=str(weights),
        batch_size=batch,
        kid_subset_size=min(1000, num),
        owner="benchmark",
    )
    evaluator.build("cpu")
    key = evaluator.cache_key("benchmark-digits-32", "train", num)
    features, _ = load_cached(cache_file(cache_dir, key), key)
    return evaluator.compute(FeatureSet(features), evaluator.extract([fake]), warn=False)


def fidelity(fake, real, weights: Path, num: int, batch: int, cache_root: Path | None) -> dict:
    options = {"cache": False}
    if cache_root is not None:
        options = {"cache": True, "cache_root": str(cache_root), "input2_cache_name": "real"}
    return torch_fidelity.calculate_metrics(
        input1=Uint8Images(fake),
        input2=Uint8Images(real),
        fid=True,
        kid=True,
        isc=True,
        feature_extractor_weights_path=str(weights),
        batch_size=batch,
        kid_subset_size=min(1000, num),
        cuda=False,
        save_cpu_ram=True,
        verbose=False,
        **options,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=200, help="generated (and real) images")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="ABBA rounds (2 runs per side)")
    parser.add_argument("--write", default=None, help="append the results to this Markdown file")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="metrics-bench-"))
    weights = weights_with_head(work)
    real, fake = make_images(args.num)

    # Our real features, cached once as the Metrics callback caches them (not timed).
    evaluator = Evaluator(["fid"], weights_path=str(weights), batch_size=args.batch_size)
    evaluator.build("cpu")
    key = evaluator.cache_key("benchmark-digits-32", "train", args.num)
    save_cached(cache_file(work, key), key, evaluator.extract([real])["pool"], None)
    fidelity(fake[:2], real, weights, 2, args.batch_size, work / "fidelity")  # Warm its cache.

    sides = {
        "gan-lightning (real cached)": lambda: ours(fake, weights, work, args.num, args.batch_size),
        "torch-fidelity": lambda: fidelity(fake, real, weights, args.num, args.batch_size, None),
        "torch-fidelity (own real cache)": lambda: fidelity(
            fake, real, weights, args.num, args.batch_size, work / "fidelity"
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in sides}
    values: dict[str, dict] = {}
    order = list(sides) + list(sides)[::-1]
    for _ in range(args.rounds):
        for name in order[: len(sides)] if _ % 2 == 0 else order[len(sides) :]:
            start = time.perf_counter()
            values[name] = sides[name]()
            times[name].append(time.perf_counter() - start)
            print(f"{name}: {times[name][-1]:.2f} s", file=sys.stderr)

    ref, mine = values["torch-fidelity"], values["gan-lightning (real cached)"]
    agreement = {
        "FID": (mine["fid"], ref[torch_fidelity.KEY_METRIC_FID]),
        "KID": (mine["kid_mean"], ref[torch_fidelity.KEY_METRIC_KID_MEAN]),
        "IS": (mine["is_mean"], ref[torch_fidelity.KEY_METRIC_ISC_MEAN]),
    }
    median = {name: statistics.median(runs) for name, runs in times.items()}
    ratio = median["gan-lightning (real cached)"] / median["torch-fidelity"]
    command = "python benchmarks/metrics.py " + " ".join(sys.argv[1:])
    lines = [
        f"## Evaluation time: FID + KID + IS ({datetime.date.today().isoformat()})",
        "",
        f"Command: `{command}`",
        f"Machine: {os.cpu_count()} CPU cores, torch {torch.__version__}, {torch.get_num_threads()}"
        f" threads, torch-fidelity {torch_fidelity.__version__}, no GPU. {args.num} generated vs "
        f"{args.num} real 32x32 images, batch {args.batch_size}, KID subset size "
        f"{min(1000, args.num)} x 100 subsets, IS 10 splits.",
        "",
        "| side | runs (s) | median (s) |",
        "|---|---|---|",
    ]
    for name, runs in times.items():
        lines.append(f"| {name} | {', '.join(f'{t:.2f}' for t in runs)} | {median[name]:.2f} |")
    target = "meets" if ratio <= 0.6 else "misses"
    lines += [
        "",
        f"Time ratio gan-lightning / torch-fidelity: **{ratio:.3f}** ({target} the target of 0.6).",
        "Values (ours vs torch-fidelity): "
        + ", ".join(f"{k} {a:.6g} vs {b:.6g}" for k, (a, b) in agreement.items())
        + ". IS uses our canonical sample order, so it differs from torch-fidelity's by the "
        "choice of splits.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        with open(args.write, "a") as file:
            file.write("\n" + text)


if __name__ == "__main__":
    main()
