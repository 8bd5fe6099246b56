"""The resumable training loader: seeded epochs, and a saved position that continues exactly."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from gan_lightning.data.resumable import ResumableDataLoader, ResumableSampler

N, BATCH = 20, 4  # 5 batches per epoch


def loader(seed: int = 7, num_replicas: int = 1, rank: int = 0, n: int = N):
    dataset = TensorDataset(torch.arange(n))
    sampler = ResumableSampler(dataset, seed, num_replicas, rank)
    return ResumableDataLoader(dataset, batch_size=BATCH, sampler=sampler, drop_last=True)


def indices(batches) -> list[list[int]]:
    return [batch[0].tolist() for batch in batches]


def epochs(data, count: int) -> list[list[list[int]]]:
    return [indices(data) for _ in range(count)]


def test_each_epoch_is_a_new_permutation_fixed_by_the_seed():
    three = epochs(loader(), 3)
    for epoch in three:
        assert sorted(i for batch in epoch for i in batch) == list(range(N))
    assert three[0] != three[1] != three[2]
    assert epochs(loader(), 3) == three
    assert epochs(loader(seed=8), 1)[0] != three[0]


@pytest.mark.parametrize("stop_after", [0, 2, 5, 7])
def test_a_saved_position_continues_with_exactly_the_next_batch(stop_after):
    expected = [b for epoch in epochs(loader(), 3) for b in epoch]

    # Stop after `stop_after` batches (5 is the end of epoch 0), as a killed run does.
    first = loader()
    seen, iterator = [], iter(first)
    while len(seen) < stop_after:
        try:
            seen.append(next(iterator)[0].tolist())
        except StopIteration:
            iterator = iter(first)
    state = first.state_dict()

    resumed = loader(seed=123)  # the seed comes from the state
    resumed.load_state_dict(state)
    while len(seen) < len(expected):
        seen += indices(resumed)
    assert seen == expected


def test_lightning_epoch_numbers_do_not_move_a_started_loader():
    data = loader()
    reference = epochs(loader(), 2)
    data.sampler.set_epoch(0)
    first = indices(data)
    data.sampler.set_epoch(5)  # ignored: the loader counts its own epochs once started
    assert [first, indices(data)] == reference

    fresh = loader()
    fresh.sampler.set_epoch(1)  # a new loader (reload_dataloaders_every_n_epochs) starts there
    assert indices(fresh) == reference[1]


def test_processes_read_disjoint_shares_and_resume_their_own():
    ranks = [loader(num_replicas=2, rank=r) for r in (0, 1)]
    shares = [indices(r) for r in ranks]
    assert len(shares[0]) == len(shares[1]) == 2  # 10 samples each, 4 per batch
    flat = [i for share in shares for batch in share for i in batch]
    assert len(set(flat)) == len(flat)

    one = loader(num_replicas=2, rank=1)
    iterator = iter(one)
    next(iterator)
    resumed = loader(num_replicas=2, rank=1)
    resumed.load_state_dict(one.state_dict())
    assert indices(resumed) == shares[1][1:]


def test_a_different_training_set_starts_the_epoch_over_with_a_warning():
    data = loader()
    next(iter(data))
    other = loader(n=24)
    with pytest.warns(UserWarning, match="refers to 20 training samples"):
        other.load_state_dict(data.state_dict())
    assert len(indices(other)) == 24 // BATCH
