"""``gan-lightning evaluate``: a checkpoint and the folder ``sample`` writes from it agree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

from gan_lightning.cli import main
from gan_lightning.errors import ConfigurationError
from gan_lightning.evaluate import evaluate

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "--model.init_args.generator.init_args.image_size=16",
    "--model.init_args.generator.init_args.base_channels=8",
    "--model.init_args.discriminator.init_args.image_size=16",
    "--model.init_args.discriminator.init_args.base_channels=8",
    "--data.init_args.image_size=16",
]


@pytest.fixture
def cheap_features(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replace Inception's forward with a pixel projection: these tests check the plumbing."""

    def forward(self: FeatureExtractorInceptionV3, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        pixels = F.adaptive_avg_pool2d(x.float(), 4).flatten(1)
        return (F.pad(pixels, (0, 2048 - pixels.shape[1])),)

    monkeypatch.setattr(FeatureExtractorInceptionV3, "forward", forward)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One training step of the main config at 16x16: a checkpoint and its saved config."""
    root = tmp_path_factory.mktemp("run")
    main(
        ["fit", "--config", str(ROOT / "configs" / "dcgan_digits.yaml"), *TINY]
        + [
            f"--trainer.default_root_dir={root}",
            f"--trainer.logger.init_args.save_dir={root}",
            "--trainer.callbacks=null",
            "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
            "--trainer.callbacks.every_n_train_steps=1",
            "--trainer.max_steps=1",
            "--trainer.limit_val_batches=0",
            "--trainer.enable_progress_bar=false",
        ]
    )
    return root / "tensorboard" / "version_0"


def test_checkpoint_and_sampled_folder_give_the_same_values(
    trained_run: Path, cheap_features, fid_weights_path: Path, tmp_path: Path
) -> None:
    ckpt = next(trained_run.rglob("*.ckpt"))
    folder = tmp_path / "samples"
    main(
        ["sample", "--ckpt_path", str(ckpt), "--output_dir", str(folder)]
        + ["--num_samples", "12", "--batch_size", "5", "--seed", "3"]
    )
    common = ["--config", str(trained_run / "config.yaml"), "--num_real", "20"]
    common += ["--num_fake", "12", "--batch_size", "5", "--kid_subset_size", "6"]
    common += ["--weights_path", str(fid_weights_path), "--cache_dir", str(tmp_path / "cache")]
    common += ["--metrics", "fid,kid,pr", "--kid_subsets", "5"]
    from_ckpt = evaluate([*common, "--ckpt_path", str(ckpt), "--seed", "3"])
    output = tmp_path / "results.json"
    from_folder = evaluate([*common, "--images", str(folder), "--output", str(output)])

    assert from_ckpt == from_folder
    assert from_ckpt["num_fake"] == 12 and from_ckpt["num_real"] == 20
    assert from_ckpt["fid"] > 0 and 0 <= from_ckpt["precision"] <= 1
    assert json.loads(output.read_text()) == from_folder
    assert len(list((tmp_path / "cache").glob("real-*.pt"))) == 1


def test_folder_of_mixed_sizes_is_refused(trained_run, cheap_features, fid_weights_path, tmp_path):
    for name, size in (("a.png", 16), ("b.png", 16), ("c.png", 12)):
        Image.new("L", (size, size)).save(tmp_path / name)
    args = ["--config", str(trained_run / "config.yaml"), "--images", str(tmp_path)]
    args += ["--num_real", "8", "--weights_path", str(fid_weights_path), "--metrics", "fid"]
    args += ["--cache_dir", str(tmp_path / "cache")]
    with pytest.raises(ConfigurationError, match="c.png"):
        evaluate(args)


def test_command_line_reports_a_missing_config(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--config", str(tmp_path / "nope.yaml"), "--images", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "nope.yaml does not exist" in capsys.readouterr().err
