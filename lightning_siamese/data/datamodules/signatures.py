"""The signature verification data module: writer-independent splits, SigNet's preprocessing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from lightning_siamese.data.datamodules.base import EvaluationSet, SiameseDataModule
from lightning_siamese.data.datamodules.batches import IMAGE_KEYS, SampledBatches, TrainingBatches
from lightning_siamese.data.samplers.pairs import SignaturePairSampler, evaluation_pairs
from lightning_siamese.data.sources.collection import ImageCollection
from lightning_siamese.data.sources.signatures import (
    SignatureFiles,
    find_signatures,
    load_signatures,
    writers_and_kinds,
)
from lightning_siamese.data.transforms.views import ScaledToFloat, to_float


class ScaledBatches(TrainingBatches):
    """Training batches with every image multiplied by ``scale`` (SigNet's 1 / std)."""

    def __init__(self, batches: TrainingBatches, scale: float) -> None:
        self.batches, self.scale = batches, scale

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        return {k: v * self.scale if k in IMAGE_KEYS else v for k, v in self.batches[key].items()}


class SignatureEvaluationSet(EvaluationSet):
    """Verification pairs of held-out writers, with each writer's reference signatures.

    Images are divided by the training set's standard deviation: the data module's
    ``prepare``, set when the loader is built (after a checkpoint has restored the std).
    """

    def __init__(
        self,
        collection: ImageCollection,
        pairs: dict[str, torch.Tensor] | None = None,
        references: list[torch.Tensor] | None = None,
        source: str | None = None,
    ) -> None:
        super().__init__(collection, pairs=pairs, name="verification", source=source)
        self.references = references or []


class SignatureDataModule(SiameseDataModule):
    """Offline signature verification, writer-independent as SigNet (Dey et al. 2017).

    The writers at ``root`` (``sign_data`` or CEDAR layout, a folder or a zip; see
    :mod:`lightning_siamese.data.signatures`) are split with ``split_seed`` into training and
    validation writers; the test stage scores the writers at ``test_root``, a separate folder
    that must share no writer with ``root``. Training draws fresh balanced pairs every epoch
    (genuine-genuine of a writer = 1, genuine-skilled forgery = 0, optionally random
    forgeries); validation and test pairs are fixed: per writer, ``references`` genuine
    signatures enrolled, each scored against questioned genuine signatures and forgeries
    (balanced, at most ``eval_pairs_per_writer`` pairs). The references also give the
    per-writer thresholds (``test/writer_acc``).

    Preprocessing is SigNet's: grayscale, inverted, resized to ``image_size`` (height, width;
    the paper's 155x220 by default), divided by the standard deviation of the training
    images' pixels (in [0, 1]). That standard deviation is kept in checkpoints, so ``test``
    and ``lightning-siamese verify`` apply the training set's.

    Args:
        root: the development writers (training and validation).
        test_root: held-out writers for the test stage.
        layout: ``"auto"``, ``"sign_data"`` or ``"cedar"``.
        image_size: ``[height, width]``, or one side of a square.
        val_fraction, split_seed: share of the writers held out for validation, and its seed.
        references: genuine signatures enrolled per validation/test writer.
        eval_pairs_per_writer: pairs per validation/test writer (half genuine, half forged).
        random_forgeries: share of the forged pairs that pair a writer's signature with
            another writer's genuine one instead of a skilled forgery.
        pairs_per_epoch, batch_size: training pairs per epoch and per batch.
        eval_seed: seed of the references and evaluation pairs.
        **kwargs: the other options of :class:`SiameseDataModule` (loaders, seed).
    """

    task = "verification"
    _train_sampler: SignaturePairSampler

    def __init__(
        self,
        root: str = "data/signatures",
        test_root: str | None = None,
        layout: str = "auto",
        image_size: int | Sequence[int] = (155, 220),
        val_fraction: float = 0.2,
        split_seed: int = 0,
        references: int = 5,
        eval_pairs_per_writer: int = 40,
        random_forgeries: float = 0.0,
        eval_seed: int = 0,
        batch_size: int = 32,
        pairs_per_epoch: int = 2048,
        **kwargs: Any,
    ) -> None:
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"image_size must be [height, width] or one side, got {image_size!r}")
        if kwargs.get("batch_kind", "pairs") != "pairs":
            raise ValueError(
                f"signatures train on pairs (genuine-genuine vs genuine-forgery): set batch_kind 'pairs', "
                f"not {kwargs['batch_kind']!r}"
            )
        super().__init__(
            batch_size=batch_size, pairs_per_epoch=pairs_per_epoch, same_group_prob=0.0, within_group=False, **kwargs
        )
        self.image_size = list(size)  # [height, width], where the base keeps one side
        self.save_hyperparameters(ignore=["augment"])
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        if references < 2:
            raise ValueError(f"references must be at least 2 (a writer's spread needs two), got {references}")
        if not 0.0 <= random_forgeries <= 1.0:
            raise ValueError(f"random_forgeries must be in [0, 1], got {random_forgeries}")
        self.root, self.test_root, self.layout = root, test_root, layout
        self.size = size
        self.val_fraction, self.split_seed = val_fraction, split_seed
        self.references, self.eval_pairs_per_writer = references, eval_pairs_per_writer
        self.random_forgeries, self.eval_seed = random_forgeries, eval_seed
        self._files: dict[str, SignatureFiles] = {}
        self._pixel_std: float | None = None

    # --- writers --------------------------------------------------------------------

    def files(self, which: str = "root") -> SignatureFiles:
        if which not in self._files:
            path = self.root if which == "root" else self.test_root
            if path is None:
                raise ValueError("the test stage scores held-out writers: set data.test_root to their folder")
            self._files[which] = find_signatures(path, self.layout)
        return self._files[which]

    def writers(self) -> dict[str, list[str]]:
        """Training and validation writers: a seeded ``val_fraction`` of the writers at ``root``."""
        names = self.files().writers
        if len(names) < 2:
            raise ValueError(f"{self.root} has {len(names)} writer(s): training and validation need at least two")
        order = [names[i] for i in np.random.default_rng(self.split_seed).permutation(len(names))]
        n_val = min(max(round(self.val_fraction * len(names)), 1), len(names) - 1)
        return {"train": sorted(order[n_val:]), "val": sorted(order[:n_val])}

    def load_collection(self) -> ImageCollection:
        return load_signatures(self.files(), self.size)

    def select_split(self, name: str) -> ImageCollection:
        if name != "test":
            return self.collection.select_groups(self.writers()[name])
        test = self.files("test")
        try:
            seen = set(self.files().writers)
        except FileNotFoundError:  # the development writers are not here (a checkpoint and its test folder)
            seen = set()
        shared = sorted(set(test.writers) & seen)
        if shared:
            raise ValueError(
                f"test_root {self.test_root} shares writer(s) {shared[:10]} with root {self.root}: "
                f"test writers must never be trained or validated on"
            )
        return load_signatures(test, self.size)

    # --- SigNet's normalisation -------------------------------------------------------

    @property
    def pixel_std(self) -> float:
        """Standard deviation of the training images' pixels in [0, 1] (restored from a checkpoint)."""
        if self._pixel_std is None:
            self._pixel_std = float(to_float(self.split("train").images).std())
        return self._pixel_std

    @property
    def prepare(self) -> ScaledToFloat:
        """SigNet's preparation: [0, 1], divided by the training pixel std (the checkpoint's, once restored)."""
        return ScaledToFloat(1.0 / self.pixel_std)

    def state_dict(self) -> dict[str, Any]:
        return {"pixel_std": self.pixel_std, "kind": "signatures"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pixel_std = float(state_dict["pixel_std"])

    # --- batches and evaluation -------------------------------------------------------

    def _batch_sampler(self, train: ImageCollection) -> SignaturePairSampler:
        return SignaturePairSampler(*writers_and_kinds(train), self.random_forgeries)

    def train_batches(self, seed: int) -> TrainingBatches:
        batches = SampledBatches(
            self.split("train").images,
            self._train_sampler,
            self.batch_size,
            self.pairs_per_epoch // self.batch_size,
            seed,
            self.augment,
        )
        return ScaledBatches(batches, 1.0 / self.pixel_std)

    def evaluation_set(self, split: str, *_: Any, **__: Any) -> SignatureEvaluationSet:
        collection = self.split(split)
        pairs, references = evaluation_pairs(
            *writers_and_kinds(collection),
            collection.group_names,
            self.references,
            self.eval_pairs_per_writer,
            self.random_forgeries,
            self.eval_seed,
        )
        source = self.test_root if split == "test" else self.root
        return SignatureEvaluationSet(collection, pairs, references, source=f"{source} ({split} writers)")

    def predict_dataloader(self) -> DataLoader:
        return self._evaluation_loader(SignatureEvaluationSet(self.split(self.predict_split)))

    def describe(self, stage: str) -> str:
        files = self.files("root" if stage == "fit" else "test")
        lines = [
            (
                f"Signatures at {files.archive or files.root} ({files.layout} layout), {self.size[0]}x{self.size[1]} px, "
                f"inverted, divided by the training pixel std"
            )
        ]
        splits = ("train", "val") if stage == "fit" else ("test",)
        for name in splits:
            split = self.split(name)
            genuine = sum(
                int((split.labels == c).sum()) for c, n in enumerate(split.class_names) if n.endswith("/genuine")
            )
            lines.append(
                f"  {name}: {len(split.group_names)} writers, {genuine} genuine and {len(split) - genuine} forged "
                f"signatures (writers {', '.join(split.group_names[:8])}{' ...' if len(split.group_names) > 8 else ''})"
            )
        if stage == "fit":
            lines.append(
                f"  training pixel std {self.pixel_std:.4f}; {self.pairs_per_epoch} fresh training pairs per epoch; "
                f"{self.references} references per evaluation writer"
            )
        return "\n".join(lines)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if stage in ("fit", "test"):
            self._publish_summary(self.describe(stage), to_tensorboard=stage == "fit")
