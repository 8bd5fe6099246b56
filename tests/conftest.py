"""Fixtures shared by the whole test suite: FID weights and a tiny stand-in GAN module."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch import Tensor, nn

# shared/ sits beside the repository root, here and in CI.
SHARED_FID_WEIGHTS = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "weights"
) / "inception-2015-12-05-fid-features.pth"


def _write_random_inception(path: Path) -> Path:
    """Save a randomly initialised Inception-v3 in torch-fidelity's layout, without downloading."""
    from torch_fidelity import feature_extractor_inceptionv3 as inception

    with pytest.MonkeyPatch.context() as patch, torch.random.fork_rng():
        # Skip the download and the load, keeping PyTorch's random initialisation.
        patch.setattr(inception, "load_state_dict_from_url", lambda *args, **kwargs: {})
        patch.setattr(
            inception.FeatureExtractorInceptionV3, "load_state_dict", lambda *args, **kwargs: None
        )
        torch.manual_seed(0)
        network = inception.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
        # He initialisation keeps the activations' scale through the ~50 ReLU layers; PyTorch's
        # default shrinks it until all images give the same features.
        for module in network.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    torch.save(network.state_dict(), path)
    return path


@pytest.fixture(scope="session")
def fid_weights_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The standard FID Inception weights from shared/, else random weights in the same layout."""
    if SHARED_FID_WEIGHTS.is_file():
        return SHARED_FID_WEIGHTS.resolve()
    return _write_random_inception(tmp_path_factory.mktemp("weights") / "random-inception.pth")


class TinyGAN(pl.LightningModule):
    """Stand-in with the sampling interface of the GAN modules: a linear generator and tanh.

    Args:
        latent_dim: Size of the latent vectors.
        image_shape: ``(C, H, W)`` of the generated images.
        init_seed: Seed of the generator's initial weights, so two instances can differ.
        lr: SGD learning rate of the trivial training step (0 keeps the weights fixed).
    """

    def __init__(
        self,
        latent_dim: int = 8,
        image_shape: tuple[int, int, int] = (1, 8, 8),
        init_seed: int = 0,
        lr: float = 0.0,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.image_shape = image_shape
        self.lr = lr
        with torch.random.fork_rng():
            torch.manual_seed(init_seed)
            self.generator = nn.Linear(latent_dim, image_shape[0] * image_shape[1] * image_shape[2])
        self.training_steps = 0

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.randn(n, self.latent_dim, generator=generator).to(self.device)

    @torch.no_grad()
    def generate(self, z: Tensor) -> Tensor:
        was_training = self.training
        self.eval()
        images = torch.tanh(3 * self.generator(z)).view(-1, *self.image_shape)
        self.train(was_training)
        return images

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        self.training_steps += 1
        images = batch[0]
        fake = torch.tanh(3 * self.generator(self.sample_latent(images.shape[0])))
        return (fake.view_as(images) - images).square().mean()

    def validation_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> None:
        return None

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr)


@pytest.fixture(scope="session")
def tiny_gan_cls() -> type[TinyGAN]:
    """The stand-in GAN class (a fixture, since test files cannot import conftest reliably)."""
    return TinyGAN


def quiet_trainer(root: Path, **kwargs: object) -> pl.Trainer:
    """A CPU trainer without checkpoints, progress bar or model summary."""
    options: dict = {
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "default_root_dir": root,
        "num_sanity_val_steps": 0,
    }
    options.update(kwargs)
    return pl.Trainer(**options)


@pytest.fixture(scope="session")
def make_trainer() -> object:
    """Factory ``make_trainer(root, **trainer_kwargs)`` of quiet CPU trainers for callback tests."""
    return quiet_trainer
