"""LFW face verification: View 1 and View 2 pair lists."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lightning_siamese.data.datamodules.base import EvaluationSet, SiameseDataModule
from lightning_siamese.data.datamodules.batches import BatchSampler, KochPairBatches, TrainingBatches
from lightning_siamese.data.sources.collection import ImageCollection
from lightning_siamese.data.sources.lfw import (
    LFW_URL,
    LFWFiles,
    PairList,
    download_lfw_images,
    download_lfw_list,
    find_lfw_images,
    load_lfw,
    read_pairs,
    read_people,
)
from lightning_siamese.data.transforms.augment import KochAffine

log = logging.getLogger(__name__)


class LFWDataModule(SiameseDataModule):
    """Labeled Faces in the Wild for face verification: validated and tested on pair lists.

    The validation pairs are a seeded ``val_fraction`` of the training pair list, stratified
    by label; the test stage scores the official test list (``pairsDevTest.txt``), or with
    ``view2_fold`` one fold of View 2. Training either fits the remaining training pairs as
    they are, shuffled each epoch (``train_on: pairs``, the LFW seed's protocol), or draws
    fresh pairs, triplets or P x K batches (``batch_kind``) from every image of the training
    people (``train_on: people``). Then the people of the validation pairs are left out of
    training, so no validation face is trained on; with the pair protocol they overlap, as
    in the seed, and the data summary counts them.

    Images are centre-cropped to ``crop`` pixels (LFW's faces sit in the middle of 250x250
    images), resized to ``image_size`` whatever their size, and converted to ``channels``
    whatever their mode.

    Args:
        root: folder with the images (any LFW layout, or a zip in it such as LFW-a's
            ``lfw-a.zip``) and the pair and people lists.
        images: the image folder or zip, when it is not ``root``.
        train_pairs, test_pairs: pair lists, relative to ``root`` unless absolute.
        train_people: people list for ``train_on: people`` (``peopleDevTrain.txt``:
            4,038 people); ``None`` takes the people of the training pairs.
        train_on: ``"pairs"`` or ``"people"``.
        val_fraction, split_seed: share of the training pairs held out for validation, and
            the seed of that choice.
        view2_fold: fold k (1-10) of View 2's ``view2_pairs``: train on the other folds' pairs
            (less the validation share), test on fold k. The official protocol repeats this for
            every k and reports the mean accuracy and its standard error.
        channels: 1 (grayscale) or 3 (RGB).
        crop: centre crop in pixels before resizing; ``None`` keeps the whole image.
        download: fetch missing images (``image_set``) and official lists from ``download_url``.
        koch_distortions: with ``train_on: pairs``, distorted copies of each pair (needs
            ``augment: KochAffine``); 0 trains on the pairs as they are.
        **kwargs: the options of :class:`SiameseDataModule` (batches, loaders, image size).
    """

    image_size: int  # one side of the square images

    task = "verification"

    def __init__(
        self,
        root: str = "data/lfw",
        images: str | None = None,
        train_pairs: str = "pairsDevTrain.txt",
        test_pairs: str | None = "pairsDevTest.txt",
        train_people: str | None = None,
        train_on: str = "pairs",
        val_fraction: float = 0.2,
        split_seed: int = 0,
        view2_fold: int | None = None,
        view2_pairs: str = "pairs.txt",
        channels: int = 1,
        crop: int | None = None,
        download: bool = False,
        image_set: str = "original",
        download_url: str = LFW_URL,
        batch_size: int = 32,
        koch_distortions: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            batch_size=batch_size, koch_distortions=koch_distortions, same_group_prob=0.0, within_group=False, **kwargs
        )
        self.save_hyperparameters(ignore=["augment"])
        if train_on not in ("pairs", "people"):
            raise ValueError(f"train_on must be 'pairs' or 'people', got {train_on!r}")
        if train_on == "pairs" and self.batch_kind != "pairs":
            raise ValueError(
                f"train_on 'pairs' trains on the pair list: set batch_kind 'pairs', not {self.batch_kind!r}"
            )
        if train_on == "pairs" and koch_distortions and not isinstance(self.augment, KochAffine):
            raise ValueError(
                f"koch_distortions={koch_distortions} distorts pairs with augment: KochAffine, got {self.augment!r}"
            )
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels}")
        if view2_fold is not None and view2_fold < 1:
            raise ValueError(f"view2_fold counts from 1, got {view2_fold}")
        self.root = Path(root)
        self.images = images
        self.train_pairs, self.test_pairs, self.train_people = train_pairs, test_pairs, train_people
        self.train_on = train_on
        self.val_fraction, self.split_seed = val_fraction, split_seed
        self.view2_fold, self.view2_pairs = view2_fold, view2_pairs
        self.channels, self.crop = channels, crop
        self.download, self.image_set, self.download_url = download, image_set, download_url
        self._files: LFWFiles | None = None
        self._lists: dict[str, PairList] = {}
        self._index: dict[str, dict[tuple[str, int], int]] = {}
        self.summary = ""

    # --- files ----------------------------------------------------------------------

    def _path(self, name: str) -> Path:
        path = Path(name)
        return path if path.is_absolute() else self.root / path

    def _list_names(self) -> list[str]:
        names = [self.view2_pairs] if self.view2_fold is not None else [self.train_pairs, self.test_pairs]
        return [n for n in [*names, self.train_people if self.train_on == "people" else None] if n is not None]

    def prepare_data(self) -> None:
        if not self.download:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            _ = self.files  # opens the images if they are there
        except FileNotFoundError:
            download_lfw_images(self._image_root, self.image_set, self.download_url)
        for name in self._list_names():
            if not self._path(name).is_file():
                download_lfw_list(self._path(name), self.download_url)

    @property
    def _image_root(self) -> Path:
        return Path(self.images) if self.images else self.root

    @property
    def files(self) -> LFWFiles:
        if self._files is None:
            self._files = find_lfw_images(self._image_root)
        return self._files

    def pair_list(self, name: str) -> PairList:
        """The ``train`` (less validation), ``val`` or ``test`` pairs, checked against the images."""
        if name not in self._lists:
            if name == "test":
                self._lists["test"] = self._read_test_list()
            else:
                self._lists["train"], self._lists["val"] = self._carve_validation(self._read_training_list())
            self.files.check_pairs(self._lists[name])
        return self._lists[name]

    def _read_view2(self, fold: int) -> PairList:
        pairs = read_pairs(self._path(self.view2_pairs))
        folds = int(pairs.folds.max()) + 1
        if fold > folds:
            raise ValueError(f"view2_fold={fold}, but {pairs.source} has {folds} folds")
        return pairs

    def _read_training_list(self) -> PairList:
        if self.view2_fold is None:
            return read_pairs(self._path(self.train_pairs))
        pairs = self._read_view2(self.view2_fold)
        return pairs.select(pairs.folds != self.view2_fold - 1)

    def _read_test_list(self) -> PairList:
        if self.view2_fold is not None:
            pairs = self._read_view2(self.view2_fold)
            return pairs.select(pairs.folds == self.view2_fold - 1)
        if self.test_pairs is None:
            raise ValueError("the test stage needs test_pairs (e.g. pairsDevTest.txt) or view2_fold")
        return read_pairs(self._path(self.test_pairs))

    def _carve_validation(self, pairs: PairList) -> tuple[PairList, PairList]:
        """A seeded ``val_fraction`` of the matched and of the mismatched pairs for validation."""
        rng = np.random.default_rng(self.split_seed)
        val = torch.zeros(len(pairs), dtype=torch.bool)
        for label in (1, 0):
            members = torch.nonzero(pairs.same == label).flatten().numpy()
            chosen = rng.choice(members, size=round(self.val_fraction * len(members)), replace=False)
            val[torch.from_numpy(chosen)] = True
        if not val.any() or val.all():
            raise ValueError(
                f"val_fraction={self.val_fraction} of {len(pairs)} pairs leaves no validation or no training pairs"
            )
        return pairs.select(~val), pairs.select(val)

    def training_images(self) -> list[tuple[str, int]]:
        """The training images: those of the training pairs, or every image of the training people.

        Either way, no person of the training list (nor of the people list) may be in the test
        pairs (:meth:`_check_no_test_people`).
        """
        train = self.pair_list("train")
        if self.train_on == "pairs":
            self._check_no_test_people(train.people() | self.pair_list("val").people())
            return train.images()
        counts = dict(self.files.people())
        if self.train_people is not None:
            listed = read_people(self._path(self.train_people))
        else:
            listed = [(p, counts.get(p, 0)) for p in sorted(train.people())]
        self._check_no_test_people({p for p, _ in listed} | train.people() | self.pair_list("val").people())
        held_out = self.pair_list("val").people()
        images = [(p, n) for p, count in listed if p not in held_out for n in range(1, count + 1)]
        for person, number in images:
            if not self.files.exists(person, number):
                raise FileNotFoundError(
                    f"{self.train_people or 'the training pairs'} lists {person} with at least {number} images, "
                    f"but {self.files.where(person, number)} does not exist"
                )
        return images

    def _check_no_test_people(self, trained: set[str]) -> None:
        """Refuse training (or validation) people who are in the test pairs: test faces must never be trained on."""
        overlap = sorted(trained & self._test_people())
        if overlap:
            raise ValueError(
                f"{len(overlap)} training people are in the test pairs ({', '.join(overlap[:5])}"
                f"{' ...' if len(overlap) > 5 else ''}): test faces must never be trained on"
            )

    def _test_people(self) -> set[str]:
        """People of the test pairs; none when no test list is set or its file is not here (it may be
        held back while training). A test list that is here but malformed is an error naming its file
        and line (:func:`read_pairs`), not a reason to skip the check."""
        if self.view2_fold is None and self.test_pairs is None:
            return set()
        try:
            return self._read_test_list().people()
        except FileNotFoundError:
            return set()

    # --- splits and evaluation -----------------------------------------------------------

    def select_split(self, name: str) -> ImageCollection:
        names = self.training_images() if name == "train" else self.pair_list(name).images()
        collection, self._index[name] = load_lfw(self.files, names, self.image_size, self.channels, self.crop)
        return collection

    def pair_indices(self, split: str) -> dict[str, torch.Tensor]:
        """The split's pairs as indices into its collection: ``first``, ``second``, ``same``, ``folds``."""
        self.split(split)  # loads the split's images and fills _index[split]
        pairs, index = self.pair_list(split), self._index[split]
        return {
            "first": torch.tensor([index[p] for p in pairs.first]),
            "second": torch.tensor([index[p] for p in pairs.second]),
            "same": pairs.same.clone(),
            "folds": pairs.folds.clone(),
        }

    def evaluation_set(self, split: str, *_: Any, **__: Any) -> EvaluationSet:
        """The split's pairs, scored as a verification benchmark (no episodes)."""
        pairs = self.pair_list(split)
        return EvaluationSet(
            self.split(split), pairs=self.pair_indices(split), name="verification", source=pairs.source
        )

    def _batch_sampler(self, train: ImageCollection) -> BatchSampler | None:
        return None if self.train_on == "pairs" else super()._batch_sampler(train)

    def train_batches(self, seed: int) -> TrainingBatches:
        if self.train_on == "people":
            return super().train_batches(seed)
        pairs = {k: v.numpy() for k, v in self.pair_indices("train").items() if k != "folds"}
        return KochPairBatches(
            self.split("train").images, pairs, self.batch_size, seed, self.koch_distortions, self.augment
        )

    def describe(self) -> str:
        """People, images and pairs of each split, for the log and TensorBoard."""
        train, val = self.pair_list("train"), self.pair_list("val")
        lines = [
            (
                f"LFW images at {self.files.root} ({self.files.prefix or 'top level'}), resized to "
                f"{self.image_size}x{self.image_size}, {self.channels} channel(s), crop {self.crop}."
            )
        ]
        for name, pairs in (("training", train), ("validation", val)):
            lines.append(
                f"  {name} pairs: {len(pairs)} ({int(pairs.same.sum())} matched) from {pairs.source}, "
                f"{len(pairs.people())} people, {len(pairs.images())} images"
            )
        shared = train.people() & val.people()
        if self.train_on == "pairs":
            lines.append(f"  training on the pair list; {len(shared)} validation people also appear in training pairs")
        else:
            train_split = self.split("train")
            counts = torch.bincount(train_split.labels)
            lines.append(
                f"  training on {len(train_split)} images of {train_split.num_classes} people "
                f"({self.train_people or 'the training pairs people'}, less the {len(val.people())} validation people): "
                f"median {int(counts.median())} images per person, {int((counts >= 2).sum())} people with 2 or more"
            )
        return "\n".join(lines)

    def setup(self, stage: str) -> None:
        if stage == "fit":
            self.summary = self.describe()
            self._publish_summary(self.summary, to_tensorboard=True)
        super().setup(stage)
