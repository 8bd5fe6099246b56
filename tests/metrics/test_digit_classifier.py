"""The stacked-digit mode classifier: accuracy, cache, determinism, and ModeCoverage with it.

The classifier is trained once for the whole module into a temporary cache folder (about 3 s).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import Tensor

from gan_lightning.callbacks import ModeCoverage
from gan_lightning.cli import main
from gan_lightning.data import StackedDigitsDataModule
from gan_lightning.errors import ConfigurationError
from gan_lightning.metrics import digit_classifier
from gan_lightning.metrics.digit_classifier import (
    CLASSIFIER_VERSION,
    DigitClassifier,
    classify_stacked,
    digit_split,
    load_digit_classifier,
)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder holding the 32x32 classifier, trained once for this module."""
    folder = tmp_path_factory.mktemp("classifier-cache")
    load_digit_classifier(32, folder)
    return folder


@pytest.fixture(scope="module")
def classifier(cache_dir: Path) -> DigitClassifier:
    return load_digit_classifier(32, cache_dir)[0]


@pytest.fixture
def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the classifier is trained instead of loaded from the cache."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the classifier was trained again instead of loaded")

    monkeypatch.setattr(digit_classifier, "train_digit_classifier", refuse)


def test_held_out_accuracy_is_at_least_97_percent(classifier: DigitClassifier) -> None:
    _, (images, digits) = digit_split(32)
    assert len(digits) == 180
    accuracy = float((classifier.predict(images) == digits).double().mean())
    assert accuracy >= 0.97


def test_cached_classifier_is_loaded_not_retrained(
    cache_dir: Path, classifier: DigitClassifier, no_training: None, monkeypatch
) -> None:
    files = sorted(path.name for path in cache_dir.glob("*.pt"))
    assert files == [f"digit-classifier-{CLASSIFIER_VERSION}-32px-seed0.pt"]
    loaded, accuracy = load_digit_classifier(32, cache_dir)
    assert accuracy >= 0.97
    for name, value in classifier.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value)
    # Without cache_dir, $GAN_LIGHTNING_CACHE_DIR names the folder.
    monkeypatch.setenv("GAN_LIGHTNING_CACHE_DIR", str(cache_dir))
    from_env, _ = load_digit_classifier(32)
    assert torch.equal(from_env.head.weight, classifier.head.weight)


def test_training_is_deterministic(classifier: DigitClassifier) -> None:
    again, _ = digit_classifier.train_digit_classifier(32, seed=0)
    for name, value in classifier.state_dict().items():
        assert torch.equal(again.state_dict()[name], value), name


def test_damaged_cache_file_is_replaced(tmp_path: Path, monkeypatch) -> None:
    untrained = DigitClassifier()
    monkeypatch.setattr(
        digit_classifier, "train_digit_classifier", lambda size, seed: (untrained, 0.5)
    )
    path = digit_classifier.classifier_path(tmp_path, 16)
    path.write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="50.00%"):
        _, accuracy = load_digit_classifier(16, tmp_path)
    assert accuracy == 0.5
    entry = torch.load(path, weights_only=True)
    assert entry["key"]["image_size"] == 16 and entry["accuracy"] == 0.5


def test_classify_stacked_reads_each_channel(classifier: DigitClassifier) -> None:
    data = StackedDigitsDataModule(image_size=32, num_train=1, num_val=500, seed=5)
    data.setup()
    images = torch.stack([data.val_set[i][0] for i in range(500)])
    modes = classify_stacked(images, classifier)
    per_channel = [classifier.predict(images[:, c : c + 1]) for c in range(3)]
    assert torch.equal(modes, 100 * per_channel[0] + 10 * per_channel[1] + per_channel[2])
    # Three digits right at >= 97% each: at least 0.97^3 = 91% of the stacks.
    assert float((modes == data.val_set.labels).double().mean()) >= 0.91
    with pytest.raises(ConfigurationError, match=r"\(N, 3, S, S\)"):
        classify_stacked(images[:, :1], classifier)


# ---------------------------------------------------------------------------------------------
# ModeCoverage on stacked digits.


def _exemplars(classifier: DigitClassifier) -> Tensor:
    """``(10, 32, 32)``: for each digit, the first held-out image the classifier gets right."""
    _, (images, digits) = digit_split(32)
    right = classifier.predict(images) == digits
    return torch.stack([images[right & (digits == d)][0, 0] for d in range(10)])


class StackedStandIn(pl.LightningModule):
    """Generates, for sample ``i`` of each batch, a clean stack of mode ``i mod num_modes``."""

    def __init__(self, exemplars: Tensor, num_modes: int, with_log_at_step: bool) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.exemplars = exemplars
        self.num_modes = num_modes
        self.logged: list[tuple[dict[str, float], bool]] = []
        if with_log_at_step:
            self.log_at_step = self._record

    def _record(self, metrics: dict[str, Tensor | float], sync_dist: bool = False) -> None:
        self.logged.append(({name: float(value) for name, value in metrics.items()}, sync_dist))

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.randn(n, 4, generator=generator)

    def generate(self, z: Tensor) -> Tensor:
        modes = torch.arange(len(z)) % self.num_modes
        digits = torch.stack([modes // 100, modes // 10 % 10, modes % 10], dim=1)
        return self.exemplars[digits]

    def validation_step(self, batch: object, batch_idx: int) -> None:
        return None


@pytest.mark.parametrize(("num_modes", "with_log_at_step"), [(1000, False), (250, True)])
def test_callback_counts_the_stacked_modes_a_generator_reaches(
    num_modes: int, with_log_at_step: bool, classifier, cache_dir, make_trainer, tmp_path
) -> None:
    data = StackedDigitsDataModule(image_size=32, num_train=64, num_val=64, batch_size=64)
    callback = ModeCoverage(num_samples=2000, batch_size=1000, cache_dir=str(cache_dir))
    module = StackedStandIn(_exemplars(classifier), num_modes, with_log_at_step)
    trainer = make_trainer(tmp_path, callbacks=[callback], limit_val_batches=1)
    logged = trainer.validate(module, datamodule=data, verbose=False)[0]

    # 2,000 samples over num_modes modes evenly: KL(q || uniform) = log(1000 / num_modes).
    expected = {"val/modes_covered": num_modes, "val/kl_to_uniform": math.log(1000 / num_modes)}
    assert callback.last_results["modes_covered"] == num_modes
    if with_log_at_step:
        assert len(module.logged) == 1
        values, sync_dist = module.logged[0]
        assert values.keys() == expected.keys() and sync_dist
    else:
        values = logged
    for name, value in expected.items():
        assert values[name] == pytest.approx(value, abs=1e-6)
    assert not (tmp_path / "coverage").exists()  # No scatter plot for images.


def test_callback_default_sample_count_depends_on_the_data(make_trainer, tmp_path) -> None:
    callback = ModeCoverage()
    trainer = make_trainer(tmp_path, callbacks=[callback])
    trainer.datamodule = StackedDigitsDataModule(image_size=8)
    callback.setup(trainer, None, "fit")
    assert callback.sample_count == 25_600
    assert ModeCoverage(num_samples=10).sample_count == 10


def test_callback_refuses_images_of_the_wrong_shape(
    classifier, make_trainer, tmp_path, monkeypatch
) -> None:
    # The 16x16 classifier is not trained: the callback is handed the 32x32 one.
    monkeypatch.setattr(
        "gan_lightning.callbacks.coverage.load_digit_classifier", lambda *args: (classifier, 1.0)
    )
    data = StackedDigitsDataModule(image_size=16, num_train=64, num_val=64, batch_size=64)
    module = StackedStandIn(_exemplars(classifier), 1000, False)  # 32x32 images.
    callback = ModeCoverage(num_samples=10)
    trainer = make_trainer(tmp_path, callbacks=[callback], limit_val_batches=1)
    with pytest.raises(ConfigurationError, match=r"\(N, 3, 16, 16\)"):
        trainer.validate(module, datamodule=data, verbose=False)


def test_stacked_config_logs_coverage_at_the_step_count(cache_dir, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GAN_LIGHTNING_CACHE_DIR", str(cache_dir))
    monkeypatch.setattr(sys, "argv", ["gan-lightning"])
    root = Path(__file__).resolve().parents[2]
    main(
        ["fit", "--config", str(root / "configs" / "dcgan_stacked_digits.yaml")]
        + [
            f"--trainer.default_root_dir={tmp_path}",
            f"--trainer.logger.init_args.save_dir={tmp_path}",
            "--trainer.max_steps=2",
            "--trainer.val_check_interval=2",
            "--trainer.log_every_n_steps=1",
            "--trainer.enable_progress_bar=false",
            "--model.init_args.generator.init_args.base_channels=8",
            "--model.init_args.discriminator.init_args.base_channels=8",
            "--data.init_args.num_train=256",
            "--data.init_args.num_val=64",
            "--data.init_args.batch_size=16",
        ]
    )
    events = EventAccumulator(str(tmp_path / "tensorboard" / "version_0")).Reload()
    covered = events.Scalars("val/modes_covered")
    # Logged at x = 2 completed steps, like the losses of step 2 and step=000002.ckpt.
    assert [event.step for event in covered] == [2]
    assert 1 <= covered[0].value <= 1000
    kl = events.Scalars("val/kl_to_uniform")[0].value
    # The KL of K covered modes out of 1000 lies in [log(1000 / K), log 1000].
    assert math.log(1000 / covered[0].value) - 1e-4 <= kl <= math.log(1000) + 1e-4
