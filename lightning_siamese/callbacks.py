"""Callbacks: end-of-run one-shot evaluation and t-SNE/projector, a TensorBoard grid of example pairs, Koch's momentum ramp, a wall-clock learning-rate schedule.

They call ``evaluation/`` and the data module; they hold no maths of their own.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict
from pathlib import Path
from weakref import proxy

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import BasePredictionWriter, ModelCheckpoint, Timer
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from lightning_siamese.data.transforms import AlignmentViews, to_float
from lightning_siamese.evaluation.figures import NEUTRAL, RIGHT, WRONG, pair_tile, tile_grid
from lightning_siamese.evaluation.oneshot import AlignedSimilarity, evaluate_episodes
from lightning_siamese.evaluation.openset import OpenSetResult, evaluate_openset, score_with_unknowns
from lightning_siamese.evaluation.projection import sample_classes, write_embedding_visuals
from lightning_siamese.models.heads import KochHead

log = logging.getLogger(__name__)


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose ``last.ckpt`` is always the latest epoch (or, with
    ``every_n_train_steps``, the latest such step), written atomically, and that, like the
    rest of Lightning, writes nothing under ``fast_dev_run``.

    Lightning 2.6 rewrites ``last.ckpt`` only in epochs that also save a best (top-k)
    checkpoint, so a run whose metric stopped improving (e.g. the 20 epochs before early
    stopping) would resume from its best epoch, not where it stopped. (And Lightning's own
    ``on_train_end`` writes ``last.ckpt`` even under ``fast_dev_run``, into the working
    directory, since a fast dev run has no logger folder.)
    """

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        """Write to ``<file>.partial``, then rename over the file: a save killed half-way never
        leaves a corrupt ``last.ckpt`` (a rename within a folder is atomic on POSIX)."""
        partial = f"{filepath}.partial"
        trainer.save_checkpoint(partial, self.save_weights_only)
        if trainer.is_global_zero and os.path.isfile(partial):
            os.replace(partial, filepath)
        trainer.strategy.barrier()
        # The rest is ModelCheckpoint._save_checkpoint's own bookkeeping (Lightning 2.6).
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.after_save_checkpoint(proxy(self))

    def _refresh_last(self, trainer: pl.Trainer) -> None:
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):  # skipped: saved at this step
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int) -> None:  # noqa: ANN001
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        # Lightning defers step saves until the monitored (validation) metric exists, so a run
        # killed in its first epoch would have nothing to resume from: last.ckpt is written anyway.
        n = self._every_n_train_steps
        if n >= 1 and trainer.global_step % n == 0:
            self._refresh_last(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._refresh_last(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._refresh_last(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.fast_dev_run:
            super().on_train_end(trainer, pl_module)


class StopOnNonFiniteLoss(pl.Callback):
    """Stops training at the first NaN or infinite training loss, with a message that says why.

    The check runs after the optimizer step, so the weights of that step may be damaged, but
    the run ends there and no checkpoint is written after it: ``last.ckpt`` and the best
    checkpoint stay the last good ones. The usual causes are a learning rate far too high, or mixed precision
    overflowing.
    """

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int) -> None:  # noqa: ANN001
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None or torch.isfinite(loss).all():
            return
        checkpoint = getattr(trainer.checkpoint_callback, "last_model_path", "") or "none written yet"
        raise FloatingPointError(
            f"the training loss is {float(loss)} at epoch {trainer.current_epoch}, batch {batch_idx} "
            f"(global step {trainer.global_step}): training stopped. Last good checkpoint: {checkpoint}. "
            f"Usual causes: a learning rate far too high (try 10x lower), mixed precision overflowing "
            f"(try trainer.precision: 32), or images with NaN values."
        )


class MomentumRamp(pl.Callback):
    """Koch et al.'s momentum schedule: every parameter group starts at ``start`` and moves
    linearly, epoch by epoch, to its own final momentum, which it keeps from epoch ``epochs`` on.

    The final values are the configured ones (e.g. per layer, see ``SiameseModule``'s
    ``param_groups``), read at fit start, before a resumed run restores the optimizer's
    saved (ramped) values; each epoch's momentum follows from the epoch number alone, so a
    resumed run continues the ramp where it stopped. Works with any optimizer whose groups
    have a ``momentum`` (SGD, RMSprop).
    """

    def __init__(self, start: float = 0.5, epochs: int = 40) -> None:
        if not 0.0 <= start <= 1.0:
            raise ValueError(f"start must be in [0, 1], got {start}")
        if epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {epochs}")
        self.start = start
        self.epochs = epochs
        self.final: list[list[float]] = []

    def momentum(self, final: float, epoch: int) -> float:
        return self.start + (final - self.start) * min(epoch / self.epochs, 1.0)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for optimizer in trainer.optimizers:
            if any("momentum" not in group for group in optimizer.param_groups):
                name = type(optimizer).__name__
                raise ValueError(f"MomentumRamp needs an optimizer with momentum (SGD, RMSprop), not {name}")
        self.final = [[group["momentum"] for group in optimizer.param_groups] for optimizer in trainer.optimizers]

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for optimizer, finals in zip(trainer.optimizers, self.final):
            for group, final in zip(optimizer.param_groups, finals):
                group["momentum"] = self.momentum(final, trainer.current_epoch)


class CosineOverTime(pl.Callback):
    """A cosine learning-rate schedule over the run's wall-clock budget, ``trainer.max_time``.

    An epoch-based cosine fits its budget only on the machine it was timed on: on a machine
    twice as slow, ``max_time`` stops the run halfway down the curve, at half the learning
    rate. This schedule is a function of elapsed time instead, so it reaches its floor as
    the budget runs out on any machine (the epochs that fit vary; the budget does not).
    Before every training step each parameter group's rate is set to
    ``lr * (floor + (1 - floor) * (1 + cos(pi * t)) / 2)``, where ``lr`` is the group's
    configured rate, read at fit start, and ``t`` is the elapsed fraction of the budget from
    Lightning's ``Timer``, whose clock is saved in checkpoints, so a resumed run continues
    the curve where it stopped (resuming with a larger ``max_time`` stretches the curve, so the
    rate jumps back up to where the longer curve would be).

    Args:
        floor: the final rate as a fraction of the configured one.
    """

    def __init__(self, floor: float = 0.0) -> None:
        if not 0.0 <= floor <= 1.0:
            raise ValueError(f"floor must be in [0, 1], got {floor}")
        self.floor = floor
        self.initial: list[list[float]] = []
        self.timer: Timer | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        timers = [c for c in trainer.callbacks if isinstance(c, Timer) and c.time_remaining() is not None]
        if not timers:
            raise ValueError("CosineOverTime needs a budget: set trainer.max_time (e.g. \"00:00:56:00\")")
        if trainer.max_epochs not in (None, -1):
            raise ValueError(
                f"CosineOverTime runs over trainer.max_time: set trainer.max_epochs to -1 (got {trainer.max_epochs}), "
                "or the epochs may end the run halfway down the curve"
            )
        if trainer.lr_scheduler_configs:
            raise ValueError(
                "CosineOverTime sets the learning rate itself: remove the model's lr_scheduler "
                f"({type(trainer.lr_scheduler_configs[0].scheduler).__name__})"
            )
        self.timer = timers[0]
        self.initial = [[group["lr"] for group in optimizer.param_groups] for optimizer in trainer.optimizers]

    def fraction(self) -> float:
        """The elapsed fraction of the budget, in [0, 1]."""
        assert self.timer is not None
        remaining = self.timer.time_remaining()
        elapsed = self.timer.time_elapsed()
        return min(elapsed / max(elapsed + remaining, 1e-9), 1.0)

    def factor(self, fraction: float) -> float:
        return self.floor + (1.0 - self.floor) * 0.5 * (1.0 + math.cos(math.pi * fraction))

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:  # noqa: ANN001
        # rank 0's clock: ranks computing their own rates would let DDP replicas drift apart
        factor = self.factor(trainer.strategy.broadcast(self.fraction()))
        for optimizer, rates in zip(trainer.optimizers, self.initial):
            for group, rate in zip(optimizer.param_groups, rates):
                group["lr"] = rate * factor


@torch.no_grad()
def embed_all(module: pl.LightningModule, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Embed uint8 images ``[N, C, H, W]`` in batches, in eval mode, on the module's device."""
    was_training = module.training
    module.eval()
    out = [
        module.embed(to_float(chunk.to(module.device)))
        for chunk in images.split(batch_size)
    ]
    module.train(was_training)
    return torch.cat(out)


@torch.no_grad()
def embed_aligned(module: pl.LightningModule, images: torch.Tensor, views: AlignmentViews, batch_size: int = 256) -> torch.Tensor:
    """Embed uint8 images under every alignment view, in eval mode: ``[N, len(views) * D]``, the embeddings side by side."""
    was_training = module.training
    module.eval()
    out = [views.embed(module.embed, to_float(chunk.to(module.device))) for chunk in images.split(batch_size)]
    module.train(was_training)
    return torch.cat(out)


class OneShotReport(pl.Callback):
    """After training, score the best checkpoint on fresh N-way K-shot episodes.

    The episodes are drawn with this callback's own seed (not the validation seed used
    for model selection), so the number is not inflated by selection. The result
    (mean, 95% CI, N, K, tasks, seed, checkpoint) is printed and written to
    ``oneshot_<split>.json`` in the run folder; with the module's ``openset`` on, so are the
    open-set metrics of the same episodes at the checkpoint's rejection threshold (``openset``).

    Args:
        split: ``"val"`` or ``"test"``.
        n_way, k_shot: the task; ``None`` takes the data module's.
        tasks: number of episodes.
        seed: the seed that fixes the episodes.
        use_best: load the best checkpoint's weights first (when there is one).
        eval_shift: test-time shifts for this report only (see ``SiameseModule.eval_shift``),
            so a run can validate every epoch without them (5x cheaper) and still report
            with them; the report then also gives the accuracy without them, on the same
            episodes. ``None`` keeps the module's own setting.
        align: test-time alignment for this report only (:class:`AlignmentViews`): a query and
            a support image score the best similarity over all pairs of their views. Like
            ``eval_shift``, the report then also gives the accuracy without it, on the same
            episodes; give one of the two. Scoring embeds every image once per view (31 by
            default; x 8 with the views' ``rotations`` and ``mirrors``), so the report takes
            that much longer.

    The report embeds at the trainer's precision, as validation does (bf16-mixed roughly halves
    the time of aligned views on a CPU), and scores in float32.
    """

    def __init__(
        self,
        split: str = "val",
        n_way: int | None = None,
        k_shot: int | None = None,
        tasks: int = 1000,
        seed: int = 1234,
        use_best: bool = True,
        eval_shift: int | None = None,
        align: AlignmentViews | None = None,
    ) -> None:
        if eval_shift is not None and eval_shift < 0:
            raise ValueError(f"eval_shift must be a number of pixels >= 0 (or None: the module's own), got {eval_shift}")
        if eval_shift is not None and align is not None:
            raise ValueError(
                f"give the report one test-time scheme, eval_shift ({eval_shift}) or align ({align}), not both; "
                "a module's own eval_shift still applies to every aligned view"
            )
        self.split = split
        self.n_way = n_way
        self.k_shot = k_shot
        self.tasks = tasks
        self.seed = seed
        self.use_best = use_best
        self.eval_shift = eval_shift
        self.align = align
        self.openset: OpenSetResult | None = None  # the last open-set result, when the module scores one

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.interrupted or trainer.fast_dev_run:
            return
        if getattr(trainer.datamodule, "task", "oneshot") != "oneshot":
            return  # a verification benchmark (LFW) has no episodes; its test stage reports it
        checkpoint = getattr(trainer.checkpoint_callback, "best_model_path", "") if self.use_best else ""
        if checkpoint:
            state = torch.load(checkpoint, map_location=pl_module.device, weights_only=True)
            pl_module.load_state_dict(state["state_dict"])
            if "openset_threshold" in state:  # the threshold fitted with those weights
                pl_module.openset_threshold = state["openset_threshold"]
        plain = None
        own_shift = getattr(pl_module, "eval_shift", 0)
        if self.align is not None:
            plain = self.evaluate(trainer, pl_module)
            self.report(trainer, self.evaluate(trainer, pl_module, self.align), checkpoint or "final weights", plain)
            return
        if self.eval_shift is not None and self.eval_shift != own_shift:
            plain = self.evaluate(trainer, pl_module)
            pl_module.eval_shift = self.eval_shift
        try:
            result = self.evaluate(trainer, pl_module)
        finally:
            pl_module.eval_shift = own_shift
        self.report(trainer, result, checkpoint or "final weights", plain)

    def evaluate(self, trainer: pl.Trainer, pl_module: pl.LightningModule, align: AlignmentViews | None = None):  # noqa: ANN201
        data = trainer.datamodule
        evaluation = data.evaluation_set(self.split, n_way=self.n_way, k_shot=self.k_shot, tasks=self.tasks, seed=self.seed)
        # Embedded at the trainer's precision, as validation embeds (bf16-mixed: half the time of
        # float32 on a CPU, which matters for aligned views); scored in float32.
        images = evaluation.collection.images
        hubness = getattr(pl_module, "hubness", None)  # the module's own scoring rule, as validation scores
        with trainer.precision_plugin.forward_context():
            embeddings = (embed_aligned(pl_module, images, align) if align is not None else embed_all(pl_module, images)).float()
        if align is not None:  # open-set scores stay those of the plain embeddings, which fitted their threshold
            similarity = AlignedSimilarity.of(pl_module.head.pairwise_similarity, align)
            return evaluate_episodes(embeddings, evaluation.episodes, similarity, pl_module.shot_reduction, hubness)
        self.openset = None
        if getattr(pl_module, "openset", False) and pl_module.openset_threshold is not None:
            scores = score_with_unknowns(evaluation.collection, evaluation.episodes, embeddings, pl_module.head.similarity,
                                         pl_module.shot_reduction, pl_module.openset_fraction, getattr(data, "within_group", True))
            self.openset = evaluate_openset(scores, pl_module.openset_threshold, evaluation.episodes)
        return evaluate_episodes(embeddings, evaluation.episodes, pl_module.head.similarity, pl_module.shot_reduction, hubness)

    @rank_zero_only
    def report(self, trainer: pl.Trainer, result, checkpoint: str, plain=None) -> None:  # noqa: ANN001
        record = {"split": self.split, **result.as_dict(), "checkpoint": str(checkpoint)}
        if plain is not None and self.align is not None:  # `result` aligned; `plain` the module's own embeddings
            record["align"] = self.align.as_dict()
            record["without_align"] = {"accuracy": plain.accuracy, "ci95": plain.ci95}
        elif plain is not None:  # `result` used this report's test-time shifts; `plain` the module's own setting
            record["eval_shift"] = self.eval_shift
            record["without_eval_shift"] = {"accuracy": plain.accuracy, "ci95": plain.ci95}
        hubness = getattr(trainer.lightning_module, "hubness", None)
        if hubness is not None:
            record["hubness"] = asdict(hubness)
        if self.openset is not None:
            record["openset"] = self.openset.as_dict()
            print(f"\nFinal open-set evaluation on the {self.split} split: {self.openset}")
        run_dir = Path(trainer.log_dir or trainer.default_root_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        path = run_dir / f"oneshot_{self.split}.json"
        path.write_text(json.dumps(record, indent=2) + "\n")
        scheme = f"alignment over {self.align}" if self.align is not None else f"eval_shift {self.eval_shift}"
        shifts = f" with {scheme} (without: {plain.accuracy:.2f}% +- {plain.ci95:.2f})" if plain else ""
        print(f"\nFinal one-shot evaluation on the {self.split} split: {result}{shifts}\n  checkpoint: {checkpoint}\n"
              f"  written to {path}")


class EmbeddingProjector(pl.Callback):
    """After training, a t-SNE picture and TensorBoard's projector of ``classes`` classes of ``split``.

    Writes ``tsne_<split>.png`` in the run folder and, to TensorBoard, the figure
    (``<split>/tsne``) and the embeddings with class names and image thumbnails (the
    PROJECTOR tab). It embeds with the weights the run ends with: the best checkpoint's when
    ``oneshot_report`` loaded them. Off while ``classes`` is 0 (the default); the same pictures
    of any checkpoint come from ``lightning-siamese tsne``.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        classes: how many classes to show, drawn with ``seed`` (bounded: t-SNE and the
            sprite sheet grow with every image of every class shown).
        groups: draw the classes from these groups only (Omniglot: alphabets).
        seed: the seed of the class draw and of t-SNE.
    """

    def __init__(self, split: str = "val", classes: int = 0, groups: list[str] | None = None, seed: int = 0) -> None:
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
        if classes < 0:
            raise ValueError(f"classes must be >= 0 (0 is off), got {classes}")
        self.split, self.classes, self.groups, self.seed = split, classes, groups, seed

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.classes or trainer.interrupted or trainer.fast_dev_run or not trainer.is_global_zero:
            return
        collection = sample_classes(trainer.datamodule.split(self.split), self.classes, self.seed, self.groups)
        embeddings = embed_all(pl_module, collection.images)
        writer = next((lg.experiment for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)
        run = Path(trainer.log_dir or trainer.default_root_dir)
        png = run / f"tsne_{self.split}.png"
        model = f"{run.parent.name}/{run.name}"  # e.g. omniglot_cpu/version_0
        write_embedding_visuals(writer, png, self.split, embeddings, collection, trainer.global_step, self.seed, model)
        print(f"t-SNE of {collection.num_classes} {self.split} classes written to {png}")


class PairGridLogger(pl.Callback):
    """Logs a grid of validation pairs, each captioned with its label and predicted similarity.

    Half the pairs are same-class, half different; a caption is green when the score
    lands on the right side of ``threshold``, red otherwise. By default the threshold is
    0.5 for heads whose similarity is a probability (``KochHead``); distance heads (score
    ``-d``) have no natural threshold, so their captions stay white unless one is given.
    """

    def __init__(self, num_pairs: int = 16, threshold: float | None = None) -> None:
        self.num_pairs = num_pairs
        self.threshold = threshold

    @torch.no_grad()
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        loggers = [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
        if not loggers:
            return
        dataset = trainer.val_dataloaders.dataset
        first, second, same = (dataset.pairs[k] for k in ("first", "second", "same"))
        n_pos = int(same.sum())
        half = self.num_pairs // 2
        picks = torch.cat([torch.arange(min(half, n_pos)), torch.arange(n_pos, min(n_pos + half, len(same)))])
        x1 = torch.stack([dataset[int(i)][0] for i in first[picks]])
        x2 = torch.stack([dataset[int(i)][0] for i in second[picks]])
        was_training = pl_module.training
        pl_module.eval()
        scores = pl_module.similarity(x1.to(pl_module.device), x2.to(pl_module.device)).float().cpu()
        pl_module.train(was_training)
        threshold = self.threshold
        if threshold is None and isinstance(pl_module.head, KochHead):
            threshold = 0.5
        tiles = []
        for a, b, label, score in zip(x1, x2, same[picks], scores):
            caption = f"{'same' if label else 'diff'} {float(score):.2f}"
            if threshold is None:
                colour = NEUTRAL
            else:
                colour = RIGHT if (float(score) >= threshold) == bool(label) else WRONG
            tiles.append(pair_tile(a, b, caption, colour))
        grid = tile_grid(tiles)
        for logger in loggers:
            logger.experiment.add_image("val/pairs", grid, global_step=trainer.global_step)


class EmbeddingWriter(BasePredictionWriter):
    """Saves what ``lightning predict`` computes: ``embeddings_<split>.pt`` in the run folder.

    The file holds ``embeddings`` ``[N, D]`` in the split's image order, with ``labels``,
    ``class_names`` and ``paths`` of the images.
    """

    def __init__(self) -> None:
        super().__init__(write_interval="epoch")

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices) -> None:  # noqa: ANN001
        if not predictions:
            return
        dataset = trainer.predict_dataloaders.dataset
        embeddings = torch.cat([p["embedding"] for p in predictions]).cpu()
        index = torch.cat([p["index"] for p in predictions]).cpu()
        table = embeddings.new_zeros(len(dataset), embeddings.shape[-1])
        table[index] = embeddings
        collection = dataset.collection
        split = getattr(trainer.datamodule, "predict_split", "predict")
        run_dir = Path(trainer.log_dir or trainer.default_root_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        path = run_dir / f"embeddings_{split}.pt"
        torch.save(
            {
                "embeddings": table,
                "labels": collection.labels.clone(),
                "class_names": collection.class_names,
                "paths": collection.paths,
            },
            path,
        )
        print(f"Wrote {len(table)} embeddings of the {split} split to {path}")
