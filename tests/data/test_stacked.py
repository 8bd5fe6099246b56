"""Stacked digits: channels are split digits, labels are their modes, stacks follow the seed."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from gan_lightning.data import DigitsDataModule, StackedDigitsDataModule
from gan_lightning.data.stacked import stack_labels
from gan_lightning.errors import ConfigurationError


def _stacks(data: StackedDigitsDataModule, split: str) -> tuple[Tensor, Tensor]:
    dataset = getattr(data, split)
    images, labels = zip(*(dataset[i] for i in range(len(dataset))), strict=True)
    return torch.stack(images), torch.stack(labels)


def _match(channels: Tensor, digits: Tensor) -> Tensor:
    """Index of the digit image equal to each channel image ``(M, S, S)``, -1 if none is."""
    distances = torch.cdist(channels.flatten(1), digits.flatten(1))
    nearest = distances.min(dim=1)
    return torch.where(nearest.values == 0, nearest.indices, -1)


def test_channels_are_digits_of_the_right_split_and_labels_are_their_modes() -> None:
    data = StackedDigitsDataModule(image_size=16, num_train=300, num_val=200, seed=3)
    data.setup()
    digits = DigitsDataModule(image_size=16)
    digits.setup()
    train_digits, train_labels = digits.train_set.tensors
    val_digits, val_labels = digits.val_set.tensors

    for split, own, own_labels, other in (
        ("train_set", train_digits, train_labels, val_digits),
        ("val_set", val_digits, val_labels, train_digits),
    ):
        images, labels = _stacks(data, split)
        assert images.shape == (len(labels), 3, 16, 16) and images.dtype == torch.float32
        assert images.min() == -1 and images.max() == 1
        channels = images.reshape(-1, 16, 16)
        index = _match(channels, own.squeeze(1))
        # Every channel is one digit of its own split and none of the other split.
        assert (index >= 0).all()
        assert (_match(channels, other.squeeze(1)) == -1).all()
        expected = stack_labels(own_labels[index].view(-1, 3))
        assert torch.equal(labels, expected)
        assert labels.min() >= 0 and labels.max() <= 999


def test_stack_labels_are_base_ten_numbers() -> None:
    digits = torch.tensor([[0, 0, 0], [9, 9, 9], [4, 0, 7], [0, 3, 1]])
    assert stack_labels(digits).tolist() == [0, 999, 407, 31]


def test_stacks_depend_on_the_seed_only() -> None:
    def val_and_train(seed: int, num_train: int) -> tuple[Tensor, Tensor]:
        data = StackedDigitsDataModule(image_size=8, num_train=num_train, num_val=50, seed=seed)
        data.setup()
        return data.val_set.triples, data.train_set.triples

    val, train = val_and_train(seed=0, num_train=100)
    torch.manual_seed(123)  # The global seed must not matter.
    val_again, train_again = val_and_train(seed=0, num_train=100)
    assert torch.equal(val, val_again) and torch.equal(train, train_again)
    # The validation stacks do not depend on how many training stacks there are.
    assert torch.equal(val_and_train(seed=0, num_train=400)[0], val)
    other_val, other_train = val_and_train(seed=1, num_train=100)
    assert not torch.equal(other_val, val) and not torch.equal(other_train, train)


def test_default_training_set_covers_all_modes_about_evenly() -> None:
    data = StackedDigitsDataModule(image_size=8)
    data.setup()
    labels = data.train_set.labels
    assert len(labels) == 25_600 and data.num_modes == 1000
    counts = torch.bincount(labels, minlength=1000)
    # 25.6 expected per mode: a Poisson count of 0 has probability exp(-25.6) ~ 8e-12.
    assert (counts > 0).all()
    assert 5 <= int(counts.min()) and int(counts.max()) <= 50


def test_loader_batches_and_sample_shape() -> None:
    data = StackedDigitsDataModule(image_size=32, num_train=256, num_val=40, batch_size=32)
    data.setup()
    assert data.sample_shape == (3, 32, 32)
    images, labels = next(iter(data.train_dataloader()))
    assert images.shape == (32, 3, 32, 32) and labels.shape == (32,) and labels.dtype == torch.long
    val_images, _ = next(iter(data.val_dataloader()))
    assert val_images.shape == (32, 3, 32, 32)


@pytest.mark.parametrize(
    ("options", "argument"),
    [
        ({"num_train": 0}, "num_train"),
        ({"num_val": 0}, "num_val"),
        ({"seed": -1}, "seed"),
        ({"image_size": 4}, "image_size"),
        ({"val_fraction": 1.0}, "val_fraction"),
    ],
)
def test_bad_options_are_refused(options: dict, argument: str) -> None:
    with pytest.raises(ConfigurationError, match=argument):
        StackedDigitsDataModule(**options)


def test_cache_key_names_everything_the_validation_stacks_depend_on() -> None:
    base = {"image_size": 32, "num_val": 1000, "seed": 0, "val_fraction": 0.1, "split_seed": 0}
    key = StackedDigitsDataModule(**base).cache_key
    assert StackedDigitsDataModule(**base).cache_key == key
    # Options the validation stacks do not depend on leave the key alone.
    assert StackedDigitsDataModule(**base, num_train=100, batch_size=8).cache_key == key
    changed = {"image_size": 16, "num_val": 999, "seed": 1, "val_fraction": 0.2, "split_seed": 1}
    keys = {
        StackedDigitsDataModule(**{**base, name: value}).cache_key
        for name, value in changed.items()
    }
    assert len(keys) == len(changed) and key not in keys
    assert key != DigitsDataModule(image_size=32).cache_key
