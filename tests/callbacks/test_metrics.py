"""Metrics callback: equality with torch-fidelity, one feature pass, cache, DDP, honest counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
from pathlib import Path

import pytest
import torch
import torch_fidelity
from torch import Tensor
from torch.utils.data import Dataset
from torch_fidelity import feature_extractor_inceptionv3

from gan_lightning.callbacks import Metrics
from gan_lightning.callbacks.metrics import split_range
from gan_lightning.errors import ConfigurationError
from gan_lightning.images import to_rgb, to_uint8
from gan_lightning.metrics import Evaluator, FeatureSet, inception_score
from gan_lightning.metrics.scores import canonical_order
from gan_lightning.metrics.weights import WEIGHTS_ENV_VAR

sys.path.insert(0, str(Path(__file__).parent))
import metrics_worker as worker  # noqa: E402


class _Uint8Images(Dataset):
    """Images as torch-fidelity reads them: one uint8 ``(3, H, W)`` tensor per item."""

    def __init__(self, images: Tensor) -> None:
        self.images = to_rgb(to_uint8(images))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Tensor:
        return self.images[index]


def _write_weights(source: Path, target: Path, head: str) -> Path:
    """Copy of the Inception weights with a random (``"random"``) or NaN classifier head."""
    state = torch.load(source, map_location="cpu", weights_only=True)
    generator = torch.Generator().manual_seed(0)
    for name in ("fc.weight", "fc.bias"):
        shape = state[name].shape
        fill = torch.randn(shape, generator=generator) * 0.05
        state[name] = fill if head == "random" else torch.full(shape, float("nan"))
    torch.save(state, target)
    return target


@pytest.fixture(scope="module")
def weights(fid_weights_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Inception weights with a classifier head the test writes itself, so IS is finite."""
    folder = tmp_path_factory.mktemp("weights")
    return _write_weights(fid_weights_path, folder / "inception-with-head.pth", "random")


@pytest.fixture(scope="module")
def runs(weights: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two single-process validations with the same cache folder and fresh callbacks."""
    import lightning.pytorch as pl

    real, labels, bank = worker.real_and_bank()
    model = worker.BankGAN(bank)
    cache_dir = tmp_path_factory.mktemp("cache")
    root = tmp_path_factory.mktemp("runs")
    out = []
    for _ in range(2):
        callback = worker.make_callback(str(weights), str(cache_dir))
        trainer = pl.Trainer(
            accelerator="cpu",
            devices=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=root,
            callbacks=[callback],
        )
        logged = trainer.validate(model, datamodule=worker.BankData(real, labels), verbose=False)
        seen = callback.evaluator.extractor.images_seen
        out.append({"callback": callback, "logged": logged[0], "images_seen": seen})
    return {
        "runs": out,
        "real": real,
        "labels": labels,
        "fake": worker.fake_images(model),
        "cache_dir": cache_dir,
        "root": root,
    }


def _torch_fidelity(fake: Tensor, real: Tensor | None, weights: Path, **metrics: bool) -> dict:
    return torch_fidelity.calculate_metrics(
        input1=_Uint8Images(fake),
        input2=None if real is None else _Uint8Images(real),
        feature_extractor_weights_path=str(weights),
        batch_size=worker.BATCH,
        kid_subsets=worker.OPTIONS["kid_subsets"],
        kid_subset_size=worker.OPTIONS["kid_subset_size"],
        isc_splits=worker.OPTIONS["isc_splits"],
        prc_neighborhood=worker.OPTIONS["prc_neighborhood"],
        # PR's default extractor in torch-fidelity is VGG16; ours shares the Inception pass.
        feature_extractor="inception-v3-compat",
        feature_layer_prc="2048",
        cuda=False,
        cache=False,
        save_cpu_ram=True,
        verbose=False,
        **metrics,
    )


def test_every_metric_equals_torch_fidelity(runs: dict, weights: Path) -> None:
    ours = runs["runs"][0]["callback"].last_results
    reference = _torch_fidelity(runs["fake"], runs["real"], weights, fid=True, kid=True, prc=True)
    fid = reference[torch_fidelity.KEY_METRIC_FID]
    kid = reference[torch_fidelity.KEY_METRIC_KID_MEAN]
    assert fid > 10 and kid > 1e-3, "the sets should differ clearly for the comparison to mean much"
    assert abs(ours["fid"] - fid) / fid < 1e-3
    assert abs(ours["kid_mean"] - kid) / kid < 1e-3
    kid_std = reference[torch_fidelity.KEY_METRIC_KID_STD]
    assert abs(ours["kid_std"] - kid_std) / kid_std < 1e-2
    assert 0 < reference[torch_fidelity.KEY_METRIC_PRECISION] < 1
    assert ours["precision"] == reference[torch_fidelity.KEY_METRIC_PRECISION]
    assert ours["recall"] == reference[torch_fidelity.KEY_METRIC_RECALL]
    assert ours["kid_subset_size"] == worker.OPTIONS["kid_subset_size"]


def test_inception_score_equals_torch_fidelity_and_ignores_order(runs: dict, weights: Path):
    callback = runs["runs"][0]["callback"]
    logits = callback.evaluator.extract([runs["fake"]])["logits"]

    # Our IS splits the canonical order; torch-fidelity splits the order it is given.
    canonical = runs["fake"][canonical_order(logits)]
    reference = _torch_fidelity(canonical, None, weights, isc=True)
    value = reference[torch_fidelity.KEY_METRIC_ISC_MEAN]
    assert value > 1.05
    assert abs(callback.last_results["is_mean"] - value) / value < 1e-2
    std = reference[torch_fidelity.KEY_METRIC_ISC_STD]
    assert abs(callback.last_results["is_std"] - std) <= 1e-2 * value

    # Reordering the samples leaves our score unchanged, but not the order-dependent one.
    permutation = torch.randperm(len(logits), generator=torch.Generator().manual_seed(3))
    splits = worker.OPTIONS["isc_splits"]
    assert inception_score(logits[permutation], splits) == inception_score(logits, splits)
    plain = inception_score(logits, splits, canonical=False)
    assert inception_score(logits[permutation], splits, canonical=False) != plain


def test_cached_real_features_are_not_recomputed(runs: dict) -> None:
    assert runs["runs"][0]["images_seen"] == worker.NUM_REAL + worker.NUM_FAKE
    assert runs["runs"][1]["images_seen"] == worker.NUM_FAKE
    first, second = (run["callback"] for run in runs["runs"])
    assert torch.equal(first.real.features, second.real.features)
    assert second.last_results == first.last_results
    assert torch.equal(second.real.labels, runs["labels"])
    assert len(list(Path(runs["cache_dir"]).glob("real-*.pt"))) == 1


def test_logged_values_and_records(runs: dict) -> None:
    run = runs["runs"][0]
    for name, value in run["callback"].last_results.items():
        assert run["logged"][f"val/{name}"] == pytest.approx(value, rel=1e-6)
    protocol = json.loads((runs["root"] / "metrics_protocol.json").read_text())
    assert protocol["feature_extractor"] == "inception-v3-compat"
    assert protocol["num_fake"] == worker.NUM_FAKE and protocol["num_real"] == worker.NUM_REAL
    lines = (runs["root"] / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["fid"] == run["callback"].last_results["fid"]


def test_identical_sets_give_zero_fid_and_full_precision_recall(runs: dict) -> None:
    real = runs["runs"][0]["callback"].real
    evaluator = Evaluator(["fid", "pr"], owner="test")
    results = evaluator.compute(FeatureSet(real.features), {"pool": real.features.clone()}, False)
    assert abs(results["fid"]) < 1e-6 * real.covariance.diagonal().sum().item()
    assert results["precision"] == 1.0 and results["recall"] == 1.0


def test_ddp_equals_single_process_on_every_rank(runs: dict, weights: Path, tmp_path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    script = Path(worker.__file__)
    command = [sys.executable, str(script), str(tmp_path), str(weights), str(tmp_path / "c"), "2"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    single = runs["runs"][0]["callback"].last_results
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for rank in ranks:
        assert rank["world_size"] == 2 and rank["real_count"] == worker.NUM_REAL
        assert rank["real_labels"] == runs["labels"].tolist()  # Global order restored.
        # Each rank extracted half the real and half the generated images.
        assert rank["images_seen"] == (worker.NUM_REAL + worker.NUM_FAKE) // 2
        assert rank["results"] == ranks[0]["results"]
        for name, value in single.items():
            assert rank["results"][name] == pytest.approx(value, rel=1e-6, abs=1e-12), name


def test_split_range_blocks_cover_in_order() -> None:
    blocks = [split_range(10, 4, rank) for rank in range(4)]
    assert blocks == [(0, 3), (3, 6), (6, 8), (8, 10)]
    assert [split_range(5, 1, 0)] == [(0, 5)]


def test_counts_are_honest() -> None:
    generator = torch.Generator().manual_seed(0)
    real = FeatureSet(torch.randn(30, 64, generator=generator))
    fake = {"pool": torch.randn(20, 64, generator=generator) + 0.5}
    evaluator = Evaluator(["fid", "kid"], kid_subset_size=1000, kid_subsets=5, owner="Metrics")
    with pytest.warns(UserWarning) as record:
        results = evaluator.compute(real, fake)
    messages = " ".join(str(w.message) for w in record)
    assert "clamped to 20" in messages
    assert results["kid_subset_size"] == 20
    big = FeatureSet(torch.randn(10, 2048, generator=generator))
    with pytest.warns(UserWarning, match="fewer than the 2048 feature dimensions"):
        Evaluator(["fid"]).compute(big, {"pool": torch.randn(10, 2048, generator=generator)})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metrics": ["fid", "ssim"]}, "Metrics.metrics must be"),
        ({"metrics": ["is"], "num_fake": 8, "isc_splits": 10}, "isc_splits=10 is more than"),
        ({"metrics": ["pr"], "num_fake": 3}, "Metrics.num_fake must be at least 4"),
        ({"feature_extractor": "inception"}, "Metrics.feature_extractor must be one of"),
        ({"metrics": ["is"], "feature_extractor": "clip-vit-b-32"}, "needs the Inception"),
        ({"kid_subset_size": 1}, "Metrics.kid_subset_size must be at least 2"),
        ({"seed": -1}, "Metrics.seed"),
    ],
)
def test_arguments_are_validated(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Metrics(**kwargs)


def test_weights_without_classifier_head_refuse_inception_score(
    fid_weights_path: Path, tmp_path: Path, tiny_gan_cls, make_trainer
) -> None:
    no_head = _write_weights(fid_weights_path, tmp_path / "no-head.pth", "nan")
    options = {"num_real": 8, "num_fake": 8, "isc_splits": 2, "weights_path": str(no_head)}
    callback = Metrics(["fid", "is"], **options)
    trainer = make_trainer(tmp_path, callbacks=[callback], max_steps=1)
    images = torch.rand(8, 1, 8, 8) * 2 - 1
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images), batch_size=4)
    model = tiny_gan_cls()
    with pytest.raises(ConfigurationError, match="no classifier head"):
        trainer.fit(model, loader, loader)
    assert model.training_steps == 0


def test_truncated_and_missing_weights_name_the_file(fid_weights_path: Path, tmp_path: Path):
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(fid_weights_path.read_bytes()[:1000])
    with pytest.raises(ConfigurationError, match="truncated") as error:
        Evaluator(weights_path=str(truncated)).build()
    assert str(truncated) in str(error.value)
    with pytest.raises(ConfigurationError, match=WEIGHTS_ENV_VAR):
        Evaluator(weights_path=str(tmp_path / "missing.pth")).build()


def test_offline_without_weights_says_where_to_put_them(tmp_path: Path, monkeypatch) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("no network in tests")

    monkeypatch.delenv(WEIGHTS_ENV_VAR, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(feature_extractor_inceptionv3, "load_state_dict_from_url", offline)
    with pytest.raises(ConfigurationError) as error:
        Evaluator().build()
    assert str(tmp_path / "hub" / "checkpoints") in str(error.value)
    assert WEIGHTS_ENV_VAR in str(error.value)
