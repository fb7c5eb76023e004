"""The training sets of whole batches: item ``(epoch, b)`` is a pure function of ``(seed, epoch, b)``.

:class:`SampledBatches` draws each batch from a sampler (pairs, triplets, P x K classes),
:class:`KochPairBatches` visits Koch et al.'s fixed pair set and its distorted copies, and
:class:`EpochKeySampler` hands each rank its share of the ``(epoch, b)`` keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, cast

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

from lightning_siamese.data.transforms.augment import DarkShotAugment, KochAffine
from lightning_siamese.data.transforms.views import to_float

# Keys of a sampled batch that hold image indices; the others (labels) pass through.
IMAGE_KEYS = ("first", "second", "anchor", "positive", "negative", "images")


class BatchSampler(Protocol):
    def sample(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]: ...


def _batch_key(key: tuple[int, int] | int) -> tuple[int, int]:
    """``(epoch, b)``; a plain ``b`` (Lightning's ``overfit_batches`` samples sequentially) is
    batch b of epoch 0, so an overfitting run sees the same batches every epoch."""
    return key if isinstance(key, tuple) else (0, int(key))


class TrainingBatches(Dataset):
    """A training set of whole batches, item ``(epoch, b)``: its length is the number of batches in an epoch."""

    def __len__(self) -> int:
        raise NotImplementedError


class SampledBatches(TrainingBatches):
    """Item ``(epoch, b)`` is the b-th training batch of that epoch, as a dict of tensors.

    The sampler draws the batch's image indices (pairs, triplets or P x K classes); this
    dataset turns them into float images, distorted by ``augment``. The batch is a pure
    function of ``(seed, epoch, b)``: repeatable, different every epoch, and independent of
    the worker or rank that builds it.
    """

    def __init__(
        self,
        images: torch.Tensor,
        sampler: BatchSampler,
        batch_size: int,
        num_batches: int,
        seed: int,
        augment: KochAffine | DarkShotAugment | None = None,
    ) -> None:
        if batch_size < 2:
            raise ValueError(f"batch_size must be at least 2, got {batch_size}")
        if num_batches < 1:
            raise ValueError(f"an epoch needs at least one batch, got num_batches={num_batches}")
        self.images = images
        self.sampler = sampler
        self.batch_size = batch_size
        self.num_batches = num_batches
        self.seed = seed
        self.augment = augment

    def __len__(self) -> int:
        return self.num_batches

    def __getitem__(self, key: tuple[int, int] | int) -> dict[str, torch.Tensor]:
        epoch, index = _batch_key(key)
        rng = np.random.default_rng([self.seed, epoch, index])
        drawn = self.sampler.sample(self.batch_size, rng)
        generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        batch = {}
        for name, values in drawn.items():
            if name in IMAGE_KEYS:
                images = to_float(self.images[values])
                batch[name] = images if self.augment is None else self.augment(images, generator)
            else:
                batch[name] = torch.from_numpy(values)
        return batch


class KochPairBatches(TrainingBatches):
    """Koch et al.'s training set: a fixed set of pairs plus ``distortions`` distorted copies of each.

    Example ``e`` is copy ``e // pairs`` of pair ``e % pairs``. Copy 0 is the pair as it is;
    copy ``k > 0`` has both images distorted by ``augment`` with transforms fixed by
    ``(seed, pair, k)``, so, as in the paper, the data set is the same ``(1 + distortions)
    x pairs`` examples every epoch. An epoch visits them in an order shuffled by ``(seed,
    epoch)``, in whole batches (a last partial batch is dropped), so item ``(epoch, b)`` is
    a pure function of ``(seed, epoch, b)``, like :class:`SampledBatches`.
    """

    def __init__(
        self,
        images: torch.Tensor,
        pairs: dict[str, np.ndarray],
        batch_size: int,
        seed: int,
        distortions: int = 8,
        augment: KochAffine | DarkShotAugment | None = None,  # distortions need a KochAffine; without them, unused
    ) -> None:
        if distortions < 0:
            raise ValueError(f"distortions must be >= 0, got {distortions}")
        if distortions and not isinstance(augment, KochAffine):
            raise ValueError(f"{distortions} distorted copies per pair need augment: KochAffine, got {augment!r}")
        self.images = images
        self.pairs = pairs
        self.num_pairs = len(pairs["same"])
        self.num_examples = self.num_pairs * (1 + distortions)
        self.batch_size = batch_size
        self.num_batches = self.num_examples // batch_size
        if batch_size < 2 or self.num_batches < 1:
            raise ValueError(
                f"{self.num_pairs} pairs x {1 + distortions} copies = {self.num_examples} examples "
                f"give no whole batch of {batch_size}"
            )
        self.seed = seed
        self.augment = augment
        self._order: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.num_batches

    def examples(self, epoch: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The pair and copy of each example of batch ``index`` of ``epoch``."""
        if self._order is None or self._order[0] != epoch:  # one permutation per epoch, not per batch
            self._order = (epoch, np.random.default_rng([self.seed, epoch]).permutation(self.num_examples))
        chosen = self._order[1][index * self.batch_size : (index + 1) * self.batch_size]
        return chosen % self.num_pairs, chosen // self.num_pairs

    def transforms(self, pair: int, copy: int, size: int) -> torch.Tensor:
        """The fixed forward transforms ``[2, 2, 3]`` of both images of one distorted copy."""
        seed = int(np.random.default_rng([self.seed, pair, copy]).integers(2**62))
        augment = cast(KochAffine, self.augment)  # distorted copies exist only with a KochAffine (checked in __init__)
        return augment.matrices(2, size, torch.Generator().manual_seed(seed))

    def __getitem__(self, key: tuple[int, int] | int) -> dict[str, torch.Tensor]:
        pair, copy = self.examples(*_batch_key(key))
        first = to_float(self.images[self.pairs["first"][pair]])
        second = to_float(self.images[self.pairs["second"][pair]])
        distorted = np.flatnonzero(copy)
        if len(distorted):  # one warp for the whole batch: all first images, then all second ones
            size = first.shape[-1]
            forward = torch.stack([self.transforms(pair[k], copy[k], size) for k in distorted], dim=1)
            both = torch.cat([first[distorted], second[distorted]])
            first[distorted], second[distorted] = KochAffine.warp(both, forward.flatten(0, 1)).chunk(2)
        return {"first": first, "second": second, "same": torch.from_numpy(self.pairs["same"][pair])}


class EpochKeySampler(DistributedSampler):
    """Yields ``(epoch, index)`` keys, this rank's share of the indices.

    Lightning calls ``set_epoch`` before every epoch, and leaves a
    ``DistributedSampler`` in place under DDP, so each rank gets its own whole batches.
    """

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((self.epoch, int(i)) for i in super().__iter__())
