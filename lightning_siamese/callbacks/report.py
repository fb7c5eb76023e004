"""Records of a run: each stage's files (ROC, example pairs, JSON) and the end-of-run one-shot report."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import cast

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from lightning_siamese.callbacks.figures import (
    RIGHT,
    WRONG,
    pair_tile,
    roc_figure,
    save_figure,
    save_image,
    tile_grid,
)
from lightning_siamese.data import trainer_state
from lightning_siamese.data.datamodules.base import SiameseDataModule
from lightning_siamese.data.samplers.episodes import Episodes
from lightning_siamese.data.transforms.views import AlignmentViews, to_float
from lightning_siamese.evaluation.oneshot import (
    AlignedSimilarity,
    evaluate_episodes,
    format_named_tasks,
    named_task_record,
)
from lightning_siamese.evaluation.openset import (
    OpenSetResult,
    evaluate_openset,
    score_with_unknowns,
)
from lightning_siamese.evaluation.verification import confident_pairs, roc_curve
from lightning_siamese.models.embedding import embed_aligned, embed_all
from lightning_siamese.models.module import SiameseModule


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
            raise ValueError(
                f"eval_shift must be a number of pixels >= 0 (or None: the module's own), got {eval_shift}"
            )
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
        if trainer.interrupted or trainer_state.fast_dev_run(trainer):
            return
        if getattr(trainer_state.datamodule(trainer), "task", "oneshot") != "oneshot":
            return  # a verification benchmark (LFW) has no episodes; its test stage reports it
        module = cast(SiameseModule, pl_module)
        checkpoint = getattr(trainer.checkpoint_callback, "best_model_path", "") if self.use_best else ""
        if checkpoint:
            state = torch.load(checkpoint, map_location=module.device, weights_only=True)
            module.load_state_dict(state["state_dict"])
            if "openset_threshold" in state:  # the threshold fitted with those weights
                module.openset_threshold = state["openset_threshold"]
        plain = None
        own_shift = getattr(module, "eval_shift", 0)
        if self.align is not None:
            plain = self.evaluate(trainer, module)
            self.report(trainer, self.evaluate(trainer, module, self.align), checkpoint or "final weights", plain)
            return
        if self.eval_shift is not None and self.eval_shift != own_shift:
            plain = self.evaluate(trainer, module)
            module.eval_shift = self.eval_shift
        try:
            result = self.evaluate(trainer, module)
        finally:
            module.eval_shift = own_shift
        self.report(trainer, result, checkpoint or "final weights", plain)

    def evaluate(self, trainer: pl.Trainer, pl_module: SiameseModule, align: AlignmentViews | None = None):
        data = cast(SiameseDataModule, trainer_state.datamodule(trainer))
        evaluation = data.evaluation_set(
            self.split, n_way=self.n_way, k_shot=self.k_shot, tasks=self.tasks, seed=self.seed
        )
        episodes = cast(Episodes, evaluation.episodes)  # an N-way data module's set (on_fit_end checks its task)
        # Embedded at the trainer's precision, as validation embeds (bf16-mixed: half the time of
        # float32 on a CPU, which matters for aligned views); scored in float32.
        images = evaluation.collection.images
        with trainer.precision_plugin.forward_context():
            embeddings = (
                embed_aligned(pl_module, images, align, prepare=data.prepare)
                if align is not None
                else embed_all(pl_module, images, prepare=data.prepare)
            ).float()
        if align is not None:  # open-set scores stay those of the plain embeddings, which fitted their threshold
            similarity = AlignedSimilarity.of(pl_module.head.pairwise_similarity, align)
            return evaluate_episodes(
                embeddings,
                episodes,
                similarity,
                pl_module.scoring.shot_reduction,
                pl_module.scoring.hubness,
                evaluation.collection,
                self.seed,
            )
        self.openset = None
        if pl_module.scoring.openset and pl_module.openset_threshold is not None:
            scores = score_with_unknowns(
                evaluation.collection,
                episodes,
                embeddings,
                pl_module.head.similarity,
                pl_module.scoring.shot_reduction,
                pl_module.scoring.openset_fraction,
                getattr(data, "within_group", True),
            )
            self.openset = evaluate_openset(scores, pl_module.openset_threshold, episodes)
        return evaluate_episodes(
            embeddings,
            episodes,
            pl_module.head.similarity,
            pl_module.scoring.shot_reduction,
            pl_module.scoring.hubness,
            evaluation.collection,
            self.seed,
        )

    @rank_zero_only
    def report(self, trainer: pl.Trainer, result, checkpoint: str, plain=None) -> None:
        record = {"split": self.split, **result.as_dict(), "checkpoint": str(checkpoint)}
        if plain is not None and self.align is not None:  # `result` aligned; `plain` the module's own embeddings
            record["align"] = self.align.as_dict()
            record["without_align"] = {"accuracy": plain.accuracy, "ci95": plain.ci95}
        elif plain is not None:  # `result` used this report's test-time shifts; `plain` the module's own setting
            record["eval_shift"] = self.eval_shift
            record["without_eval_shift"] = {"accuracy": plain.accuracy, "ci95": plain.ci95}
        hubness = cast(SiameseModule, trainer.lightning_module).scoring.hubness
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
        print(
            f"\nFinal one-shot evaluation on the {self.split} split: {result}{shifts}\n  checkpoint: {checkpoint}\n"
            f"  written to {path}"
        )


class StageRecords(pl.Callback):
    """Writes what a validation or test stage scored (``SiameseModule.stage_records``) to the run folder.

    - A pair list (LFW, signatures): ``roc_<stage>.png`` and ``pairs_<stage>.png`` (the ROC curve and
      the most confident right and wrong pairs), also to TensorBoard, rewritten at each evaluation
      (for ``val``: the latest epoch); the test stage also writes ``verification_test.json``. Not
      under ``fast_dev_run``, which writes nothing.
    - Named tasks (Lake's 20 runs): ``<name>.json`` with each run's accuracy, printed too.
    """

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.write(trainer, pl_module, "val")

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.write(trainer, pl_module, "test")

    def write(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        record = getattr(pl_module, "stage_records", {}).pop(stage, None)
        pairs = record is not None and record.pairs is not None and not trainer_state.fast_dev_run(trainer)
        tasks = record is not None and record.episodes is not None and record.dataset.task_names is not None
        if not (pairs or tasks):
            return
        log_dir = trainer.log_dir  # a collective under DDP: every rank asks, rank 0 writes
        if not trainer.is_global_zero:
            return
        run_dir = Path(log_dir or trainer.default_root_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        if pairs:
            self.write_pairs(trainer, pl_module, stage, record, run_dir)
        if tasks:
            self.write_named_tasks(trainer, stage, record, run_dir)

    @staticmethod
    def write_pairs(trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str, record, run_dir: Path) -> None:
        pairs, dataset = record.pairs, record.dataset
        result = pairs.result
        far, tar, _ = roc_curve(pairs.scores, pairs.same)
        title = f"{stage}: AUC {result.auc:.4f}, EER {result.eer:.2f}%, accuracy {result.accuracy:.2f}% ({result.n_pairs} pairs)"
        figure = roc_figure(far, tar, title)
        tiles = []
        for kind, i in confident_pairs(pairs.scores, pairs.same, result.threshold, per_kind=4):
            first, second = (to_float(dataset.collection.images[int(dataset.pairs[k][i])]) for k in ("first", "second"))
            colour = RIGHT if kind.startswith("right") else WRONG
            tiles.append(pair_tile(first, second, f"{kind} {float(pairs.scores[i]):.3f}", colour))
        grid = tile_grid(tiles)
        for logger in (lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)):
            logger.experiment.add_figure(f"{stage}/roc", figure, global_step=trainer.global_step, close=False)
            logger.experiment.add_image(f"{stage}/confident_pairs", grid, global_step=trainer.global_step)
        save_figure(figure, str(run_dir / f"roc_{stage}.png"))
        save_image(grid, str(run_dir / f"pairs_{stage}.png"))
        if stage != "test":
            return
        output = {
            **result.as_dict(),
            "threshold_from": "validation" if pl_module.verification_threshold is not None else "these test pairs",
            "threshold_rule": pl_module.verification_threshold_rule,
            "metrics": {k: float(v) for k, v in pairs.metrics.items()},
            "pairs_file": getattr(dataset, "source", None),
            "checkpoint": str(trainer.ckpt_path),
        }
        path = run_dir / "verification_test.json"
        path.write_text(json.dumps(output, indent=2) + "\n")
        print(f"\nTest verification: {result}\n  written to {path}")

    @staticmethod
    def write_named_tasks(trainer: pl.Trainer, stage: str, record, run_dir: Path) -> None:
        dataset, scores, views = record.dataset, record.episodes, record.views
        output = named_task_record(scores.per_task, dataset.task_names, dataset.episodes)
        output["checkpoint"] = str(trainer.ckpt_path)
        metric = f"{stage}/{dataset.name}_acc"
        if views is not None:
            metric += f" (aligned over {views})"
            output["align"] = views.as_dict()
            output["without_align"] = {"accuracy": scores.unaligned.accuracy, "ci95": scores.unaligned.ci95}
        path = run_dir / f"{dataset.name}.json"
        path.write_text(json.dumps(output, indent=2) + "\n")
        print(f"\n{format_named_tasks(metric, output)}\n  written to {path}")
