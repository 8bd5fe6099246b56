"""Tiny variants, data and trainers shared by the model tests (CPU, a few steps each)."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from conftest import quiet_trainer
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn

from gan_lightning.data import DigitsDataModule, GaussianMixtureDataModule
from gan_lightning.models import (
    DCGAN,
    GAN,
    LeastSquaresGAN,
    SpectralNormGAN,
    WassersteinGAN,
    WassersteinGANGP,
)
from gan_lightning.networks import (
    DCGANDiscriminator,
    DCGANGenerator,
    MLPDiscriminator,
    MLPGenerator,
)


def mlp_pair(
    pack: int = 1, spectral_norm: bool = False, batch_norm: bool = False
) -> tuple[nn.Module, nn.Module]:
    """An MLP generator and discriminator for 2-D points; D takes ``pack`` points at once."""
    generator = MLPGenerator(
        latent_dim=4, output_shape=[2], hidden_dims=[32, 32], batch_norm=batch_norm
    )
    discriminator = MLPDiscriminator(
        input_shape=[2 * pack], hidden_dims=[32, 32], spectral_norm=spectral_norm
    )
    return generator, discriminator


def dcgan_pair() -> tuple[nn.Module, nn.Module]:
    generator = DCGANGenerator(latent_dim=8, image_size=16, base_channels=8)
    return generator, DCGANDiscriminator(image_size=16, base_channels=8)


def ring(batch_size: int = 32) -> GaussianMixtureDataModule:
    return GaussianMixtureDataModule(kind="ring", num_train=2048, num_val=64, batch_size=batch_size)


# Every variant, and the options that change what the loop does, on tiny networks.
VARIANTS = {
    "gan_minimax": lambda: GAN(*mlp_pair(), loss="minimax"),
    # A BatchNorm generator: its statistics (and the EMA copy's) are buffers DDP must sync.
    "gan_r1_ema": lambda: GAN(
        *mlp_pair(batch_norm=True), loss="non_saturating", r1_gamma=1.0, ema_decay=0.9
    ),
    "gan_feature_matching": lambda: GAN(*mlp_pair(), feature_matching=True),
    "dcgan_diff_augment": lambda: DCGAN(*dcgan_pair(), diff_augment="translation,cutout"),
    "lsgan": lambda: LeastSquaresGAN(*mlp_pair()),
    "wgan": lambda: WassersteinGAN(*mlp_pair(), n_critic=2),
    "wgan_gp": lambda: WassersteinGANGP(*mlp_pair(), n_critic=2),
    "sngan": lambda: SpectralNormGAN(*mlp_pair(spectral_norm=True), n_critic=2),
    "pacgan": lambda: GAN(*mlp_pair(pack=2), loss="non_saturating", pack=2),
}


def data_for(name: str) -> pl.LightningDataModule:
    """16x16 digits for the convolutional variant, the 8-mode ring for the others."""
    return DigitsDataModule(image_size=16, batch_size=8) if name.startswith("dcgan") else ring()


def fit(model: pl.LightningModule, data, max_steps: int, tmp_path, **kwargs) -> pl.Trainer:
    """Train for ``max_steps`` steps, logging every step, without validation."""
    kwargs = {"log_every_n_steps": 1, "limit_val_batches": 0, **kwargs}
    trainer = quiet_trainer(tmp_path, max_steps=max_steps, **kwargs)
    trainer.fit(model, data)
    return trainer


class LinearCritic(nn.Module):
    """f(x) = w . x: its input gradient is w at every input (freeze it with ``frozen_sgd``)."""

    def __init__(self, w: tuple[float, ...] = (3.0, 4.0)) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w))

    def features(self, x: Tensor) -> Tensor:
        return x

    def forward(self, x: Tensor) -> Tensor:
        return x @ self.w.to(x.dtype)


def frozen_sgd(params):
    return torch.optim.SGD(params, lr=0.0)


class Recorder(Callback):
    """Keeps the logged metrics after every training step."""

    def __init__(self) -> None:
        self.metrics: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.metrics.append({k: v.item() for k, v in trainer.callback_metrics.items()})
