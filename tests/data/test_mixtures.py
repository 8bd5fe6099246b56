import math

import pytest
import torch

from gan_lightning.data import GANDataModule, GaussianMixtureDataModule
from gan_lightning.errors import ConfigurationError


def make(**kwargs) -> GaussianMixtureDataModule:
    dm = GaussianMixtureDataModule(**kwargs)
    dm.setup("fit")
    return dm


def test_ring_modes_lie_on_the_circle():
    dm = GaussianMixtureDataModule(kind="ring", radius=2.0)
    expected = torch.tensor(
        [[2 * math.cos(math.pi * k / 4), 2 * math.sin(math.pi * k / 4)] for k in range(8)]
    )
    assert dm.modes.dtype == torch.float32
    torch.testing.assert_close(dm.modes, expected, atol=1e-7, rtol=0)
    assert dm.mode_std == 0.01


def test_grid_modes_cover_the_5x5_lattice():
    dm = GaussianMixtureDataModule(kind="grid", radius=3.0)
    assert dm.modes.shape == (25, 2)
    assert sorted(map(tuple, dm.modes.tolist())) == [
        (float(a), float(b)) for a in range(-4, 5, 2) for b in range(-4, 5, 2)
    ]
    assert dm.mode_std == 0.05
    assert GaussianMixtureDataModule(kind="grid", std=0.2).mode_std == 0.2


@pytest.mark.parametrize(("kind", "std"), [("ring", None), ("grid", None), ("ring", 0.1)])
def test_points_follow_the_mixture(kind, std):
    dm = make(kind=kind, std=std, num_val=10)
    points, labels = dm.train_set.tensors
    modes = dm.modes
    assert points.shape == (100_000, 2) and points.dtype == torch.float32
    assert labels.dtype == torch.long

    # Each point sits around its own mode with the configured spread.
    offsets = points - modes[labels]
    assert offsets.mean(dim=0).abs().max() < 0.05 * dm.mode_std
    for spread in offsets.std(dim=0).tolist():
        assert spread == pytest.approx(dm.mode_std, rel=0.1)

    # Modes are equally likely.
    counts = torch.bincount(labels, minlength=len(modes)).float()
    assert len(counts) == len(modes)
    assert (counts / counts.mean() - 1).abs().max() < 0.1


def test_the_same_seed_gives_the_same_points_and_streams_are_independent():
    a = make(num_train=500, num_val=300, seed=3)
    b = make(num_train=500, num_val=300, seed=3)
    c = make(num_train=500, num_val=300, seed=4)
    d = make(num_train=500, num_val=50, seed=3)
    for x, y in zip(
        a.train_set.tensors + a.val_set.tensors,
        b.train_set.tensors + b.val_set.tensors,
        strict=True,
    ):
        assert torch.equal(x, y)
    assert not torch.equal(a.train_set.tensors[0], c.train_set.tensors[0])
    assert not torch.equal(a.train_set.tensors[0][:300], a.val_set.tensors[0])
    # The training set does not depend on the size of the validation set.
    assert torch.equal(a.train_set.tensors[0], d.train_set.tensors[0])
    assert len(a.val_set) == 300 and len(d.val_set) == 50


def test_loaders_yield_point_batches():
    dm = make(kind="grid", num_train=200, num_val=70, batch_size=32)
    assert isinstance(dm, GANDataModule) and dm.sample_shape == (2,)
    points, labels = next(iter(dm.train_dataloader()))
    assert points.shape == (32, 2) and points.dtype == torch.float32
    assert labels.shape == (32,) and labels.max() < 25
    assert len(dm.train_dataloader()) == 200 // 32
    assert [len(batch[0]) for batch in dm.val_dataloader()] == [32, 32, 6]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "star"}, "kind must be 'ring' or 'grid', got 'star'"),
        ({"num_train": 0}, "num_train must be at least 1, got 0"),
        ({"num_val": 0}, "num_val must be at least 1, got 0"),
        ({"std": 0.0}, "std must be positive, got 0.0"),
        ({"std": -1.0, "kind": "grid"}, r"got -1.0. Use null .*0.05 for the grid"),
        ({"radius": 0.0}, "radius must be positive, got 0.0"),
        ({"seed": -1}, "seed must be 0 or more, got -1"),
        ({"batch_size": 0}, "batch_size must be at least 1, got 0"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, message):
    with pytest.raises(ConfigurationError, match=message):
        GaussianMixtureDataModule(**kwargs)
