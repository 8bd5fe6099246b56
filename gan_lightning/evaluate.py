"""``gan-lightning evaluate``: the metrics of a checkpoint or a folder of images, no training.

    gan-lightning evaluate --config runs/x/tensorboard/version_0/config.yaml \\
        --ckpt_path runs/x/tensorboard/version_0/checkpoints/last.ckpt --metrics fid,kid,pr
    gan-lightning evaluate --config configs/dcgan_digits.yaml --images generated/

The real images are the validation split of the ``data`` section of ``--config`` (a config
of ``gan-lightning fit``, or the ``config.yaml`` a run saves); their features are cached as
the ``Metrics`` callback caches them, so both share one cache. Generated images come from the
checkpoint (latents drawn as ``gan-lightning sample`` draws them, so ``sample`` followed by
``evaluate --images`` with the same seed and batch size gives the same values) or from the
image files of a folder in sorted path order. The results are printed as one JSON object and
optionally written to ``--output``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image
from torch import Tensor

from gan_lightning.errors import ConfigurationError
from gan_lightning.metrics.evaluator import METRICS, Evaluator
from gan_lightning.metrics.features import INCEPTION, POOL
from gan_lightning.metrics.real import (
    cache_file,
    load_cached,
    real_image_batches,
    resolve_cache_dir,
    save_cached,
)
from gan_lightning.metrics.scores import FeatureSet


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gan-lightning evaluate",
        description="FID, KID, IS and precision/recall of a checkpoint or an image folder.",
    )
    parser.add_argument("--config", required=True, help="YAML with a data section (real images)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--ckpt_path", help="checkpoint written by `gan-lightning fit`")
    source.add_argument("--images", help="folder of generated image files (PNG, JPEG, ...)")
    parser.add_argument("--metrics", default="fid,kid,pr", help=f"comma list of {METRICS}")
    parser.add_argument("--num_real", type=int, default=2048)
    parser.add_argument("--num_fake", type=int, default=2048)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--feature_extractor", default=INCEPTION)
    parser.add_argument("--weights_path", default=None)
    parser.add_argument("--cache_dir", default=None)
    parser.add_argument("--seed", type=int, default=0, help="seed of the latent draws")
    parser.add_argument("--kid_subsets", type=int, default=100)
    parser.add_argument("--kid_subset_size", type=int, default=1000)
    parser.add_argument("--isc_splits", type=int, default=10)
    parser.add_argument("--device", default="cpu", help="e.g. cpu or cuda:0")
    parser.add_argument("--output", default=None, help="also write the JSON results here")
    return parser


def evaluate(argv: list[str]) -> dict[str, float]:
    """Run ``gan-lightning evaluate`` with command-line arguments ``argv``; returns the results."""
    args = build_parser().parse_args(argv)
    evaluator = Evaluator(
        [name.strip() for name in args.metrics.split(",") if name.strip()],
        args.feature_extractor,
        args.weights_path,
        args.batch_size,
        args.kid_subsets,
        args.kid_subset_size,
        args.isc_splits,
        owner="evaluate",
    )
    evaluator.check_counts(args.num_real, args.num_fake)
    datamodule = load_datamodule(args.config)
    device = torch.device(args.device)
    evaluator.build(device)

    real = real_feature_set(evaluator, datamodule, args.num_real, args.cache_dir)
    if args.ckpt_path is not None:
        batches = checkpoint_batches(
            args.ckpt_path, device, args.num_fake, args.batch_size, args.seed
        )
    else:
        batches = folder_batches(Path(args.images), args.num_fake, args.batch_size)
    fake = evaluator.extract(batches)
    results = {"num_real": float(len(real)), "num_fake": float(len(fake[POOL]))}
    results.update(evaluator.compute(real, fake))

    text = json.dumps(results, indent=2)
    sys.stdout.write(text + "\n")
    if args.output:
        Path(args.output).write_text(text + "\n")
    return results


def load_datamodule(config_path: str) -> object:
    """The data module of a config's ``data`` section, set up for validation."""
    from jsonargparse import ArgumentParser

    from gan_lightning.data.base import GANDataModule

    path = Path(config_path)
    if not path.is_file():
        raise ConfigurationError(f"--config {path} does not exist or is not a file.")
    section = (yaml.safe_load(path.read_text()) or {}).get("data")
    if not section:
        raise ConfigurationError(
            f"--config {path} has no data section; pass the config of the run (its saved "
            "config.yaml) or any configs/*.yaml with the same data."
        )
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(GANDataModule, "data")
    datamodule = parser.instantiate_classes(parser.parse_object({"data": section})).data
    datamodule.prepare_data()
    datamodule.setup("validate")
    return datamodule


def real_feature_set(
    evaluator: Evaluator, datamodule: object, num_real: int, cache_dir: str | None
) -> FeatureSet:
    """Real features of the first ``num_real`` validation items, from or into the cache."""
    dataset = datamodule.val_set
    count = min(num_real, len(dataset))
    key_name = getattr(datamodule, "cache_key", None)
    path = key = None
    if key_name is not None:
        key = evaluator.cache_key(key_name, "val", count)
        path = cache_file(resolve_cache_dir(cache_dir), key)
        cached = load_cached(path, key)
        if cached is not None:
            return FeatureSet(cached[0].to(evaluator.extractor.device), cached[1])
    batches = real_image_batches(dataset, 0, count, evaluator.batch_size)
    pool = evaluator.extract(images for images, _ in batches)[POOL]
    if path is not None:
        save_cached(path, key, pool, None)
    return FeatureSet(pool)


def checkpoint_batches(
    ckpt_path: str, device: torch.device, num: int, batch_size: int, seed: int
) -> Iterator[Tensor]:
    """Generated batches ``(n, C, H, W)`` in [-1, 1], latents drawn as ``sample`` draws them."""
    from gan_lightning.sampling import load_generator_module

    module = load_generator_module(ckpt_path, device)
    rng = torch.Generator().manual_seed(seed)
    for start in range(0, num, batch_size):
        n = min(batch_size, num - start)
        yield module.generate(module.sample_latent(n, generator=rng))


def folder_batches(folder: Path, num: int, batch_size: int) -> Iterator[Tensor]:
    """uint8 RGB batches ``(n, 3, H, W)`` of the first ``num`` image files in sorted order."""
    from gan_lightning.data.vision import find_image_files

    if not folder.is_dir():
        raise ConfigurationError(f"--images {folder} is not a folder of images.")
    files = [path for path, _ in find_image_files(folder)[0]][:num]
    if len(files) < 2:
        raise ConfigurationError(f"--images {folder} holds {len(files)} image files; need >= 2.")
    size = None
    for start in range(0, len(files), batch_size):
        images = [_read_rgb(Path(path)) for path in files[start : start + batch_size]]
        for path, image in zip(files[start : start + batch_size], images, strict=True):
            size = size or (tuple(image.shape[1:]), path)
            if tuple(image.shape[1:]) != size[0]:
                raise ConfigurationError(
                    f"--images: {path} is {tuple(image.shape[1:])} pixels (H, W) but {size[1]} "
                    f"is {size[0]}; every image must have the same size."
                )
        yield torch.stack(images)


def _read_rgb(path: Path) -> Tensor:
    """An image file as uint8 ``(3, H, W)``; grayscale is repeated to three channels."""
    with Image.open(path) as file:
        return torch.from_numpy(np.array(file.convert("RGB"))).permute(2, 0, 1)
