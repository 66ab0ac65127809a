"""The training order: drawn from `(seed, epoch)`, sharded per rank, resumable mid-epoch.

No Lightning here (see `datamodules.common.ResumableLoader` for how a trainer drives it).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
from torch.utils.data import DistributedSampler


class ShuffleSampler(DistributedSampler):
    """Shuffled indices whose order depends only on `(seed, epoch)`, so a resumed run sees it again.

    The epoch is set before each pass (`set_epoch`: Lightning, `ResumableLoader`); used alone
    it advances once per pass. `resume_at(n)` makes the next pass start after the first `n`
    indices of this rank's order: the samples a resumed run has already trained on this epoch.
    Under DDP (`num_replicas` > 1) every rank draws the same order and takes every
    `num_replicas`-th index, the order padded by wrapping round so all ranks get as many (as
    `DistributedSampler` does). It is a `DistributedSampler`, so Lightning keeps it as it is.
    """

    def __init__(self, size: int, seed: int = 0, num_replicas: int = 1, rank: int = 0) -> None:
        super().__init__(range(size), num_replicas, rank, shuffle=True, seed=seed)
        self.start = 0

    def resume_at(self, samples: int) -> None:
        """Skip the first `samples` indices of the next pass (once)."""
        self.start = samples

    def __iter__(self) -> Iterator[int]:
        order = self._order(self._rng())
        self.epoch += 1  # alone, the next pass is the next epoch; `set_epoch` overrides it
        start, self.start = self.start, 0
        return itertools.islice(iter(order), start, None)

    def _rng(self) -> np.random.Generator:
        """This epoch's generator: the same for every rank and after a resume."""
        return np.random.default_rng((self.seed, self.epoch))

    def _order(self, rng: np.random.Generator) -> list[int]:
        """This rank's indices for one pass."""
        order = rng.permutation(len(self.dataset))
        padded = np.resize(order, self.total_size)  # repeats from the start, as DistributedSampler
        return padded[self.rank :: self.num_replicas].tolist()
