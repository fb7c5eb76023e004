"""MNIST digits: train on some digits, evaluate one-shot on the others."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from lightning_siamese.data.datamodules.base import SiameseDataModule
from lightning_siamese.data.sources.collection import ImageCollection
from lightning_siamese.data.sources.mnist import load_mnist


class MNISTDataModule(SiameseDataModule):
    """MNIST digits (through torchvision's ``MNIST``) for the triplet write-up of the ekeany seed.

    Unlike the one-shot modules, the splits share the ten classes: ``val`` is a seeded
    ``val_size`` of the 60,000 training digits, ``train`` the rest, ``test`` the 10,000
    MNIST test digits. Validation episodes are 10-way (every digit) ``k_shot`` tasks.
    Digits are bright on black, as MNIST stores them.

    Args:
        root: torchvision's root (files in ``<root>/MNIST/raw/``).
        files: a folder holding the four official ``.gz`` files, linked into the root
            (e.g. ``../shared/data/mnist``); ``None`` uses what the root holds.
        download: fetch missing files (torchvision, checksums verified).
        val_size: training digits held out for validation.
        split_seed: the seed of that hold-out.
        **kwargs: the options of :class:`SiameseDataModule`.
    """

    image_size: int  # one side of the square images

    def __init__(
        self,
        root: str = "data/mnist",
        files: str | None = None,
        download: bool = False,
        val_size: int = 5000,
        split_seed: int = 0,
        image_size: int = 28,
        n_way: int = 10,
        **kwargs: Any,
    ) -> None:
        super().__init__(image_size=image_size, n_way=n_way, **kwargs)
        self.save_hyperparameters(ignore=["augment"])
        if val_size < 1:
            raise ValueError(f"val_size must be at least 1, got {val_size}")
        self.root, self.files, self.download = root, files, download
        self.val_size, self.split_seed = val_size, split_seed
        self.invert = False  # read_image and the baselines: MNIST digits are already bright on black
        self._num_train = 0

    def prepare_data(self) -> None:
        if self.download:  # fetch once, on one process
            load_mnist(self.root, self.files, download=True, image_size=self.image_size)

    def load_collection(self) -> ImageCollection:
        collection, self._num_train = load_mnist(self.root, self.files, self.download, self.image_size)
        if self.val_size >= self._num_train:
            raise ValueError(f"val_size={self.val_size} leaves no training digits out of {self._num_train}")
        return collection

    def select_split(self, name: str) -> ImageCollection:
        collection = self.collection
        keep = torch.zeros(len(collection), dtype=torch.bool)
        if name == "test":
            keep[self._num_train :] = True
        else:
            held_out = torch.from_numpy(
                np.random.default_rng(self.split_seed).permutation(self._num_train)[: self.val_size]
            )
            keep[held_out] = True
            if name == "train":
                keep[: self._num_train] = ~keep[: self._num_train]
        return collection.select_images(keep)
