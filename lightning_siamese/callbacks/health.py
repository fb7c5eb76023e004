"""The training-health callback: ``health/`` in TensorBoard, and a warning when training goes wrong.

On by default in the ``lightning`` command (``--health.*`` options; ``--health.enabled false``
turns it off). The statistics and the warning rules live in ``evaluation/health.py``.
"""

from __future__ import annotations

from typing import Any, cast

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_warn

from lightning_siamese.data import trainer_state
from lightning_siamese.data.datamodules.base import EvaluationSet, SiameseDataModule
from lightning_siamese.evaluation.health import (
    Accuracy,
    HealthMonitor,
    TrainingHealthWarning,
    batch_is_empty,
    binomial_ci95,
    embedding_spread,
)
from lightning_siamese.models.embedding import embed_all
from lightning_siamese.models.heads import TripletHead
from lightning_siamese.models.module import SiameseModule


class TrainingHealth(pl.Callback):
    """At each validation, logs under ``health/`` and warns (once per condition) when training is broken.

    Logged: ``health/embedding_spread`` (mean pairwise distance of a fixed sample of
    validation embeddings, as the head compares them), ``health/embedding_std`` (their mean
    per-dimension standard deviation), ``health/spread_ratio`` (spread over its value
    before training), ``health/active_fraction`` (margin losses: the mean fraction of
    non-zero terms over the training steps since the last validation),
    ``health/empty_batches`` (the fraction of those training batches with no positive pair
    or valid triplet) and histograms ``health/scores_same`` and ``health/scores_different``
    of the validation pairs' scores. Warned (:class:`TrainingHealthWarning`, also written
    to TensorBoard as ``health/warnings``): collapsed embeddings, a triplet loss stuck at
    the margin, accuracy at chance after a warm-up, too many empty batches; see
    :class:`~lightning_siamese.evaluation.health.HealthMonitor` for the thresholds.

    Args:
        enabled: ``False`` turns the callback off.
        collapse_ratio, margin_patience, margin_tolerance, warmup, max_empty_fraction: the
            thresholds of :class:`~lightning_siamese.evaluation.health.HealthMonitor`.
        sample: validation images behind the spread (a fixed random sample).
        seed: the seed of that sample.
    """

    def __init__(
        self,
        enabled: bool = True,
        collapse_ratio: float = 0.1,
        margin_patience: int = 3,
        margin_tolerance: float = 0.02,
        warmup: int = 3,
        max_empty_fraction: float = 0.1,
        sample: int = 512,
        seed: int = 0,
    ) -> None:
        if sample < 2:
            raise ValueError(f"sample must be at least 2 images, got {sample}")
        self.enabled = enabled
        self.monitor = HealthMonitor(collapse_ratio, margin_patience, margin_tolerance, warmup, max_empty_fraction)
        self.sample = sample
        self.seed = seed
        self._pending: list[tuple[torch.Tensor | bool, torch.Tensor | float]] = []

    def _probe(self, n: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed)
        return torch.randperm(n, generator=generator)[: self.sample].sort().values

    @torch.no_grad()
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The spread before any training step: the reference a collapse is measured against."""
        if not self.enabled or self.monitor.reference_spread is not None or trainer_state.datamodule(trainer) is None:
            return
        module = cast(SiameseModule, pl_module)
        data = cast(SiameseDataModule, trainer_state.datamodule(trainer))
        dataset = cast(EvaluationSet, data.val_dataloader().dataset)  # the loader of the data module's val set
        images = dataset.collection.images[self._probe(len(dataset))]
        # The data module's preparation, as validation's: the spread compares like with like.
        embeddings = module.head.prepare(embed_all(module, images, prepare=data.prepare))
        self.monitor.reference_spread = embedding_spread(embeddings)[0]

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        if not self.enabled:
            return
        head = cast(SiameseModule, pl_module).head
        # Kept as tensors and read at the next validation: reading them here would make a GPU wait every step.
        empty = batch_is_empty(batch) if head.needs_positives else False
        self._pending.append((empty, head.last_active_fraction))

    def _count_pending_batches(self) -> None:
        for empty, active_fraction in self._pending:
            self.monitor.training_batch(bool(empty), float(active_fraction))
        self._pending.clear()

    @torch.no_grad()
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        table = getattr(pl_module, "last_embeddings", {}).get("val")
        if not self.enabled or trainer.sanity_checking or table is None:
            return
        self._count_pending_batches()
        head = cast(SiameseModule, pl_module).head
        dataset = trainer_state.stage_dataset(trainer, "val")
        spread, std = embedding_spread(head.prepare(table[self._probe(len(table)).to(table.device)]))
        triplet_loss = trainer.callback_metrics.get("val/loss") if isinstance(head, TripletHead) else None
        scalars, messages = self.monitor.validation(
            spread,
            self._accuracy(pl_module, dataset),
            None if triplet_loss is None else float(triplet_loss),
            head.triplet.margin if isinstance(head, TripletHead) else None,
        )
        scalars["health/embedding_std"] = std
        step = trainer.global_step
        for logger in trainer.loggers:
            logger.log_metrics(scalars, step=step)
        tensorboards = [lg.experiment for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
        if tensorboards and trainer.is_global_zero and dataset.pairs:
            first, second, same = (dataset.pairs[k].to(table.device) for k in ("first", "second", "same"))
            scores = head.similarity(table[first], table[second]).float().cpu()
            same = same.bool().cpu()
            for experiment in tensorboards:
                for tag, values in (("health/scores_same", scores[same]), ("health/scores_different", scores[~same])):
                    if len(values):
                        experiment.add_histogram(tag, values, global_step=step)
        for message in messages:
            rank_zero_warn(message, category=TrainingHealthWarning)
            for experiment in tensorboards if trainer.is_global_zero else ():
                experiment.add_text("health/warnings", message, global_step=step)

    @staticmethod
    def _accuracy(pl_module: pl.LightningModule, dataset) -> Accuracy | None:
        """The latest validation accuracy with its CI and chance level: N-way episodes or verification pairs."""
        oneshot = getattr(pl_module, "last_oneshot", {}).get("val")
        if dataset.episodes is not None and oneshot is not None:
            name = f"{oneshot.n_way}-way {oneshot.k_shot}-shot accuracy"
            return Accuracy(name, oneshot.accuracy, oneshot.ci95, 100.0 / oneshot.n_way)
        verification = getattr(pl_module, "last_verification", {}).get("val")
        if verification is not None:
            ci95 = binomial_ci95(verification.accuracy, verification.n_pairs)
            return Accuracy("verification accuracy", verification.accuracy, ci95, 50.0)
        return None

    def state_dict(self) -> dict[str, Any]:
        return self.monitor.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.monitor.load_state_dict(state_dict)
