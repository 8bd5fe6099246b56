"""Mode coverage: hand-computed values, the callback on a perfect generator, the ring config."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import Tensor

from gan_lightning.callbacks import ModeCoverage
from gan_lightning.cli import main
from gan_lightning.data import DigitsDataModule, GaussianMixtureDataModule
from gan_lightning.data.mixtures import mixture_modes
from gan_lightning.errors import ConfigurationError
from gan_lightning.metrics.coverage import kl_to_uniform, label_coverage, mixture_coverage


def test_mixture_coverage_matches_hand_computation() -> None:
    modes, std = mixture_modes("ring"), 0.01
    points = torch.stack(
        [
            modes[0],
            modes[0],
            modes[0],
            modes[1] + torch.tensor([2 * std, 0.0]),  # Within 3 std: high quality.
            modes[2] + torch.tensor([0.0, 4 * std]),  # Nearest to mode 2, but not high quality.
        ]
    )
    result = mixture_coverage(points, modes, std)
    assert result["modes_covered"] == 2
    assert result["high_quality_pct"] == pytest.approx(80.0)
    expected_kl = 0.6 * math.log(8 * 0.6) + 2 * 0.2 * math.log(8 * 0.2)
    assert result["reverse_kl"] == pytest.approx(expected_kl, rel=1e-12)


def test_kl_to_uniform_and_label_coverage() -> None:
    assert kl_to_uniform(torch.tensor([5, 5, 5, 5])) == pytest.approx(0.0, abs=1e-15)
    assert kl_to_uniform(torch.tensor([0, 7, 0, 0])) == pytest.approx(math.log(4))
    result = label_coverage(torch.tensor([3, 3, 999, 0]), 1000)
    assert result["modes_covered"] == 3
    assert result["kl_uniform"] == pytest.approx(0.5 * math.log(500) + 2 * 0.25 * math.log(250))


def _module(modes: Tensor, missing: int = 0):
    """Stand-in GAN whose sample ``i`` of a batch is mode ``i mod K`` plus tiny noise."""
    import lightning.pytorch as pl

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))
            self.modes = modes[: len(modes) - missing]

        def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
            return torch.randn(n, 2, generator=generator) * 1e-3

        def generate(self, z: Tensor) -> Tensor:
            index = torch.arange(len(z)) % len(self.modes)
            return self.modes[index] + z

        def validation_step(self, batch: object, batch_idx: int) -> None:
            return None

    return Module()


@pytest.mark.parametrize(("missing", "covered"), [(0, 25), (5, 20)])
def test_callback_counts_the_modes_a_generator_reaches(
    missing: int, covered: int, make_trainer, tmp_path
) -> None:
    data = GaussianMixtureDataModule(kind="grid", num_train=10, num_val=100, batch_size=50)
    callback = ModeCoverage(num_samples=2500, batch_size=1000, plot_points=200)
    trainer = make_trainer(tmp_path, callbacks=[callback], limit_val_batches=1)
    logged = trainer.validate(_module(data.modes, missing), datamodule=data, verbose=False)[0]
    assert logged["val/modes_covered"] == covered
    assert logged["val/high_quality_pct"] == 100.0
    assert logged["val/reverse_kl"] == pytest.approx(math.log(25 / covered), abs=1e-3)
    plot = np.asarray(Image.open(tmp_path / "coverage" / "step_000000.png"))
    red = (plot[..., 0] > 200) & (plot[..., 1] < 100)
    blue = (plot[..., 2] > 200) & (plot[..., 0] < 100)
    assert red.any() and blue.any()


def test_callback_refuses_data_without_modes(tiny_gan_cls, make_trainer, tmp_path) -> None:
    trainer = make_trainer(tmp_path, callbacks=[ModeCoverage()], max_steps=1)
    with pytest.raises(ConfigurationError, match="GaussianMixtureDataModule"):
        trainer.fit(tiny_gan_cls(), datamodule=DigitsDataModule(image_size=8))


def test_ring_config_logs_coverage_and_plot(tmp_path) -> None:
    root = Path(__file__).resolve().parents[2]
    main(
        ["fit", "--config", str(root / "configs" / "gan_ring.yaml")]
        + [
            f"--trainer.default_root_dir={tmp_path}",
            f"--trainer.logger.init_args.save_dir={tmp_path}",
            "--trainer.max_steps=4",
            "--trainer.val_check_interval=2",
            "--trainer.enable_progress_bar=false",
            "--model.init_args.generator.init_args.hidden_dims=[16]",
            "--model.init_args.discriminator.init_args.hidden_dims=[16]",
            "--data.init_args.num_train=2048",
            "--data.init_args.num_val=256",
        ]
    )
    run = tmp_path / "tensorboard" / "version_0"
    events = EventAccumulator(str(run)).Reload()
    steps = [event.step for event in events.Scalars("val/modes_covered")]
    assert len(steps) == 2
    assert {"val/high_quality_pct", "val/reverse_kl"} <= set(events.Tags()["scalars"])
    assert "coverage" in events.Tags()["images"]
    assert len(list((run / "coverage").glob("step_*.png"))) == 2
