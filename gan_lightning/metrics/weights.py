"""Finding and checking the Inception weights file before any evaluation work starts.

Order of precedence: an explicit ``weights_path``, else the environment variable
``GAN_LIGHTNING_FID_WEIGHTS``, else torch-fidelity's download into the torch.hub cache (needs
internet once; the file is then reused by every run).
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

import torch

from gan_lightning.errors import ConfigurationError

WEIGHTS_ENV_VAR = "GAN_LIGHTNING_FID_WEIGHTS"
"""Environment variable naming the Inception weights file when ``weights_path`` is not given."""

FIX_HINT = (
    "Pass weights_path=/path/to/inception-2015-12-05-fid-features.pth to the metrics callback "
    f"(init_args.weights_path in YAML, --weights_path for gan-lightning evaluate) or set "
    f"{WEIGHTS_ENV_VAR} to that path; the file is torch-fidelity's 'inception-v3-compat' state "
    "dict."
)


def resolve_weights_path(weights_path: str | None) -> tuple[Path | None, str]:
    """Pick the Inception weights file: the argument, else ``GAN_LIGHTNING_FID_WEIGHTS``.

    Args:
        weights_path: Explicit path, or None to fall back to the environment variable.

    Returns:
        The path (None: neither is set, use the library's download cache) and where it came
        from, for error messages.
    """
    if weights_path is not None:
        return Path(weights_path).expanduser(), "weights_path"
    from_env = os.environ.get(WEIGHTS_ENV_VAR, "")
    if from_env:
        return Path(from_env).expanduser(), f"environment variable {WEIGHTS_ENV_VAR}"
    return None, "the library's default download"


def check_weights_file(path: Path, source: str) -> None:
    """Raise :class:`ConfigurationError` unless ``path`` is a readable PyTorch state dict.

    Loads with ``weights_only=True``, so a file that is not plain tensors is rejected before
    torch-fidelity unpickles it with ``weights_only=False``.

    Args:
        path: The weights file to check.
        source: Where the path came from (argument or environment variable), for the message.
    """
    if not path.is_file():
        raise ConfigurationError(
            f"FID Inception weights file {str(path)!r} (from {source}) does not exist or is not a "
            f"file. {FIX_HINT}"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load raises many types for truncated or foreign files.
        raise ConfigurationError(
            f"FID Inception weights file {str(path)!r} (from {source}) could not be loaded with "
            f"torch.load ({type(err).__name__}: {err}); it is probably truncated or not a "
            f"PyTorch state dict. Download it again. {FIX_HINT}"
        ) from err
    if not isinstance(state, dict):
        raise ConfigurationError(
            f"FID Inception weights file {str(path)!r} (from {source}) holds a "
            f"{type(state).__name__}, expected a state dict. {FIX_HINT}"
        )


def download_cache_path() -> Path:
    """Where torch-fidelity (through torch.hub) caches the downloaded Inception weights."""
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(URL_INCEPTION_V3).path).name


@lru_cache(maxsize=8)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def file_digest(path: Path) -> str:
    """SHA-256 of a file, memoised per (path, size, modification time) within the process."""
    stat = path.stat()
    return _file_digest(str(path.resolve()), stat.st_size, stat.st_mtime_ns)
