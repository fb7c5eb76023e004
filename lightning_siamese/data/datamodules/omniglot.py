"""Omniglot: train on background alphabets, evaluate on unseen alphabets or Lake's 20 runs."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, cast

import torch

from lightning_siamese.data.datamodules.base import (
    EvaluationSet,
    SiameseDataModule,
    lake_runs_set,
)
from lightning_siamese.data.sources.collection import ImageCollection
from lightning_siamese.data.sources.omniglot import (
    OMNIGLOT_TEST_ALPHABETS,
    OMNIGLOT_VAL_ALPHABETS,
    load_lake_runs,
    load_omniglot,
    locate_lake_runs,
    locate_omniglot_set,
)

log = logging.getLogger(__name__)


class OmniglotDataModule(SiameseDataModule):
    """Omniglot split by alphabet: class = character, group = alphabet, instance = drawer.

    The defaults follow Koch et al.: train on the background alphabets, validate on 20-way
    1-shot within-alphabet tasks over 10 evaluation alphabets, test on the other 10.

    Args:
        root: folder with the Omniglot sets (official zips or extracted folders).
        sets: which sets to load (``images_background``, ``images_evaluation``, the
            small sets ``images_background_small1``/``2``).
        val_alphabets: alphabets held out for validation (Koch: 10 evaluation alphabets).
        test_alphabets: alphabets held out for testing (the other 10).
        train_alphabets: alphabets to train on; ``None`` takes every other loaded one.
        train_drawers: train only on the images of drawers 1..``train_drawers`` (each
            character's ``<id>_<drawer>.png`` number); Koch et al. used 12 of the 20.
            ``None`` uses every drawer. Validation and test keep all drawers.
        download: fetch missing sets from the official repository (checksums verified).
        invert: strokes bright on black (default) rather than Omniglot's black on white.
        skip_bad_images: warn about and skip undecodable files instead of failing.
        same_alphabet_prob: probability that a different-character pair stays within one
            alphabet (the harder negatives the within-alphabet test asks about).
        within_alphabet: draw each task's characters from one alphabet (Koch's task).
        ink_fill: centre every image (training, validation, test, Lake's runs) on its
            strokes' bounding box and scale it so that their longer side spans this fraction
            of the image, before resizing to ``image_size``; None keeps the drawing box.
        runs_dir: Lake et al.'s 20 one-shot runs (a folder holding ``run01/`` ..., a folder
            with ``all_runs/`` or ``all_runs.zip``, or the zip); when set, the test stage
            scores them (``test/lake_runs_acc``, ``lake_runs.json``) instead of episodes over
            the test alphabets. With ``download``, a missing ``all_runs.zip`` is fetched.
        **kwargs: the options of :class:`SiameseDataModule` (batches, evaluation, loaders).
    """

    image_size: int  # one side of the square images

    def __init__(
        self,
        root: str = "data/omniglot",
        sets: Sequence[str] = ("images_background", "images_evaluation"),
        val_alphabets: Sequence[str] = tuple(OMNIGLOT_VAL_ALPHABETS),
        test_alphabets: Sequence[str] = tuple(OMNIGLOT_TEST_ALPHABETS),
        train_alphabets: Sequence[str] | None = None,
        train_drawers: int | None = None,
        download: bool = False,
        invert: bool = True,
        skip_bad_images: bool = False,
        same_alphabet_prob: float = 0.5,
        within_alphabet: bool = True,
        ink_fill: float | None = None,
        runs_dir: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(same_group_prob=same_alphabet_prob, within_group=within_alphabet, **kwargs)
        self.save_hyperparameters(ignore=["augment"])
        overlap = set(val_alphabets) & set(test_alphabets)
        if overlap:
            raise ValueError(f"val_alphabets and test_alphabets must be disjoint; both name {sorted(overlap)}")
        if train_alphabets is not None:
            overlap = set(train_alphabets) & (set(val_alphabets) | set(test_alphabets))
            if overlap:
                raise ValueError(f"train_alphabets must not name held-out alphabets: {sorted(overlap)}")
        self.root = root
        self.sets = list(sets)
        self.val_alphabets = list(val_alphabets)
        self.test_alphabets = list(test_alphabets)
        self.train_alphabets = None if train_alphabets is None else list(train_alphabets)
        if train_drawers is not None and train_drawers < 2:
            raise ValueError(
                f"train_drawers must be >= 2 (a same-character pair needs two drawers), got {train_drawers}"
            )
        self.train_drawers = train_drawers
        self.download = download
        self.invert = invert
        self.skip_bad_images = skip_bad_images
        if ink_fill is not None and not 0.0 < ink_fill <= 1.0:
            raise ValueError(f"ink_fill must be in (0, 1] (the strokes' share of the image side), got {ink_fill}")
        self.ink_fill = ink_fill
        self.runs_dir = runs_dir

    def prepare_data(self) -> None:
        if self.download:  # fetch once, on one process; setup() then only reads
            for name in self.sets:
                locate_omniglot_set(self.root, name, download=True)
            if self.runs_dir is not None:
                locate_lake_runs(self.runs_dir, download=True)

    def test_set(self) -> EvaluationSet:
        if self.runs_dir is None:
            return super().test_set()
        collection, episodes = load_lake_runs(self.runs_dir, self.image_size, self.invert, self.download, self.ink_fill)
        log.info("Lake's runs at %s: %s", self.runs_dir, collection.summary())
        return lake_runs_set(collection, episodes)

    def load_collection(self) -> ImageCollection:
        return load_omniglot(
            self.root,
            self.sets,
            image_size=self.image_size,
            invert=self.invert,
            download=self.download,
            skip_bad_images=self.skip_bad_images,
            ink_fill=self.ink_fill,
        )

    def select_split(self, name: str) -> ImageCollection:
        loaded = self.collection.group_names
        if name == "train":
            alphabets = self.train_alphabets or [
                a for a in loaded if a not in self.val_alphabets and a not in self.test_alphabets
            ]
            if not alphabets:
                raise ValueError("no alphabets left to train on: every loaded alphabet is held out")
        else:
            alphabets = self.val_alphabets if name == "val" else self.test_alphabets
            if not alphabets:
                raise ValueError(f"no {name} alphabets configured ({name}_alphabets is empty)")
        missing = [a for a in alphabets if a not in loaded]
        if missing:
            raise ValueError(
                f"{name} alphabet(s) {missing} are not in the loaded sets {self.sets} under "
                f"{self.root}; loaded alphabets: {loaded}"
            )
        split = self.collection.select_groups(alphabets)
        if name == "train" and self.train_drawers is not None:
            drawers = cast(torch.Tensor, split.instances)  # load_omniglot records every image's drawer
            split = split.select_images(drawers <= self.train_drawers)
        return split
