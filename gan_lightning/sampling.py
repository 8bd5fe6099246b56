"""Loading a trained generator from a checkpoint and writing its samples as PNG files."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from gan_lightning.errors import ConfigurationError
from gan_lightning.images import to_uint8
from gan_lightning.models.base import GANModule


def load_generator_module(ckpt_path: str | Path, device: torch.device) -> GANModule:
    """Rebuild the GAN module stored in ``ckpt_path`` (written by ``gan-lightning fit``)."""
    path = Path(ckpt_path)
    if not path.is_file():
        raise ConfigurationError(f"checkpoint {path} does not exist or is not a file.")
    try:
        module = GANModule.load_from_checkpoint(path, map_location=device)
    except (RuntimeError, EOFError, OSError, KeyError, ValueError, TypeError) as err:
        raise ConfigurationError(
            f"cannot load checkpoint {path}: {type(err).__name__}: {err}. Pass a complete "
            "checkpoint written by `gan-lightning fit` (the CLI stores the network config)."
        ) from err
    return module.eval()


def write_samples(
    module: GANModule, output_dir: Path, num_samples: int, batch_size: int, seed: int
) -> list[Path]:
    """Write ``num_samples`` images as ``000000.png, ...``; returns the paths in order."""
    output_dir.mkdir(parents=True, exist_ok=True)
    rng = torch.Generator().manual_seed(seed)
    paths = []
    for start in range(0, num_samples, batch_size):
        n = min(batch_size, num_samples - start)
        images = to_uint8(module.generate(module.sample_latent(n, generator=rng))).cpu()
        for offset, image in enumerate(images):
            array = image.permute(1, 2, 0).squeeze(-1).numpy()
            paths.append(output_dir / f"{start + offset:06d}.png")
            Image.fromarray(array).save(paths[-1])
    return paths
