"""The digit classifier that labels stacked digits with their mode, trained here and cached.

Stacked MNIST (Metz et al., "Unrolled Generative Adversarial Networks", arXiv:1611.02163;
VEEGAN, arXiv:1705.07761; PacGAN, arXiv:1712.04086) counts the modes a generator reaches by
classifying each color channel with a pretrained MNIST classifier. Here the digits are
scikit-learn's bundled ones, so the classifier is a small CNN trained on
:class:`~gan_lightning.data.DigitsDataModule`'s training split and checked on its held-out
split (the digits of the validation stacks).

Differences from the papers:
- scikit-learn's 8x8 digits instead of MNIST; every image is area-averaged back to 8x8
  before the network, so one architecture serves every image size.
- The classifier is trained on first use (a few seconds on a CPU, deterministic given the
  seed) and cached under ``cache_dir`` instead of being downloaded.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor, nn

from gan_lightning.checkpointing import atomic_save
from gan_lightning.data.digits import DigitsDataModule
from gan_lightning.data.stacked import stack_labels
from gan_lightning.errors import ConfigurationError
from gan_lightning.metrics.real import resolve_cache_dir

CLASSIFIER_VERSION = "conv32-64-shift1-onecycle-e30-v1"
"""Architecture and training recipe; part of the cache file name, change it with either."""

MIN_ACCURACY = 0.97
"""Held-out accuracy below which the classifier is reported as unfit to count modes."""

_SIDE = 8  # The network's input side: the digits' native resolution.


class DigitClassifier(nn.Module):
    """A small CNN for digit images ``(N, 1, S, S)`` in [-1, 1] of any side S >= 8.

    The input is area-averaged to 8x8 (the digits' native resolution), then two 3x3
    convolutions (32 and 64 channels, each followed by ReLU and 2x2 max pooling) and a linear
    layer give ``(N, 10)`` logits.
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Linear(64 * (_SIDE // 4) ** 2, 10)

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.features(to_classifier_input(images)).flatten(1))

    @torch.no_grad()
    def predict(self, images: Tensor, batch_size: int = 4096) -> Tensor:
        """Predicted digits ``(N,)`` long of ``(N, 1, S, S)`` images in [-1, 1]."""
        self.eval()
        parts = [self(part).argmax(dim=1) for part in images.split(batch_size)]
        return torch.cat(parts) if parts else torch.empty(0, dtype=torch.long)


def to_classifier_input(images: Tensor) -> Tensor:
    """``(N, 1, S, S)`` in [-1, 1] -> ``(N, 1, 8, 8)`` area averages, clamped to [-1, 1]."""
    if images.shape[-1] != _SIDE or images.shape[-2] != _SIDE:
        images = F.interpolate(images, size=(_SIDE, _SIDE), mode="area")
    return images.float().clamp(-1, 1)


def digit_split(image_size: int) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """``((train images, digits), (held-out images, digits))`` of DigitsDataModule's split."""
    digits = DigitsDataModule(image_size=image_size)
    digits.setup()
    return digits.train_set.tensors, digits.val_set.tensors


def _shift(images: Tensor, generator: torch.Generator, pixels: int = 1) -> Tensor:
    """Move each ``(N, 1, H, W)`` image by up to ``pixels`` in x and y, filling with -1."""
    n, _, height, width = images.shape
    padded = F.pad(images, (pixels,) * 4, value=-1.0)
    offsets = torch.randint(0, 2 * pixels + 1, (n, 2), generator=generator)
    rows = offsets[:, :1] + torch.arange(height)  # (N, H)
    cols = offsets[:, 1:] + torch.arange(width)  # (N, W)
    batch = torch.arange(n)[:, None, None]
    return padded[batch, 0, rows[:, :, None], cols[:, None, :]].unsqueeze(1)


def train_digit_classifier(
    image_size: int = 32, seed: int = 0, epochs: int = 30, batch_size: int = 64
) -> tuple[DigitClassifier, float]:
    """Train a classifier on the training digits and measure it on the held-out digits.

    Adam on cross-entropy with a one-cycle learning rate (peak 3e-3), each digit shifted by
    up to one pixel in x and y (at 8x8). The result depends only on the arguments (all
    randomness comes from ``seed``); about 3 s on one CPU core.

    Args:
        image_size: Side of the images it will classify (8 to 256); the training digits are
            resized to it as :class:`DigitsDataModule` resizes them, then averaged to 8x8.
        seed: Seed of the initial weights, the batch order and the shifts.
        epochs: Passes over the 1,617 training digits.
        batch_size: Digits per update.

    Returns:
        ``(classifier in eval mode, held-out accuracy in [0, 1])``.
    """
    (images, digits), (held_out, held_out_digits) = digit_split(image_size)
    images = to_classifier_input(images)
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        classifier = DigitClassifier()
    optimizer = torch.optim.Adam(classifier.parameters(), lr=1e-3)
    steps_per_epoch = -(-len(images) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=3e-3, total_steps=epochs * steps_per_epoch
    )

    classifier.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(images), generator=generator).split(batch_size):
            logits = classifier(_shift(images[batch], generator))
            loss = F.cross_entropy(logits, digits[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()

    accuracy = float((classifier.predict(held_out) == held_out_digits).double().mean())
    return classifier.eval(), accuracy


def classifier_path(cache_dir: Path, image_size: int, seed: int = 0) -> Path:
    """``<cache_dir>/digit-classifier-<version>-<S>px-seed<seed>.pt``."""
    return cache_dir / f"digit-classifier-{CLASSIFIER_VERSION}-{image_size}px-seed{seed}.pt"


def load_digit_classifier(
    image_size: int = 32, cache_dir: str | Path | None = None, seed: int = 0
) -> tuple[DigitClassifier, float]:
    """The cached classifier for ``image_size`` and its held-out accuracy, trained if absent.

    A missing, unreadable or foreign cache file is replaced by a fresh training run; the file
    is written atomically, so concurrent runs (e.g. DDP ranks) never read half of one. A
    held-out accuracy under :data:`MIN_ACCURACY` is warned about, not raised.

    Args:
        image_size: Side of the images it will classify (8 to 256).
        cache_dir: Cache folder; None: ``$GAN_LIGHTNING_CACHE_DIR``, else
            ``~/.cache/gan-lightning``.
        seed: Training seed (see :func:`train_digit_classifier`).
    """
    folder = resolve_cache_dir(None if cache_dir is None else str(cache_dir))
    path = classifier_path(folder, image_size, seed)
    key = {"version": CLASSIFIER_VERSION, "image_size": image_size, "seed": seed}
    classifier = DigitClassifier()
    entry = _read(path)
    if entry is not None and entry.get("key") == key:
        classifier.load_state_dict(entry["state_dict"])
        return classifier.eval(), float(entry["accuracy"])

    classifier, accuracy = train_digit_classifier(image_size, seed)
    rank_zero_info(f"Digit classifier: held-out accuracy {accuracy:.4f}, cached in {path}")
    if accuracy < MIN_ACCURACY:
        rank_zero_warn(
            f"the digit classifier reaches only {accuracy:.2%} on the held-out digits (expected "
            f">= {MIN_ACCURACY:.0%}), so stacked-digit mode counts are unreliable."
        )
    _write(path, {"key": key, "state_dict": classifier.state_dict(), "accuracy": accuracy})
    return classifier, accuracy


def classify_stacked(
    images: Tensor,
    classifier: DigitClassifier | None = None,
    cache_dir: str | Path | None = None,
    batch_size: int = 4096,
) -> Tensor:
    """The mode ``100 d0 + 10 d1 + d2`` of each stacked-digit image, one digit per channel.

    Args:
        images: ``(N, 3, S, S)`` in [-1, 1], S >= 8.
        classifier: The digit classifier; None loads (or trains) the cached one for size S.
        cache_dir: Cache folder when ``classifier`` is None (see
            :func:`load_digit_classifier`).
        batch_size: Single-channel images classified at once.

    Returns:
        ``(N,)`` long modes in 0..999, on the images' device.
    """
    if images.ndim != 4 or images.shape[1] != 3 or min(images.shape[-2:]) < _SIDE:
        raise ConfigurationError(
            "classify_stacked expects stacked digits (N, 3, S, S) in [-1, 1] with S >= 8, got "
            f"shape {tuple(images.shape)}. Use it on StackedDigitsDataModule-shaped images."
        )
    if classifier is None:
        classifier, _ = load_digit_classifier(images.shape[-1], cache_dir)
    classifier = classifier.to(images.device)
    n, _, height, width = images.shape
    digits = classifier.predict(images.reshape(n * 3, 1, height, width), batch_size)
    return stack_labels(digits.view(n, 3))


def _read(path: Path) -> dict | None:
    """The cache entry at ``path``, or None if it is absent or unreadable."""
    if not path.is_file():
        return None
    try:
        entry = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # A truncated or foreign file is a cache miss; it is rewritten.
        return None
    return entry if isinstance(entry, dict) else None


def _write(path: Path, entry: dict) -> None:
    """Save ``entry`` through a temporary file and a rename, so readers never see half."""
    atomic_save(entry, path)
