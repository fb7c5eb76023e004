"""The LightningModule: an encoder and a head, composed; training, logging, evaluation.

The maths lives elsewhere (``models/encoders.py``, ``models/heads.py``,
``evaluation/oneshot.py``); this wrapper wires it into Lightning's loops.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torchmetrics.classification import BinaryAUROC

from lightning_siamese.evaluation.oneshot import (
    OneShotResult,
    episode_accuracies,
    format_named_tasks,
    named_task_record,
    summarize,
)
from lightning_siamese.models.heads import KochHead, PairHead


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
    """

    def __init__(
        self,
        encoder: nn.Module,
        head: Callable[[int], PairHead] | PairHead = KochHead,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        param_groups: list[dict[str, Any]] | None = None,
        shot_reduction: str = "mean",
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
        self.optimizer = optimizer
        self.lr_scheduler = lr_scheduler
        self.param_groups = param_groups
        if param_groups is not None:  # a misnamed module fails here, before any data loads
            resolve_param_groups(self.named_parameters(), param_groups)
        self.shot_reduction = shot_reduction
        self.val_auroc = BinaryAUROC()
        self.test_auroc = BinaryAUROC()
        self._outputs: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.last_oneshot: dict[str, OneShotResult] = {}

    # --- the model ------------------------------------------------------------------

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images)

    def similarity(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """Similarity of two image batches (higher = more alike)."""
        return self.head.similarity(self.embed(first), self.embed(second))

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return self.similarity(first, second)

    # --- training -------------------------------------------------------------------

    def on_fit_start(self) -> None:
        kind = getattr(self.trainer.datamodule, "batch_kind", None)
        if kind is not None and kind not in self.head.trains_on:
            raise ValueError(
                f"{type(self.head).__name__} trains on {' or '.join(self.head.trains_on)}, but the data "
                f"module's batch_kind is {kind!r}: set data batch_kind to one of {list(self.head.trains_on)}"
            )

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The head's loss on a batch of pairs, triplets or P x K classes (by its keys)."""
        if "same" in batch:
            first, second = self.embed(torch.cat([batch["first"], batch["second"]])).chunk(2)  # one pass
            return self.head.loss(first, second, batch["same"])
        if "anchor" in batch:
            anchor, positive, negative = self.embed(
                torch.cat([batch["anchor"], batch["positive"], batch["negative"]])
            ).chunk(3)
            return self.head.triplet_loss(anchor, positive, negative)
        if "labels" in batch:
            return self.head.batch_loss(self.embed(batch["images"]), batch["labels"])
        raise ValueError(f"unknown training batch with keys {sorted(batch)}: expected pairs, triplets or classes")

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

    def _collect(self, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        images, index = batch
        self._outputs.append((self.embed(images), index))

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._collect(batch)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._collect(batch)

    def predict_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        images, index = batch
        return {"embedding": self.embed(images), "index": index}

    def _embedding_table(self, dataset) -> torch.Tensor:  # noqa: ANN001 - an EvaluationSet
        """Embeddings of every image of ``dataset``, in dataset order, from all ranks."""
        embeddings = torch.cat([e for e, _ in self._outputs])
        index = torch.cat([i for _, i in self._outputs])
        self._outputs.clear()
        if self.trainer.world_size > 1:
            embeddings = self.all_gather(embeddings).flatten(0, 1)
            index = self.all_gather(index).flatten()
        table = embeddings.new_zeros(len(dataset), embeddings.shape[-1])
        seen = torch.zeros(len(dataset), dtype=torch.bool, device=embeddings.device)
        table[index], seen[index] = embeddings, True
        missing = (~seen).nonzero().flatten()
        # limit_val_batches / fast_dev_run leave images out: embed them here, so the
        # episodes are always scored in full.
        for chunk in missing.split(256) if len(missing) else ():
            images = torch.stack([dataset[int(i)][0] for i in chunk]).to(self.device)
            table[chunk] = self.embed(images)
        return table

    def _evaluate(self, stage: str, auroc: BinaryAUROC) -> None:
        dataloaders = self.trainer.val_dataloaders if stage == "val" else self.trainer.test_dataloaders
        dataset = dataloaders.dataset
        if self.trainer.sanity_checking:  # a full evaluation here would only delay training
            self._outputs.clear()
            return
        table = self._embedding_table(dataset)
        first, second, same = (dataset.pairs[k].to(self.device) for k in ("first", "second", "same"))
        if "pairs" in self.head.trains_on:
            loss = self.head.loss(table[first], table[second], same)
        else:
            anchor, positive, negative = (table[dataset.triplets[k].to(self.device)] for k in ("anchor", "positive", "negative"))
            loss = self.head.triplet_loss(anchor, positive, negative)
        auroc.update(self.head.similarity(table[first], table[second]), same)
        per_task = episode_accuracies(table, dataset.episodes, self.head.similarity, self.shot_reduction)
        result = summarize(per_task, dataset.episodes)
        self.last_oneshot[stage] = result
        name = dataset.name  # "oneshot", or "lake_runs" for Lake's 20 runs
        metrics = {
            f"{stage}/loss": loss,
            f"{stage}/pair_auroc": auroc.compute(),
            f"{stage}/{name}_ci95": result.ci95,
        }
        if stage == "val":
            metrics["hp_metric"] = result.accuracy  # the HPARAMS tab's metric column
        auroc.reset()
        # Every rank holds the same full table, so the values agree across ranks.
        sync = self.trainer.world_size > 1
        self.log_dict(metrics, sync_dist=sync)
        self.log(f"{stage}/{name}_acc", result.accuracy, prog_bar=True, sync_dist=sync)
        if dataset.task_names is not None and self.trainer.is_global_zero:
            self._report_named_tasks(f"{stage}/{name}_acc", dataset, per_task)

    def _report_named_tasks(self, metric: str, dataset, per_task: torch.Tensor) -> None:  # noqa: ANN001
        """Print the accuracy of each named task (Lake's runs) and write ``<name>.json`` in the run folder."""
        record = named_task_record(per_task, dataset.task_names, dataset.episodes)
        record["checkpoint"] = str(self.trainer.ckpt_path)
        run_dir = Path(self.trainer.log_dir or self.trainer.default_root_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        path = run_dir / f"{dataset.name}.json"
        path.write_text(json.dumps(record, indent=2) + "\n")
        print(f"\n{format_named_tasks(metric, record)}\n  written to {path}")

    def on_validation_epoch_end(self) -> None:
        self._evaluate("val", self.val_auroc)

    def on_test_epoch_end(self) -> None:
        self._evaluate("test", self.test_auroc)
