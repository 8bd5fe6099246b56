"""FrechetInceptionDistanceCallback: equality with torch-fidelity, caching, weights handling."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torch_fidelity
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, TensorDataset
from torch_fidelity import feature_extractor_inceptionv3
from torchmetrics.image.fid import FrechetInceptionDistance, NoTrainInceptionV3

from gan_lightning.callbacks import FID, FrechetInceptionDistanceCallback
from gan_lightning.callbacks.fid import (
    WEIGHTS_ENV_VAR,
    build_fid_metric,
    resolve_weights_path,
    split_count,
    to_fid_input,
)
from gan_lightning.errors import ConfigurationError

# Feature extraction costs ~0.2-0.5 s per image on 2 CPU cores: keep the real-network sets small.
NUM_IMAGES = 16
CHUNK = 6
SEED = 1234


class _Uint8Images(Dataset):
    """Images as torch-fidelity reads them: one uint8 ``(3, H, W)`` tensor per item."""

    def __init__(self, images: Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Tensor:
        return self.images[index]


def _png_pixels_rgb(images: Tensor) -> Tensor:
    """Reference conversion, written out: [-1, 1] to PNG-rounded uint8, gray repeated to RGB."""
    pixels = (((images + 1) / 2).clamp(0, 1) * 255 + 0.5).to(torch.uint8)
    return pixels.repeat(1, 3, 1, 1)


def _loader(images: Tensor, batch_size: int = CHUNK) -> DataLoader:
    return DataLoader(TensorDataset(images, torch.zeros(len(images))), batch_size=batch_size)


def _record_updates(patch: pytest.MonkeyPatch) -> list[tuple[bool, int]]:
    """Spy on FrechetInceptionDistance.update: one ``(real, batch size)`` entry per call."""
    calls: list[tuple[bool, int]] = []
    original = FrechetInceptionDistance.update

    def update(self: FrechetInceptionDistance, imgs: Tensor, real: bool) -> None:
        calls.append((real, imgs.shape[0]))
        original(self, imgs, real)

    patch.setattr(FrechetInceptionDistance, "update", update)
    return calls


@pytest.fixture
def cheap_features(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replace Inception's forward with a pixel projection, for tests of the bookkeeping only."""

    def forward(self: NoTrainInceptionV3, x: Tensor) -> Tensor:
        pixels = F.adaptive_avg_pool2d(x.float(), 4).flatten(1)
        return F.pad(pixels, (0, 2048 - pixels.shape[1]))

    monkeypatch.setattr(NoTrainInceptionV3, "forward", forward)


@pytest.fixture(scope="session")
def fid_runs(fid_weights_path, tiny_gan_cls, make_trainer, tmp_path_factory) -> dict:
    """Two validation runs with the real network, one callback, the same real loader.

    The real images are what a second generator makes from the callback's own latents, so the
    second run (with that generator) compares two identical sets.
    """
    real_model, fake_model = tiny_gan_cls(init_seed=1), tiny_gan_cls(init_seed=0)
    latents = real_model.sample_latent(NUM_IMAGES, generator=torch.Generator().manual_seed(SEED))
    real_images = real_model.generate(latents)
    callback = FID(NUM_IMAGES, NUM_IMAGES, CHUNK, weights_path=str(fid_weights_path), seed=SEED)
    root = tmp_path_factory.mktemp("fid_runs")

    runs = []
    with pytest.MonkeyPatch.context() as patch:
        calls = _record_updates(patch)
        for model in (fake_model, real_model):
            trainer = make_trainer(root, callbacks=[callback])
            value = trainer.validate(model, _loader(real_images), verbose=False)[0]["val/fid"]
            runs.append({"value": value, "calls": list(calls)})
            calls.clear()
    fake_images = fake_model.generate(latents)
    return {
        "runs": runs,
        "real": real_images,
        "fake": fake_images,
        "callback": callback,
        "models": (fake_model, real_model),
    }


def test_fid_equals_torch_fidelity(fid_runs: dict, fid_weights_path: Path) -> None:
    reference = torch_fidelity.calculate_metrics(
        input1=_Uint8Images(_png_pixels_rgb(fid_runs["fake"])),
        input2=_Uint8Images(_png_pixels_rgb(fid_runs["real"])),
        fid=True,
        feature_extractor_weights_path=str(fid_weights_path),
        batch_size=NUM_IMAGES,
        cuda=False,
        cache=False,
        save_cpu_ram=True,
        verbose=False,
    )[torch_fidelity.KEY_METRIC_FID]
    value = fid_runs["runs"][0]["value"]
    assert reference > 1.0, "the two sets should differ clearly for the comparison to mean much"
    assert abs(value - reference) / reference < 1e-3


def test_identical_sets_give_zero(fid_runs: dict) -> None:
    assert abs(fid_runs["runs"][1]["value"]) < 1e-2


def test_real_statistics_added_once(fid_runs: dict) -> None:
    first, second = (run["calls"] for run in fid_runs["runs"])
    expected_chunks = [CHUNK, CHUNK, NUM_IMAGES - 2 * CHUNK]
    assert [n for real, n in first if real] == expected_chunks
    assert [n for real, n in first if not real] == expected_chunks
    assert [n for real, n in second if real] == []
    assert [n for real, n in second if not real] == expected_chunks
    assert fid_runs["callback"].metric.real_features_num_samples.item() == NUM_IMAGES


def test_metric_uses_tf1_resize_and_stays_out_of_the_model(fid_runs: dict) -> None:
    metric = fid_runs["callback"].metric
    assert metric.inception.use_antialias is False
    assert metric.fake_features_num_samples.item() == 0  # Reset after every validation.
    for model in fid_runs["models"]:
        assert list(model.state_dict()) == ["generator.weight", "generator.bias"]
        assert all(module is not metric for module in model.modules())
    assert FID is FrechetInceptionDistanceCallback


def test_to_fid_input_is_png_pixels_as_rgb() -> None:
    images = torch.linspace(-1.2, 1.2, 2 * 25).view(2, 1, 5, 5)
    converted = to_fid_input(images)
    assert converted.dtype == torch.uint8 and converted.shape == (2, 3, 5, 5)
    assert torch.equal(converted, _png_pixels_rgb(images))
    rgb = torch.rand(2, 3, 4, 4) * 2 - 1
    assert torch.equal(to_fid_input(rgb)[:, 1], _png_pixels_rgb(rgb[:, 1:2])[:, 0])


def test_fit_caches_real_statistics_and_skips_sanity_check(
    cheap_features, fid_weights_path, tiny_gan_cls, make_trainer, tmp_path, monkeypatch
) -> None:
    calls = _record_updates(monkeypatch)
    callback = FID(num_real=12, num_fake=10, batch_size=4, weights_path=str(fid_weights_path))
    trainer = make_trainer(
        tmp_path, callbacks=[callback], max_epochs=2, limit_train_batches=2, num_sanity_val_steps=1
    )
    images = torch.rand(20, 1, 8, 8) * 2 - 1
    trainer.fit(tiny_gan_cls(lr=0.1), _loader(images, 4), _loader(images, 8))

    # Sanity check: nothing; epoch 1: 8 + 4 real; each epoch: 4 + 4 + 2 generated.
    assert [n for real, n in calls if real] == [8, 4]
    assert [n for real, n in calls if not real] == [4, 4, 2] * 2
    assert torch.isfinite(trainer.callback_metrics["val/fid"])
    assert callback.metric.device == torch.device("cpu")


def test_few_real_images_warn_once(
    cheap_features, fid_weights_path, tiny_gan_cls, make_trainer, tmp_path
) -> None:
    callback = FID(num_real=50, num_fake=4, weights_path=str(fid_weights_path))
    images = torch.rand(20, 1, 8, 8) * 2 - 1
    with pytest.warns(UserWarning, match="num_real=50") as record:
        for _ in range(2):
            make_trainer(tmp_path, callbacks=[callback]).validate(
                tiny_gan_cls(), _loader(images), verbose=False
            )
    assert sum("num_real=50" in str(w.message) for w in record) == 1
    assert callback.metric.real_features_num_samples.item() == 20


def _fit_must_fail_before_training(callback, tiny_gan_cls, make_trainer, root: Path) -> str:
    model = tiny_gan_cls()
    images = torch.rand(8, 1, 8, 8) * 2 - 1
    trainer = make_trainer(root, callbacks=[callback], max_steps=1)
    with pytest.raises(ConfigurationError) as error:
        trainer.fit(model, _loader(images, 4), _loader(images))
    assert model.training_steps == 0
    return str(error.value)


def test_missing_weights_fail_before_training(tiny_gan_cls, make_trainer, tmp_path) -> None:
    missing = tmp_path / "nowhere" / "inception.pth"
    callback = FID(weights_path=str(missing))
    message = _fit_must_fail_before_training(callback, tiny_gan_cls, make_trainer, tmp_path)
    assert str(missing) in message and WEIGHTS_ENV_VAR in message


def test_truncated_weights_fail_before_training(
    fid_weights_path, tiny_gan_cls, make_trainer, tmp_path
) -> None:
    truncated = tmp_path / "truncated.pth"
    with open(fid_weights_path, "rb") as source:
        truncated.write_bytes(source.read(fid_weights_path.stat().st_size // 2))
    callback = FID(weights_path=str(truncated))
    message = _fit_must_fail_before_training(callback, tiny_gan_cls, make_trainer, tmp_path)
    assert str(truncated) in message and "truncated" in message


def test_env_var_names_the_weights(tiny_gan_cls, make_trainer, tmp_path, monkeypatch) -> None:
    from_env = tmp_path / "from-env.pth"
    monkeypatch.setenv(WEIGHTS_ENV_VAR, str(from_env))
    assert resolve_weights_path(None)[0] == from_env
    assert resolve_weights_path("explicit.pth")[0] == Path("explicit.pth")
    message = _fit_must_fail_before_training(FID(), tiny_gan_cls, make_trainer, tmp_path)
    assert str(from_env) in message and WEIGHTS_ENV_VAR in message


def test_download_failure_says_where_to_put_weights(tmp_path, monkeypatch) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("no network in tests")

    monkeypatch.delenv(WEIGHTS_ENV_VAR, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(feature_extractor_inceptionv3, "load_state_dict_from_url", offline)
    with pytest.raises(ConfigurationError) as error:
        build_fid_metric(None)
    message = str(error.value)
    assert str(tmp_path / "hub" / "checkpoints") in message and WEIGHTS_ENV_VAR in message


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"num_real": 1}, "num_real"),
        ({"num_fake": 0}, "num_fake"),
        ({"batch_size": 0}, "batch_size"),
        ({"seed": -1}, "seed"),
        ({"log_name": ""}, "log_name"),
    ],
)
def test_arguments_are_validated(kwargs: dict, name: str) -> None:
    with pytest.raises(ConfigurationError, match=f"FrechetInceptionDistanceCallback.{name}"):
        FID(**kwargs)


def test_split_count_gives_remainder_to_low_ranks() -> None:
    assert [split_count(10, 4, rank) for rank in range(4)] == [3, 3, 2, 2]
    assert [split_count(8, 4, rank) for rank in range(4)] == [2, 2, 2, 2]
    assert sum(split_count(2048, 3, rank) for rank in range(3)) == 2048
