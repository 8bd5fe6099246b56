"""A training loader that can stop anywhere in an epoch and continue there after a resume.

Lightning saves the ``state_dict()`` of every training loader that has one in each
checkpoint and hands it back through ``load_state_dict`` before the resumed epoch starts
iterating. :class:`ResumableDataLoader` reports the shuffling seed, the epoch and how many
samples of that epoch training has consumed; :class:`ResumableSampler` reproduces the
epoch's order from ``seed + epoch`` and starts after the consumed samples, so a resumed run
sees exactly the batches the uninterrupted run would have seen next.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from torch.utils.data import DataLoader, Dataset, DistributedSampler


class ResumableSampler(DistributedSampler):
    """Shuffled indices, ordered by ``seed + epoch``, that can start part-way through an epoch.

    A ``DistributedSampler`` (so Lightning keeps it under DDP instead of wrapping it): each of
    ``num_replicas`` processes gets its own share of every epoch's permutation, padded to equal
    shares exactly as ``DistributedSampler`` does. ``position`` counts the indices of this
    process's share that training has consumed; iteration starts there.

    Once iteration has started (or a state was loaded), the loader counts epochs itself: it
    moves to the next epoch when the current one is exhausted, and :meth:`set_epoch` no
    longer has an effect. Lightning's own epoch counter can then disagree with the data (it
    runs one extra batch after resuming from a checkpoint written at the end of a training
    epoch), and the data order must not follow it.

    Args:
        dataset: The training set (map-style, with ``len``).
        seed: Seed of the permutations (>= 0); epoch ``e`` uses ``seed + e``.
        num_replicas: Processes sharing the data (the world size).
        rank: This process's index among them.
    """

    def __init__(self, dataset: Dataset, seed: int, num_replicas: int = 1, rank: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.position = 0
        self.started = False

    def set_epoch(self, epoch: int) -> None:
        """Choose the first epoch of a new loader; ignored once iteration has started."""
        if not self.started:
            super().set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        # The permutation is drawn now, from seed + epoch only; the consumed prefix is skipped.
        self.started = True
        return itertools.islice(super().__iter__(), self.position, None)


class ResumableDataLoader(DataLoader):
    """A ``DataLoader`` over a :class:`ResumableSampler` whose position survives checkpoints.

    It counts the batches it hands out (in the main process, so worker prefetching does not
    count) and advances the sampler's ``position`` by each batch; an iteration that starts
    with the epoch exhausted moves on to the next epoch (Lightning stops iterating when it
    has the epoch's ``len`` batches, so the exhaustion is seen at the next iteration).
    Lightning's fit loop calls :meth:`state_dict` when it saves a checkpoint and
    :meth:`load_state_dict` before it iterates again after a resume. Takes every
    ``DataLoader`` argument; ``sampler`` must be a :class:`ResumableSampler` for the position
    to be kept (with any other sampler, for example the one ``overfit_batches`` installs, it
    is a plain ``DataLoader``).
    """

    def __iter__(self) -> Iterator[Any]:
        sampler = self.sampler
        if not isinstance(sampler, ResumableSampler):
            yield from super().__iter__()
            return

        if self._remaining_batches(sampler) == 0:
            sampler.epoch += 1
            sampler.position = 0
        for batch in super().__iter__():
            sampler.position = min(sampler.position + self.batch_size, len(sampler))
            yield batch

    def state_dict(self) -> dict[str, Any]:
        """Where training stands in the data: the seed, the epoch and the samples consumed."""
        sampler = self.sampler
        if not isinstance(sampler, ResumableSampler):
            return {}
        return {
            "seed": sampler.seed,
            "epoch": sampler.epoch,
            "position": sampler.position,
            "dataset_size": len(self.dataset),
            "num_replicas": sampler.num_replicas,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict`: the next batch is the first one not consumed."""
        sampler = self.sampler
        if not isinstance(sampler, ResumableSampler) or not state_dict:
            return
        saved = (state_dict["dataset_size"], state_dict["num_replicas"])
        if saved != (len(self.dataset), sampler.num_replicas):
            rank_zero_warn(
                f"The checkpoint's data position refers to {saved[0]} training samples on "
                f"{saved[1]} processes, but this run has {len(self.dataset)} on "
                f"{sampler.num_replicas}; the resumed epoch starts from its beginning, so the "
                "resume is not exact. Resume with the same data and number of processes."
            )
            return
        sampler.seed = state_dict["seed"]
        sampler.epoch = state_dict["epoch"]
        sampler.position = state_dict["position"]
        sampler.started = True

    def _remaining_batches(self, sampler: ResumableSampler) -> int:
        """Batches left in the sampler's epoch after its position."""
        left = len(sampler) - sampler.position
        assert self.batch_size is not None, "a ResumableDataLoader batches its samples itself"
        return left // self.batch_size if self.drop_last else -(-left // self.batch_size)
