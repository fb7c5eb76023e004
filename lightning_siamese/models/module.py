"""The LightningModule: an encoder and a head, composed; losses, optimizers, and embeddings for evaluation.

The maths lives elsewhere: encoders and heads in ``models/``, the scoring of a validation or
test stage in ``evaluation/stages.py``; files and figures are written by callbacks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import lightning.pytorch as pl
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torchmetrics.classification import BinaryAUROC

from lightning_siamese.data import trainer_state
from lightning_siamese.data.transforms.views import AlignmentViews, embed_views
from lightning_siamese.evaluation.oneshot import OneShotResult, SupportHubness
from lightning_siamese.evaluation.openset import OpenSetResult
from lightning_siamese.evaluation.stages import (
    StageRecord,
    StageScoring,
    score_episode_stage,
    score_pairs,
)
from lightning_siamese.evaluation.verification import VerificationResult
from lightning_siamese.models.embedding import embedding_table
from lightning_siamese.models.encoders import EnsembleEncoder
from lightning_siamese.models.heads import KochHead, PairHead
from lightning_siamese.models.optim import resolve_param_groups

# What validation fits, kept in checkpoints: the verification threshold and how it was fitted (e.g. "far 0.01"),
# the open-set rejection threshold, and for signatures the k of each writer's t_w = mean_w - k std_w.
FITTED = ("verification_threshold", "verification_threshold_rule", "openset_threshold", "writer_threshold_k")


class SiameseModule(pl.LightningModule):
    """A Siamese network: one shared encoder, one head that compares embeddings (user guide: Models).

    Args:
        encoder: images ``[B, C, H, W]`` to embeddings ``[B, D]``; exposes ``embedding_dim``.
        head: a head (or a factory called with ``embedding_dim``), e.g. :class:`~lightning_siamese.models.heads.KochHead`.
        optimizer, lr_scheduler: called with the parameters / the optimizer (the scheduler steps every epoch).
        param_groups: per-module optimizer settings (:func:`~lightning_siamese.models.optim.resolve_param_groups`).
        shot_reduction, hubness, threshold_rule, target_far, openset, openset_fraction, openset_far: how each
            stage is scored (:class:`~lightning_siamese.evaluation.stages.StageScoring`).
        eval_flip, eval_shift: outside training, average each image's embedding with its mirror's and/or its
            copies shifted by ``eval_shift`` pixels (:func:`~lightning_siamese.data.transforms.views.embed_views`).
        channels_last: channels-last weights and inputs. compile: ``torch.compile`` the encoder.
        test_align: ``lightning test`` scores episodes over these alignment views
            (:class:`~lightning_siamese.data.transforms.views.AlignmentViews`) and logs the plain accuracy beside.
    """

    encoder: nn.Module
    head: PairHead
    _encode: Callable[[torch.Tensor], torch.Tensor]  # the encoder, compiled or not (kept out of the module tree)
    verification_threshold: float | None
    verification_threshold_rule: str | None
    openset_threshold: float | None
    writer_threshold_k: float | None

    def __init__(
        self,
        encoder: nn.Module,
        head: Callable[[int], PairHead] | PairHead = KochHead,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        param_groups: list[dict[str, Any]] | None = None,
        shot_reduction: str = "mean",
        hubness: SupportHubness | None = None,
        eval_flip: bool = False,
        eval_shift: int = 0,
        channels_last: bool = False,
        compile: bool = False,
        threshold_rule: str = "accuracy",
        target_far: float | None = None,
        openset: bool = False,
        openset_fraction: float = 0.2,
        openset_far: float = 0.05,
        test_align: AlignmentViews | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if not hasattr(encoder, "embedding_dim"):
            raise TypeError(f"encoder {type(encoder).__name__} must expose `embedding_dim`")
        self.encoder = encoder
        embedding_dim = cast(int, encoder.embedding_dim)  # checked above: every encoder exposes its width
        # A module is the head itself (a PairHead, as the signature says); mypy cannot split the union on nn.Module.
        self.head = cast(PairHead, head) if isinstance(head, nn.Module) else head(embedding_dim)
        if self.head.embedding_dim != encoder.embedding_dim:
            raise ValueError(
                f"head expects {self.head.embedding_dim}-d embeddings but the encoder produces {encoder.embedding_dim}-d"
            )
        if isinstance(encoder, EnsembleEncoder):
            encoder.check_head(self.head)
        self.optimizer, self.lr_scheduler, self.param_groups = optimizer, lr_scheduler, param_groups
        if param_groups is not None:  # a misnamed module fails here, before any data loads
            resolve_param_groups(self.named_parameters(), param_groups)
        if eval_shift < 0:
            raise ValueError(f"eval_shift must be a number of pixels >= 0, got {eval_shift}")
        self.eval_flip, self.eval_shift = eval_flip, eval_shift
        self.channels_last, self.test_align = channels_last, test_align
        self.scoring = StageScoring(
            shot_reduction, hubness, threshold_rule, target_far, openset, openset_fraction, openset_far
        )
        if channels_last:
            self.encoder.to(memory_format=torch.channels_last)
        # Kept out of the module tree (not a submodule), so state_dict names stay the encoder's.
        self.__dict__["_encode"] = torch.compile(self.encoder) if compile else self.encoder
        self.val_auroc, self.test_auroc = BinaryAUROC(), BinaryAUROC()
        self._outputs: list[tuple[torch.Tensor, torch.Tensor]] = []
        for name in FITTED:  # fitted on validation, kept in checkpoints: a test or a tool applies what validation chose
            setattr(self, name, None)
        # Each stage's latest results, for callbacks (health, records) and tools.
        self.last_oneshot: dict[str, OneShotResult] = {}
        self.last_verification: dict[str, VerificationResult] = {}
        self.last_openset: dict[str, OpenSetResult] = {}
        self.last_embeddings: dict[str, torch.Tensor] = {}
        self.stage_records: dict[str, StageRecord] = {}

    # --- the model ------------------------------------------------------------------

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        if self.training:
            return self._encode(images)
        return embed_views(self._encode, images, self.eval_flip, self.eval_shift)

    def similarity(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """Similarity of two image batches (higher = more alike)."""
        return self.head.similarity(self.embed(first), self.embed(second))

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return self.similarity(first, second)

    # --- training -------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        # Open-set and aligned scoring need N-way episodes; a verification data module (LFW,
        # signatures) scores pair lists, where they would do nothing or mismatch its threshold.
        data = trainer_state.datamodule(self.trainer)
        task = getattr(data, "task", "oneshot")
        for setting, on in (
            ("openset is on", self.scoring.openset),
            ("test_align is set", self.test_align is not None),
        ):
            if on and task != "oneshot":
                raise ValueError(
                    f"{setting}, but the data module {type(data).__name__} is a {task} benchmark "
                    f"(pairs, no N-way episodes): unset model {setting.split()[0]}"
                )

    def on_fit_start(self) -> None:
        data = trainer_state.datamodule(self.trainer)
        self.head.check_batches(getattr(data, "batch_kind", None), getattr(data, "images_per_class", 2))

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The head's loss on a batch of pairs, triplets or P x K classes (by its keys).

        Under mixed precision the encoder runs in low precision and the head in float32: bf16's
        8 bits of mantissa are too few for the distances and margins the losses compare.
        """
        if "same" in batch:
            first, second = self.embed(torch.cat([batch["first"], batch["second"]])).float().chunk(2)  # one pass
            return self._head_loss(self.head.loss, first, second, same=batch["same"])
        if "anchor" in batch:
            images = torch.cat([batch["anchor"], batch["positive"], batch["negative"]])
            anchor, positive, negative = self.embed(images).float().chunk(3)
            return self._head_loss(self.head.triplet_loss, anchor, positive, negative)
        if "labels" in batch:
            return self._head_loss(self.head.batch_loss, self.embed(batch["images"]).float(), labels=batch["labels"])
        raise ValueError(f"unknown training batch with keys {sorted(batch)}: expected pairs, triplets or classes")

    def _head_loss(
        self, loss: Callable[..., torch.Tensor], *embeddings: torch.Tensor, **targets: torch.Tensor
    ) -> torch.Tensor:
        """A head loss in float32; an ensemble is trained member by member."""
        with torch.autocast(self.device.type, enabled=False):
            if isinstance(self.encoder, EnsembleEncoder):
                return self.encoder.member_loss(loss, self.head, *embeddings, **targets)
            return loss(*embeddings, **targets)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.training_loss(batch)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True)
        return loss

    def configure_optimizers(self):
        params = (
            self.parameters()
            if self.param_groups is None
            else resolve_param_groups(self.named_parameters(), self.param_groups)
        )
        optimizer = self.optimizer(params)
        if self.lr_scheduler is None:
            return optimizer
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": self.lr_scheduler(optimizer), "interval": "epoch"},
        }

    # --- evaluation: embed each image once, then score the stage ----------------------

    def _embed_stage(self, images: torch.Tensor, stage: str) -> torch.Tensor:
        """The stage's embeddings: plain, or (test with ``test_align``) every alignment view's side by side."""
        views = self.test_align if stage == "test" else None
        return self.embed(images) if views is None else views.embed(self.embed, images)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._outputs.append((self._embed_stage(batch[0], "val"), batch[1]))

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._outputs.append((self._embed_stage(batch[0], "test"), batch[1]))

    def predict_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        images, index = batch
        return {"embedding": self.embed(images), "index": index}

    def _pair_loss(self, table: torch.Tensor, dataset: Any) -> torch.Tensor | None:
        """The head's loss on the split's fixed pairs (or triplets, for triplet heads)."""
        if "pairs" in self.head.trains_on:
            first, second, same = (dataset.pairs[k].to(self.device) for k in ("first", "second", "same"))
            return self._head_loss(self.head.loss, table[first], table[second], same=same)
        if "triplets" in self.head.trains_on and dataset.triplets:
            keys = ("anchor", "positive", "negative")
            return self._head_loss(self.head.triplet_loss, *(table[dataset.triplets[k].to(self.device)] for k in keys))
        return None  # e.g. a triplet head on a pair list, or a classifying head: no loss to report

    def _evaluate(self, stage: str, auroc: BinaryAUROC) -> None:
        dataset = trainer_state.stage_dataset(self.trainer, stage)
        if self.trainer.sanity_checking:  # a full evaluation here would only delay training
            self._outputs.clear()
            return
        table = embedding_table(self, self._outputs, dataset, lambda images: self._embed_stage(images, stage))
        self._outputs.clear()
        views = self.test_align if stage == "test" else None
        aligned = None
        if views is not None:  # the aligned rows score the episodes; their unmoved view is the plain table
            aligned, table = table, views.unmoved(table)
        self.last_embeddings[stage] = table
        loss = self._pair_loss(table, dataset)
        metrics: dict[str, torch.Tensor | float] = {} if loss is None else {f"{stage}/loss": loss}
        sync = self.trainer.world_size > 1  # every rank holds the same full table, so values agree
        if dataset.episodes is None:  # a verification benchmark: scored pairs, no episodes
            pairs = score_pairs(
                stage,
                table,
                dataset.pairs,
                self.head.similarity,
                self.scoring,
                self.head.probability,
                self.verification_threshold,
                self.writer_threshold_k,
                getattr(dataset, "references", None),
            )
            if stage == "val":
                self.verification_threshold, self.writer_threshold_k = pairs.threshold, pairs.writer_k
                self.verification_threshold_rule = self.scoring.rule_name
                pairs.metrics["hp_metric"] = pairs.result.accuracy
            pairs.metrics = metrics | pairs.metrics
            self.last_verification[stage] = pairs.result
            self.stage_records[stage] = StageRecord(dataset, pairs=pairs)
            self.log_dict(pairs.metrics, sync_dist=sync)
            return
        first, second, same = (dataset.pairs[k].to(self.device) for k in ("first", "second", "same"))
        auroc.update(self.head.similarity(table[first], table[second]), same)
        metrics[f"{stage}/pair_auroc"] = auroc.compute()
        auroc.reset()
        within_group = getattr(trainer_state.datamodule(self.trainer), "within_group", True)
        scores, openset = score_episode_stage(
            stage, dataset, table, self.head, self.scoring, within_group, self.openset_threshold, aligned, views
        )
        self.last_oneshot[stage] = scores.result
        if openset is not None:
            self.last_openset[stage] = openset
            if stage == "val":
                self.openset_threshold = openset.threshold
        metrics |= scores.metrics
        self.stage_records[stage] = StageRecord(dataset, episodes=scores, views=views)
        self.log_dict(metrics, sync_dist=sync)
        self.log(f"{stage}/{dataset.name}_acc", scores.result.accuracy, prog_bar=True, sync_dist=sync)

    def on_validation_epoch_end(self) -> None:
        self._evaluate("val", self.val_auroc)

    def on_test_epoch_end(self) -> None:
        self._evaluate("test", self.test_auroc)

    # --- checkpoints keep what validation fitted ---------------------------------------

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint.update({name: getattr(self, name) for name in FITTED})
        state = self.head.mining_state()
        if state is not None:
            checkpoint["triplet_subset_state"] = state

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        for name in FITTED:
            setattr(self, name, checkpoint.get(name))
        if "triplet_subset_state" in checkpoint:
            self.head.load_mining_state(checkpoint["triplet_subset_state"])
