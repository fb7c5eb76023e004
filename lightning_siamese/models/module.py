"""The LightningModule: an encoder and a head, composed; training, logging, evaluation.

The maths lives elsewhere (``models/encoders.py``, ``models/heads.py``,
``evaluation/oneshot.py``); this wrapper wires it into Lightning's loops.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn
from torchmetrics.classification import BinaryAUROC

from lightning_siamese.data.samplers import check_unknown_fraction
from lightning_siamese.data.transforms import AlignmentViews, embed_views, to_float
from lightning_siamese.evaluation.figures import RIGHT, WRONG, pair_tile, roc_figure, save_figure, save_image, tile_grid
from lightning_siamese.evaluation.oneshot import (
    AlignedSimilarity,
    OneShotResult,
    SupportHubness,
    episode_accuracies,
    format_named_tasks,
    named_task_record,
    summarize,
)
from lightning_siamese.evaluation.openset import OpenSetResult, evaluate_openset, rejection_threshold, score_with_unknowns
from lightning_siamese.evaluation.verification import (
    THRESHOLD_RULES,
    VerificationResult,
    check_far,
    confident_pairs,
    fit_threshold,
    kfold_accuracy,
    roc_curve,
    verification_metrics,
)
from lightning_siamese.evaluation.writers import fit_writer_k, writer_metrics
from lightning_siamese.models.encoders import EnsembleEncoder
from lightning_siamese.models.heads import KochHead, PairHead
from lightning_siamese.models.losses import MinedTripletLoss


def resolve_param_groups(
    named_parameters: Iterable[tuple[str, nn.Parameter]], groups: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Optimizer parameter groups from groups that name their modules, e.g. per layer.

    Each group's ``params`` is a module name or a list of them (prefixes of
    ``named_parameters()``: ``encoder.fc`` takes ``encoder.fc.weight`` and ``encoder.fc.bias``);
    its other keys (``lr``, ``momentum``, ``weight_decay``, ...) override the optimizer's
    defaults for those parameters. Each group is named after its modules (unless it has a
    ``name``), so the learning-rate monitor logs ``lr-SGD/encoder.fc``. Parameters that no
    group names form a last group, ``other``, with the optimizer's defaults.

    Raises:
        ValueError: a group without ``params``, a name that matches no parameter, or a
            parameter that two groups claim.
    """
    named = list(named_parameters)
    owner: dict[str, int] = {}
    resolved = []
    for index, group in enumerate(groups):
        if "params" not in group:
            raise ValueError(f"param_groups[{index}] has no 'params' (module names): {dict(group)}")
        prefixes = [group["params"]] if isinstance(group["params"], str) else list(group["params"])
        for prefix in prefixes:
            matched = [name for name, _ in named if name == prefix or name.startswith(prefix + ".")]
            if not matched:
                modules = sorted({name.rsplit(".", 1)[0] for name, _ in named})
                raise ValueError(
                    f"param_groups[{index}]: {prefix!r} matches no parameter; modules with parameters: {modules}"
                )
            for name in matched:
                if owner.setdefault(name, index) != index:
                    raise ValueError(f"parameter {name} is in param_groups[{owner[name]}] and param_groups[{index}]")
        params = [p for name, p in named if owner.get(name) == index]
        resolved.append({"name": ", ".join(prefixes), **group, "params": params})
    rest = [p for name, p in named if name not in owner]
    if rest:
        resolved.append({"name": "other", "params": rest})
    return resolved


class SiameseModule(pl.LightningModule):
    """A Siamese network: one shared encoder, one head that compares embeddings.

    Args:
        encoder: maps images ``[B, C, H, W]`` to embeddings ``[B, D]`` and has
            ``embedding_dim``.
        head: a head class (or factory) called with the encoder's ``embedding_dim``,
            e.g. :class:`~lightning_siamese.models.heads.KochHead`; or a built head.
        optimizer: called with the parameters (Adam by default).
        lr_scheduler: called with the optimizer; stepped every epoch.
        param_groups: per-module optimizer settings, e.g. one group per layer with its own
            ``lr``, ``momentum`` and ``weight_decay`` as Koch et al. train (see
            :func:`resolve_param_groups`); ``None`` gives every parameter the optimizer's own.
        shot_reduction: how K > 1 shots of a way are combined in N-way evaluation:
            ``"mean"`` of the scores, ``"max"`` (nearest shot), or ``"prototype"`` (score
            against the mean shot embedding).
        hubness: lower each way's episode scores by how like the task's other ways its supports
            are (:class:`~lightning_siamese.evaluation.oneshot.SupportHubness`): validation, test
            and the end-of-run report alike. ``None``: plain nearest-support scores.
        eval_flip: outside training, embed each image as the mean of its embedding and its
            mirror image's (test-time augmentation for faces; not for writing, where a
            mirrored character is another character).
        eval_shift: outside training, average each image's embedding with those of its four
            copies shifted by this many pixels (up, down, left, right; edges replicated), a
            test-time augmentation against small misalignments (about +0.5 points on
            Omniglot one-shot at 1 px). 0 turns it off. With ``eval_flip`` the mirrors of
            all five are averaged too. It costs 5x the embedding time, so a recipe can leave
            it off while training and turn it on to evaluate a checkpoint.
        channels_last: keep the encoder's weights and inputs in channels-last memory order
            (faster convolutions on some GPUs and CPUs; see benchmarks/scale.py).
        compile: run the encoder through ``torch.compile`` (checkpoints keep the plain
            module's parameter names, so they load with or without it).
        threshold_rule: how validation fits the verification threshold (kept in checkpoints,
            applied at test and by ``lightning-siamese verify``): ``"accuracy"`` (the most
            accurate on the validation pairs), ``"eer"`` (the equal-error point) or ``"far"``
            (the lowest threshold whose false-accept rate is at most ``target_far``).
            ``val/acc`` and ``test/acc`` are the accuracy at that threshold.
        target_far: the false-accept rate of ``threshold_rule: far``, in (0, 1).
        openset: also score open-set N-way episodes (``<stage>/openset_*``): the same
            episodes plus unknown queries from classes outside each task's ways (its own
            alphabet in within-group tasks); a query whose best similarity is below a
            rejection threshold is answered "unknown" (see ``evaluation/openset.py``).
            Needs episodes: a verification data module (LFW, signatures) is refused at
            set-up; Lake's 20 runs (each holds only its own 20 ways) are scored closed-set.
        openset_fraction: the share of unknown queries in an open-set episode, in (0, 1).
        openset_far: the false-accept rate (unknown queries accepted) at which validation
            fits the rejection threshold, kept in checkpoints and applied at test.
        test_align: test-time alignment for the test stage (``lightning test``: the test
            episodes or Lake's runs; see :class:`~lightning_siamese.data.transforms.AlignmentViews`):
            every image is embedded under each view, and a query and a way score their best view
            pair, averaged over the symmetries. ``test/<name>_acc`` is then the aligned accuracy
            and ``test/<name>_acc_unaligned`` the plain one, from the same pass (the unmoved view);
            the loss, pair AUROC and open-set metrics stay plain (their thresholds were fitted on
            plain validation scores). Validation, every epoch, stays plain: alignment costs one
            embedding per view. Needs N-way episodes: a verification data module is refused.
    """

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
        self.head = head if isinstance(head, nn.Module) else head(encoder.embedding_dim)
        if self.head.embedding_dim != encoder.embedding_dim:
            raise ValueError(
                f"head expects {self.head.embedding_dim}-d embeddings but the encoder "
                f"produces {encoder.embedding_dim}-d"
            )
        if isinstance(encoder, EnsembleEncoder) and any(True for _ in self.head.parameters()):
            raise ValueError(
                f"an EnsembleEncoder trains each member with the head's loss on its own slice of the embedding, but "
                f"{type(self.head).__name__} has learned weights sized to the whole embedding: use a head without "
                f"weights (TripletHead, ContrastiveHead, PrototypicalHead)"
            )
        self.optimizer = optimizer
        self.lr_scheduler = lr_scheduler
        self.param_groups = param_groups
        if param_groups is not None:  # a misnamed module fails here, before any data loads
            resolve_param_groups(self.named_parameters(), param_groups)
        self.shot_reduction = shot_reduction
        self.hubness = hubness
        self.eval_flip = eval_flip
        if eval_shift < 0:
            raise ValueError(f"eval_shift must be a number of pixels >= 0, got {eval_shift}")
        self.eval_shift = eval_shift
        if threshold_rule not in THRESHOLD_RULES:
            raise ValueError(f"threshold_rule must be one of {THRESHOLD_RULES}, got {threshold_rule!r}")
        if threshold_rule == "far" and target_far is None:
            raise ValueError("threshold_rule 'far' needs target_far, a false-accept rate in (0, 1), e.g. 0.01")
        self.threshold_rule = threshold_rule
        self.target_far = None if target_far is None else check_far(target_far)
        self.openset = openset
        self.openset_fraction = check_unknown_fraction(openset_fraction)
        self.openset_far = check_far(openset_far, "openset_far")
        self.test_align = test_align
        self.openset_threshold: float | None = None  # fitted on validation, kept in checkpoints
        self.last_openset: dict[str, OpenSetResult] = {}
        self.channels_last = channels_last
        if channels_last:
            self.encoder.to(memory_format=torch.channels_last)
        # Kept out of the module tree (not a submodule), so state_dict names stay the encoder's.
        self.__dict__["_encode"] = torch.compile(self.encoder) if compile else self.encoder
        self.val_auroc = BinaryAUROC()
        self.test_auroc = BinaryAUROC()
        self._outputs: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.last_oneshot: dict[str, OneShotResult] = {}
        self.last_verification: dict[str, VerificationResult] = {}
        # Each stage's latest embedding table, in dataset order (for the training-health callback).
        self.last_embeddings: dict[str, torch.Tensor] = {}
        # The verification threshold chosen on the validation pairs; saved in checkpoints so
        # that `lightning test --ckpt_path` applies the threshold of that checkpoint.
        self.verification_threshold: float | None = None
        self.verification_threshold_rule: str | None = None  # how it was fitted, e.g. "far 0.01"
        # Signatures: the k of each writer's threshold mean - k std over its references (evaluation/writers.py).
        self.writer_threshold_k: float | None = None

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
        # Open-set scoring adds unknown queries to N-way episodes; a verification data module
        # (LFW, signatures) scores pair lists and has none, so `openset` would do nothing.
        task = getattr(self.trainer.datamodule, "task", "oneshot")
        if self.openset and task != "oneshot":
            raise ValueError(
                f"openset is on, but the data module {type(self.trainer.datamodule).__name__} is a {task} benchmark "
                f"(pairs, no N-way episodes to add unknown queries to): set model openset to false"
            )
        if self.test_align is not None and task != "oneshot":
            raise ValueError(
                f"test_align is set, but the data module {type(self.trainer.datamodule).__name__} is a {task} benchmark: "
                f"its threshold is fitted on plain validation scores, which aligned scores do not match; unset model test_align"
            )

    def on_fit_start(self) -> None:
        kind = getattr(self.trainer.datamodule, "batch_kind", None)
        if kind is not None and kind not in self.head.trains_on:
            raise ValueError(
                f"{type(self.head).__name__} trains on {' or '.join(self.head.trains_on)}, but the data "
                f"module's batch_kind is {kind!r}: set data batch_kind to one of {list(self.head.trains_on)}"
            )
        k = getattr(self.trainer.datamodule, "images_per_class", 2)
        if kind == "classes" and k < 2 and self.head.needs_positives:
            raise ValueError(
                f"{type(self.head).__name__} needs two images of a class in a batch (a positive pair), "
                f"but the data module's images_per_class is {k}: set it to 2 or more"
            )

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The head's loss on a batch of pairs, triplets or P x K classes (by its keys).

        Under mixed precision (``trainer.precision: bf16-mixed``) the encoder runs in low
        precision and the head in float32: bf16 keeps 8 bits of mantissa, too few for the
        distances, margins and scaled cosine logits the losses compare.
        """
        if "same" in batch:
            first, second = self.embed(torch.cat([batch["first"], batch["second"]])).float().chunk(2)  # one pass
            return self._head_loss(self.head.loss, first, second, same=batch["same"])
        if "anchor" in batch:
            anchor, positive, negative = self.embed(
                torch.cat([batch["anchor"], batch["positive"], batch["negative"]])
            ).float().chunk(3)
            return self._head_loss(self.head.triplet_loss, anchor, positive, negative)
        if "labels" in batch:
            embeddings = self.embed(batch["images"]).float()
            return self._head_loss(self.head.batch_loss, embeddings, labels=batch["labels"])
        raise ValueError(f"unknown training batch with keys {sorted(batch)}: expected pairs, triplets or classes")

    def _head_loss(self, loss: Callable[..., torch.Tensor], *embeddings: torch.Tensor, **targets: torch.Tensor) -> torch.Tensor:
        """A head loss on embeddings (positional) and labels (keywords), in float32.

        An :class:`~lightning_siamese.models.encoders.EnsembleEncoder` is trained member by
        member: the mean of the loss on each member's slice of the embeddings (and of the head's
        ``last_active_fraction``, which the training-health check reads).
        """
        with self._full_precision():
            if not isinstance(self.encoder, EnsembleEncoder):
                return loss(*embeddings, **targets)
            losses, active = [], []
            for members in zip(*(self.encoder.member_embeddings(e) for e in embeddings)):
                losses.append(loss(*members, **targets))
                active.append(getattr(self.head, "last_active_fraction", float("nan")))
            self.head.last_active_fraction = sum(active) / len(active)
            return torch.stack(losses).mean()

    def _full_precision(self) -> torch.autocast:
        return torch.autocast(self.device.type, enabled=False)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.training_loss(batch)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True)
        return loss

    def configure_optimizers(self):  # noqa: ANN201 - Lightning accepts several shapes
        if self.param_groups is None:
            optimizer = self.optimizer(self.parameters())
        else:
            optimizer = self.optimizer(resolve_param_groups(self.named_parameters(), self.param_groups))
        if self.lr_scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.lr_scheduler(optimizer), "interval": "epoch"}}

    # --- evaluation: embed each image once, then score episodes ----------------------

    def _stage_views(self, stage: str) -> AlignmentViews | None:
        return self.test_align if stage == "test" else None

    def _embed_stage(self, images: torch.Tensor, stage: str) -> torch.Tensor:
        """The stage's embeddings: plain, or (test with ``test_align``) every alignment view's side by side."""
        views = self._stage_views(stage)
        return self.embed(images) if views is None else views.embed(self.embed, images)

    def _collect(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> None:
        images, index = batch
        self._outputs.append((self._embed_stage(images, stage), index))

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._collect(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._collect(batch, "test")

    def predict_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        images, index = batch
        return {"embedding": self.embed(images), "index": index}

    def _embedding_table(self, dataset, stage: str) -> torch.Tensor:  # noqa: ANN001 - an EvaluationSet
        """Embeddings of every image of ``dataset``, in dataset order, from all ranks, in float32
        (under mixed precision the steps embed in bf16/fp16; scoring runs in full precision)."""
        embeddings = torch.cat([e for e, _ in self._outputs]).float()
        index = torch.cat([i for _, i in self._outputs])
        self._outputs.clear()
        if self.trainer.world_size > 1:
            embeddings = self.all_gather(embeddings).flatten(0, 1)
            index = self.all_gather(index).flatten()
        table = embeddings.new_zeros(len(dataset), embeddings.shape[-1])
        seen = torch.zeros(len(dataset), dtype=torch.bool, device=embeddings.device)
        table[index], seen[index] = embeddings, True
        missing = (~seen).nonzero().flatten()
        # limit_val_batches / fast_dev_run leave images out: embed them here (at the steps'
        # precision), so the episodes are always scored in full.
        with self.trainer.precision_plugin.forward_context():
            for chunk in missing.split(256) if len(missing) else ():
                images = torch.stack([dataset[int(i)][0] for i in chunk]).to(self.device)
                table[chunk] = self._embed_stage(images, stage).float()
        return table

    def _pair_loss(self, table: torch.Tensor, dataset) -> torch.Tensor | None:  # noqa: ANN001
        """The head's loss on the split's fixed pairs (or triplets, for triplet heads)."""
        if "pairs" in self.head.trains_on:
            first, second, same = (dataset.pairs[k].to(self.device) for k in ("first", "second", "same"))
            return self._head_loss(self.head.loss, table[first], table[second], same=same)
        if "triplets" in self.head.trains_on and dataset.triplets:
            anchor, positive, negative = (table[dataset.triplets[k].to(self.device)] for k in ("anchor", "positive", "negative"))
            return self._head_loss(self.head.triplet_loss, anchor, positive, negative)
        return None  # e.g. a triplet head scored on a pair list, or a classifying head: no loss to report

    def _evaluate(self, stage: str, auroc: BinaryAUROC) -> None:
        dataloaders = self.trainer.val_dataloaders if stage == "val" else self.trainer.test_dataloaders
        dataset = dataloaders.dataset
        if self.trainer.sanity_checking:  # a full evaluation here would only delay training
            self._outputs.clear()
            return
        table = self._embedding_table(dataset, stage)
        views = self._stage_views(stage)
        aligned = None
        if views is not None:  # the aligned rows score the episodes; their unmoved view is the plain table
            aligned = table
            table = aligned.unflatten(-1, (len(views), -1))[:, views.identity].clone()  # not a view of the wide table
        self.last_embeddings[stage] = table
        loss = self._pair_loss(table, dataset)
        metrics = {} if loss is None else {f"{stage}/loss": loss}
        if dataset.episodes is None:  # a verification benchmark: scored pairs, no episodes
            self._verify(stage, dataset, table, metrics)
            return
        first, second, same = (dataset.pairs[k].to(self.device) for k in ("first", "second", "same"))
        auroc.update(self.head.similarity(table[first], table[second]), same)
        per_task = episode_accuracies(table, dataset.episodes, self.head.similarity, self.shot_reduction, self.hubness)
        name = dataset.name  # "oneshot", or "lake_runs" for Lake's 20 runs
        unaligned = None
        if aligned is not None:
            unaligned = summarize(per_task, dataset.episodes)
            similarity = AlignedSimilarity.of(self.head.pairwise_similarity, views)
            per_task = episode_accuracies(aligned, dataset.episodes, similarity, self.shot_reduction, self.hubness)
            metrics[f"{stage}/{name}_acc_unaligned"] = unaligned.accuracy
            metrics[f"{stage}/{name}_ci95_unaligned"] = unaligned.ci95
        result = summarize(per_task, dataset.episodes)
        self.last_oneshot[stage] = result
        metrics[f"{stage}/pair_auroc"] = auroc.compute()
        metrics[f"{stage}/{name}_ci95"] = result.ci95
        if self.openset and dataset.task_names is None:
            metrics |= self._openset(stage, dataset, table)
        elif self.openset:
            rank_zero_warn(f"openset: {stage} scores Lake's runs closed-set (a run holds only its own 20 characters, none to leave out)")
        if stage == "val":
            metrics["hp_metric"] = result.accuracy  # the HPARAMS tab's metric column
        auroc.reset()
        # Every rank holds the same full table, so the values agree across ranks.
        sync = self.trainer.world_size > 1
        self.log_dict(metrics, sync_dist=sync)
        self.log(f"{stage}/{name}_acc", result.accuracy, prog_bar=True, sync_dist=sync)
        if dataset.task_names is not None and self.trainer.is_global_zero:
            self._report_named_tasks(f"{stage}/{name}_acc", dataset, per_task, views, unaligned)

    def _openset(self, stage: str, dataset, table: torch.Tensor) -> dict[str, float]:  # noqa: ANN001
        """Open-set metrics of the stage's episodes; validation fits the rejection threshold, test applies it."""
        episodes = dataset.episodes
        within_group = getattr(self.trainer.datamodule, "within_group", True)
        scores = score_with_unknowns(dataset.collection, episodes, table, self.head.similarity, self.shot_reduction,
                                     self.openset_fraction, within_group)
        if stage == "val":
            self.openset_threshold = rejection_threshold(scores, self.openset_far)
        threshold = self.openset_threshold
        if threshold is None:
            warnings.warn(
                f"no open-set rejection threshold (the model was never validated): {stage} fits one on its own "
                f"episodes at false-accept rate {self.openset_far:g}, which flatters the open-set accuracy"
            )
            threshold = rejection_threshold(scores, self.openset_far)
        result = evaluate_openset(scores, threshold, episodes)
        self.last_openset[stage] = result
        return {
            f"{stage}/openset_acc": result.open_acc,
            f"{stage}/openset_acc_ci95": result.open_ci95,
            f"{stage}/openset_auc": result.auc,
            f"{stage}/openset_auc_ci95": result.auc_ci95,
            f"{stage}/openset_closed_acc": result.closed_acc,
            f"{stage}/openset_threshold": result.threshold,
            f"{stage}/openset_false_accept": result.false_accept,
            f"{stage}/openset_false_reject": result.false_reject,
        }

    def _verify(self, stage: str, dataset, table: torch.Tensor, metrics: dict) -> None:  # noqa: ANN001
        """Verification metrics of a pair list: accuracy, AUC, EER, TAR@FAR, ROC, example pairs.

        Validation fits the threshold by ``threshold_rule`` and keeps it; the test stage
        applies it, so the test accuracy is not tuned on test pairs. ``<stage>/acc`` is the
        accuracy at that threshold.
        """
        first, second, same = (dataset.pairs[k].to(self.device) for k in ("first", "second", "same"))
        scores = self.head.similarity(table[first], table[second]).float().cpu()
        same = same.cpu()
        if stage == "val":
            self.verification_threshold = fit_threshold(scores, same, self.threshold_rule, self.target_far)
            self.verification_threshold_rule = self.threshold_rule + (f" {self.target_far:g}" if self.threshold_rule == "far" else "")
        threshold = self.verification_threshold
        if threshold is None:
            warnings.warn(
                f"no validation threshold (the model was never validated): {stage} accuracy uses the threshold "
                f"that is best on these {stage} pairs themselves, which flatters it"
            )
        result = verification_metrics(scores, same, threshold)
        self.last_verification[stage] = result
        if hasattr(dataset, "writer_scores"):  # signatures: also one threshold per writer, from its references
            normalized = dataset.writer_scores(table, self.head.similarity).cpu()
            if stage == "val":
                self.writer_threshold_k = fit_writer_k(normalized, same)
            metrics |= writer_metrics(stage, normalized, same, self.writer_threshold_k)
        metrics |= {
            f"{stage}/acc": result.accuracy,
            f"{stage}/threshold": result.threshold,
            f"{stage}/auc": result.auc,
            f"{stage}/eer": result.eer,
            **{f"{stage}/tar_at_far_{far:g}": tar for far, tar in result.tar_at_far.items()},
        }
        if self.head.probability:
            metrics[f"{stage}/acc_at_0.5"] = verification_metrics(scores, same, 0.5).accuracy
        folds = dataset.pairs.get("folds")
        if folds is not None and len(torch.unique(folds)) > 1:  # LFW View 2: the official 10-fold protocol
            mean, se, _ = kfold_accuracy(scores, same, folds)
            metrics |= {f"{stage}/kfold_acc": mean, f"{stage}/kfold_se": se}
        if stage == "val":
            metrics["hp_metric"] = result.accuracy
        self.log_dict(metrics, sync_dist=self.trainer.world_size > 1)
        if self.trainer.is_global_zero and not self.trainer.fast_dev_run:  # fast_dev_run writes nothing
            self._verification_report(stage, dataset, scores, same, result, metrics)

    def _run_dir(self) -> Path:
        run_dir = Path(self.trainer.log_dir or self.trainer.default_root_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        return run_dir

    def _verification_report(self, stage, dataset, scores, same, result, metrics) -> None:  # noqa: ANN001
        """ROC curve and the most confident right and wrong pairs, to TensorBoard and the run folder.

        ``roc_<stage>.png`` and ``pairs_<stage>.png`` are rewritten at each evaluation (for
        ``val``: the latest epoch); the test stage also writes ``verification_test.json``.
        """
        far, tar, _ = roc_curve(scores, same)
        title = f"{stage}: AUC {result.auc:.4f}, EER {result.eer:.2f}%, accuracy {result.accuracy:.2f}% ({result.n_pairs} pairs)"
        figure = roc_figure(far, tar, title)
        tiles = []
        for kind, i in confident_pairs(scores, same, result.threshold, per_kind=4):
            pair_first, pair_second = (to_float(dataset.collection.images[int(dataset.pairs[k][i])]) for k in ("first", "second"))
            colour = RIGHT if kind.startswith("right") else WRONG
            tiles.append(pair_tile(pair_first, pair_second, f"{kind} {float(scores[i]):.3f}", colour))
        grid = tile_grid(tiles)
        step = self.trainer.global_step
        for logger in (lg for lg in self.trainer.loggers if isinstance(lg, TensorBoardLogger)):
            logger.experiment.add_figure(f"{stage}/roc", figure, global_step=step, close=False)
            logger.experiment.add_image(f"{stage}/confident_pairs", grid, global_step=step)
        run_dir = self._run_dir()
        save_figure(figure, str(run_dir / f"roc_{stage}.png"))
        save_image(grid, str(run_dir / f"pairs_{stage}.png"))
        if stage == "test":
            record = {
                **result.as_dict(),
                "threshold_from": "validation" if self.verification_threshold is not None else "these test pairs",
                "threshold_rule": self.verification_threshold_rule,
                "metrics": {k: float(v) for k, v in metrics.items()},
                "pairs_file": getattr(dataset, "source", None),
                "checkpoint": str(self.trainer.ckpt_path),
            }
            path = run_dir / "verification_test.json"
            path.write_text(json.dumps(record, indent=2) + "\n")
            print(f"\nTest verification: {result}\n  written to {path}")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["verification_threshold"] = self.verification_threshold
        checkpoint["verification_threshold_rule"] = self.verification_threshold_rule
        checkpoint["openset_threshold"] = self.openset_threshold
        checkpoint["writer_threshold_k"] = self.writer_threshold_k
        if isinstance(getattr(self.head, "mined_loss", None), MinedTripletLoss):
            checkpoint["triplet_subset_state"] = self.head.mined_loss.subset_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.verification_threshold = checkpoint.get("verification_threshold")
        self.verification_threshold_rule = checkpoint.get("verification_threshold_rule")
        self.openset_threshold = checkpoint.get("openset_threshold")
        self.writer_threshold_k = checkpoint.get("writer_threshold_k")
        if "triplet_subset_state" in checkpoint and isinstance(getattr(self.head, "mined_loss", None), MinedTripletLoss):
            self.head.mined_loss.load_subset_state(checkpoint["triplet_subset_state"])

    def _report_named_tasks(
        self,
        metric: str,
        dataset,  # noqa: ANN001 - an EvaluationSet
        per_task: torch.Tensor,
        views: AlignmentViews | None = None,
        unaligned: OneShotResult | None = None,
    ) -> None:
        """Print the accuracy of each named task (Lake's runs) and write ``<name>.json`` in the run folder."""
        record = named_task_record(per_task, dataset.task_names, dataset.episodes)
        record["checkpoint"] = str(self.trainer.ckpt_path)
        if views is not None:
            metric += f" (aligned over {views})"
            record["align"] = views.as_dict()
            record["without_align"] = {"accuracy": unaligned.accuracy, "ci95": unaligned.ci95}
        path = self._run_dir() / f"{dataset.name}.json"
        path.write_text(json.dumps(record, indent=2) + "\n")
        print(f"\n{format_named_tasks(metric, record)}\n  written to {path}")

    def on_validation_epoch_end(self) -> None:
        self._evaluate("val", self.val_auroc)

    def on_test_epoch_end(self) -> None:
        self._evaluate("test", self.test_auroc)
