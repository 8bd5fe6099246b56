"""Loading a trained generator from a checkpoint and writing its samples to files.

Images become one PNG each (``000000.png``, ...); other samples, such as the 2-D points of
the Gaussian-mixture configs, become one CSV file (``samples.csv``, a row per sample).
"""

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
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigurationError(
            f"--device {device} asks for a GPU, but PyTorch sees none here. Use --device cpu."
        )
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


def check_output_dir(output_dir: Path) -> None:
    """Refuse an output folder that is a file or already holds files: nothing is overwritten."""
    if output_dir.exists() and not output_dir.is_dir():
        raise ConfigurationError(
            f"--output_dir {output_dir} is a file, not a folder. Choose a new or empty folder."
        )
    if output_dir.is_dir() and any(output_dir.iterdir()):
        raise ConfigurationError(
            f"--output_dir {output_dir} is not empty; choose a new or empty folder so no "
            "existing file is overwritten."
        )
    for parent in output_dir.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigurationError(
                    f"--output_dir {output_dir} cannot be created: {parent} is a file."
                )
            break


def write_samples(
    module: GANModule, output_dir: Path, num_samples: int, batch_size: int, seed: int
) -> list[Path]:
    """Write ``num_samples`` samples from fixed-seed latents; returns the files written.

    Images ``(N, C, H, W)`` become ``000000.png, ...`` in order; any other sample shape
    (e.g. 2-D points) becomes ``samples.csv`` with one row per sample.
    """
    check_output_dir(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    rng = torch.Generator().manual_seed(seed)
    paths: list[Path] = []
    rows: list[torch.Tensor] = []
    for start in range(0, num_samples, batch_size):
        n = min(batch_size, num_samples - start)
        samples = module.generate(module.sample_latent(n, generator=rng)).cpu()
        if samples.dim() != 4:
            rows.append(samples.flatten(1).float())
            continue
        for offset, image in enumerate(to_uint8(samples)):
            array = image.permute(1, 2, 0).squeeze(-1).numpy()
            paths.append(output_dir / f"{start + offset:06d}.png")
            Image.fromarray(array).save(paths[-1])
    if rows:
        paths.append(_write_csv(torch.cat(rows), output_dir / "samples.csv"))
    return paths


def _write_csv(samples: torch.Tensor, path: Path) -> Path:
    """Samples ``(N, D)`` as CSV with a header ``x0,...,x{D-1}``, full float32 precision."""
    header = ",".join(f"x{i}" for i in range(samples.shape[1]))
    lines = [",".join(repr(float(v)) for v in row) for row in samples.tolist()]
    path.write_text("\n".join([header, *lines]) + "\n")
    return path
