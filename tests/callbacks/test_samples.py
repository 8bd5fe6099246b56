"""SampleGrid: exact PNG pixels, file names by step, TensorBoard and W&B logging, rank 0 only."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace
from unittest.mock import MagicMock

import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from PIL import Image
from tensorboard.backend.event_processing import event_accumulator
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset
from torchvision.utils import make_grid

from gan_lightning.callbacks import SampleGrid
from gan_lightning.errors import ConfigurationError
from gan_lightning.images import to_uint8


def _read_png(path: Path) -> Tensor:
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB"))).permute(2, 0, 1)


def _expected_grid(model, num_samples: int, seed: int, nrow: int) -> Tensor:
    latents = model.sample_latent(num_samples, generator=torch.Generator().manual_seed(seed))
    return make_grid(to_uint8(model.generate(latents)), nrow=nrow)


def _fit(model, root: Path, callback: SampleGrid, make_trainer, **kwargs: object) -> None:
    images = torch.rand(16, 1, 8, 8) * 2 - 1
    loader = DataLoader(TensorDataset(images, torch.zeros(16)), batch_size=4)
    trainer = make_trainer(root, callbacks=[callback], max_steps=2, limit_val_batches=0, **kwargs)
    trainer.fit(model, loader)


def test_png_pixels_equal_generator_output(tiny_gan_cls, make_trainer, tmp_path) -> None:
    model = tiny_gan_cls(lr=0.5)
    callback = SampleGrid(num_samples=6, every_n_steps=1, seed=3)
    _fit(model, tmp_path, callback, make_trainer)

    # No logger: only the PNG files, in default_root_dir, one per step, none at step 0.
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert files == ["samples/step_000001.png", "samples/step_000002.png"]
    final = _read_png(tmp_path / "samples" / "step_000002.png")
    expected = _expected_grid(model, 6, seed=3, nrow=3)
    assert final.shape == expected.shape == (3, 2 + 2 * 10, 2 + 3 * 10)  # 2 rows of 3, padding 2
    assert torch.equal(final, expected)

    # Training changed the generator, so the first grid shows the earlier samples.
    first = _read_png(tmp_path / "samples" / "step_000001.png")
    assert not torch.equal(first, final)


def test_tensorboard_gets_the_grid(tiny_gan_cls, make_trainer, tmp_path) -> None:
    model = tiny_gan_cls()
    logger = TensorBoardLogger(tmp_path, name="tb")
    _fit(model, tmp_path, SampleGrid(num_samples=4, every_n_steps=2), make_trainer, logger=logger)

    folder = Path(logger.log_dir)
    assert sorted(p.name for p in (folder / "samples").iterdir()) == ["step_000002.png"]
    events = event_accumulator.EventAccumulator(str(folder), size_guidance={"images": 0})
    events.Reload()
    assert events.Tags()["images"] == ["samples"]
    (summary,) = events.Images("samples")
    assert summary.step == 2
    logged = np.asarray(Image.open(io.BytesIO(summary.encoded_image_string)).convert("RGB"))
    expected = _expected_grid(model, 4, seed=0, nrow=2)
    assert np.array_equal(logged, expected.permute(1, 2, 0).numpy())


def test_wandb_gets_the_grid(tiny_gan_cls, make_trainer, tmp_path) -> None:
    model = tiny_gan_cls()
    logger = MagicMock(spec=WandbLogger)
    logger.save_dir, logger.name, logger.version = str(tmp_path / "wandb"), "run", "0"
    _fit(model, tmp_path, SampleGrid(num_samples=4, every_n_steps=5), make_trainer, logger=logger)

    # every_n_steps=5 never comes in 2 steps: only the grid at the end of training.
    assert sorted(p.name for p in (tmp_path / "wandb" / "samples").iterdir()) == ["step_000002.png"]
    logger.log_image.assert_called_once()
    kwargs = logger.log_image.call_args.kwargs
    assert kwargs["key"] == "samples" and kwargs["step"] == 2
    (image,) = kwargs["images"]
    expected = _expected_grid(model, 4, seed=0, nrow=2)
    assert image.dtype == np.uint8 and np.array_equal(image, expected.permute(1, 2, 0).numpy())


def _stub_trainer(step: int, rank_zero: bool = True) -> SimpleNamespace:
    return SimpleNamespace(global_step=step, is_global_zero=rank_zero, loggers=[])


def test_steps_that_jump_past_a_multiple_still_get_a_grid(tiny_gan_cls, tmp_path) -> None:
    # Manual optimization with a D and a G step moves global_step by 2 per batch.
    model, callback = tiny_gan_cls(), SampleGrid(num_samples=2, every_n_steps=3)
    callback.dirpath = tmp_path
    callback.on_train_start(_stub_trainer(0), model)
    for step in (2, 4, 6, 8):
        callback.on_train_batch_end(_stub_trainer(step), model, None, None, 0)
    callback.on_train_end(_stub_trainer(8), model)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "step_000004.png",
        "step_000006.png",
        "step_000008.png",
    ]


def test_only_rank_zero_generates(tmp_path) -> None:
    model = MagicMock()
    callback = SampleGrid(every_n_steps=1)
    callback.dirpath = tmp_path
    callback.on_train_batch_end(_stub_trainer(1, rank_zero=False), model, None, None, 0)
    callback.on_train_end(_stub_trainer(1, rank_zero=False), model)
    model.generate.assert_not_called()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"num_samples": 0}, "num_samples"),
        ({"nrow": 0}, "nrow"),
        ({"every_n_steps": 0}, "every_n_steps"),
        ({"seed": -1}, "seed"),
        ({"dirname": ""}, "dirname"),
        ({"dirname": "/abs/samples"}, "dirname"),
    ],
)
def test_arguments_are_validated(kwargs: dict, name: str) -> None:
    with pytest.raises(ConfigurationError, match=f"SampleGrid.{name}"):
        SampleGrid(**kwargs)


def test_default_grid_is_square() -> None:
    assert SampleGrid(num_samples=64).nrow == 8
    assert SampleGrid(num_samples=10).nrow == 4
    assert SampleGrid(num_samples=10, nrow=5).nrow == 5
