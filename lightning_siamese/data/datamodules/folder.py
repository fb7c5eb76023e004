"""Any folder-per-class image set, split by class."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from lightning_siamese.data.datamodules.base import SiameseDataModule
from lightning_siamese.data.sources.collection import ImageCollection
from lightning_siamese.data.sources.folder import depth_counts, load_image_folder

log = logging.getLogger(__name__)


class FolderDataModule(SiameseDataModule):
    """Any ``root/<class>/<image>`` tree (classes may nest), split by class.

    Classes with fewer than ``min_images`` images cannot give a training positive: by
    default they become test classes (novel classes, the DarkShotLearning seed's rule), or
    they are dropped (``small_classes: drop``); either way they are reported. The other
    classes are shuffled with ``split_seed`` and a ``val_fraction`` and ``test_fraction`` of
    them held out, or whole top-level folders with ``split_by: group``. A data summary
    (classes, images per class, sizes before resizing, what went where) is printed at set-up
    and logged to TensorBoard as text.

    Args:
        root: the folder tree.
        channels: 1 (grayscale) or 3 (RGB).
        min_images: images a class needs to take part in training.
        small_classes: ``"test"`` or ``"drop"``, for classes under ``min_images``.
        val_fraction, test_fraction: share of the (large enough) classes or groups held out.
        split_by: ``"class"`` or ``"group"`` (top-level folder).
        split_seed: the seed of that split.
        skip_bad_images: warn about and skip unreadable or non-image files instead of failing.
        class_depth: which folder level names a class: ``"leaf"`` (the folder holding the
            images), or ``k`` (the first k levels under ``root``: 1 = top-level folder), so
            one nested tree gives several label granularities; the summary prints the class
            count at every depth the tree allows.
        same_group_prob, within_group, n_way: as in :class:`SiameseDataModule`, with
            defaults for ungrouped folders (0, False, 5-way).
        **kwargs: the other options of :class:`SiameseDataModule`.
    """

    image_size: int  # one side of the square images

    def __init__(
        self,
        root: str,
        channels: int = 1,
        min_images: int = 2,
        small_classes: str = "test",
        val_fraction: float = 0.2,
        test_fraction: float = 0.2,
        split_by: str = "class",
        split_seed: int = 0,
        skip_bad_images: bool = False,
        class_depth: int | str = "leaf",
        same_group_prob: float = 0.0,
        within_group: bool = False,
        n_way: int = 5,
        **kwargs: Any,
    ) -> None:
        super().__init__(same_group_prob=same_group_prob, within_group=within_group, n_way=n_way, **kwargs)
        self.save_hyperparameters(ignore=["augment"])
        if small_classes not in ("test", "drop"):
            raise ValueError(f"small_classes must be 'test' or 'drop', got {small_classes!r}")
        if split_by not in ("class", "group"):
            raise ValueError(f"split_by must be 'class' or 'group', got {split_by!r}")
        if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
            raise ValueError(
                f"val_fraction and test_fraction must be in [0, 1) and sum below 1, got {val_fraction} and {test_fraction}"
            )
        if min_images < 2:
            raise ValueError(f"min_images must be at least 2 (a positive pair needs two images), got {min_images}")
        self.root = root
        self.channels = channels
        self.min_images = min_images
        self.small_classes = small_classes
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.split_by = split_by
        self.split_seed = split_seed
        self.skip_bad_images = skip_bad_images
        self.class_depth = class_depth
        self._assignment: dict[str, list[int]] | None = None
        self.summary = ""

    def load_collection(self) -> ImageCollection:
        collection, self._load_summary = load_image_folder(
            self.root, self.image_size, self.channels, self.skip_bad_images, self.class_depth
        )
        return collection

    def _assign(self) -> dict[str, list[int]]:
        """Class indices of each split, and the dropped ones."""
        if self._assignment is None:
            data = self.collection
            counts = torch.bincount(data.labels, minlength=data.num_classes)
            small = [c for c in range(data.num_classes) if counts[c] < self.min_images]
            large = [c for c in range(data.num_classes) if counts[c] >= self.min_images]
            rng = np.random.default_rng(self.split_seed)
            # The unit held out is a class, or a whole top-level group of classes.
            unit = (lambda c: int(data.class_groups[c])) if self.split_by == "group" else (lambda c: c)
            units = sorted({unit(c) for c in large})
            order = [units[i] for i in rng.permutation(len(units))]
            n_val, n_test = round(self.val_fraction * len(order)), round(self.test_fraction * len(order))
            split_of = dict.fromkeys(order[:n_val], "val") | dict.fromkeys(order[n_val : n_val + n_test], "test")
            which = {c: split_of.get(unit(c), "train") for c in large}
            assignment = {k: sorted(c for c in large if which[c] == k) for k in ("train", "val", "test")}
            assignment["dropped"] = small if self.small_classes == "drop" else []
            if self.small_classes == "test":
                assignment["test"] = sorted(assignment["test"] + small)
            self._assignment = assignment
            self.summary = self._summary_text(assignment, counts)
        return self._assignment

    def _summary_text(self, assignment: dict[str, list[int]], counts: torch.Tensor) -> str:
        data = self.collection
        info = self._load_summary
        lines = [
            (
                f"Folder data set {self.root}: {data.num_classes} classes, {len(data)} images, "
                f"{int(counts.min())}-{int(counts.max())} images per class (median {int(counts.median())}); "
                f"sizes before resizing {info['original_width'][0]}-{info['original_width'][1]} x "
                f"{info['original_height'][0]}-{info['original_height'][1]} px, resized to {self.image_size}x{self.image_size}, "
                f"{self.channels} channel(s)."
            ),
            f"  classes by class_depth: {depth_counts(info)}; using class_depth {self.class_depth}.",
        ]
        for name in ("train", "val", "test"):
            classes = assignment[name]
            lines.append(f"  {name}: {len(classes)} classes, {int(counts[classes].sum()) if classes else 0} images")
        small = [data.class_names[c] for c in range(data.num_classes) if counts[c] < self.min_images]
        if small:
            fate = "moved to the test split as novel classes" if self.small_classes == "test" else "dropped"
            lines.append(
                f"  {len(small)} classes with fewer than {self.min_images} images {fate}: {', '.join(small[:20])}"
                + (" ..." if len(small) > 20 else "")
            )
        if info.get("ignored"):
            lines.append(
                f"  {len(info['ignored'])} non-image files beside the class folders ignored: {', '.join(info['ignored'][:10])}"
            )
        if info["skipped"]:
            lines.append(f"  {len(info['skipped'])} unreadable files skipped: {', '.join(info['skipped'][:10])}")
        return "\n".join(lines)

    def select_split(self, name: str) -> ImageCollection:
        classes = self._assign()[name]
        if not classes:
            raise ValueError(
                f"the {name} split of {self.root} has no classes (val_fraction={self.val_fraction}, "
                f"test_fraction={self.test_fraction}, {self.collection.num_classes} classes)"
            )
        return self.collection.select_classes(classes)

    def setup(self, stage: str) -> None:
        self._assign()
        self._publish_summary(self.summary, to_tensorboard=stage == "fit")
        super().setup(stage)
