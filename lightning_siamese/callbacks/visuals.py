"""Pictures of a run: t-SNE and the projector, example pairs in TensorBoard, predicted embeddings."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.loggers import TensorBoardLogger

from lightning_siamese.callbacks.figures import (
    NEUTRAL,
    RIGHT,
    WRONG,
    pair_tile,
    tile_grid,
    write_embedding_visuals,
)
from lightning_siamese.data import trainer_state
from lightning_siamese.data.datamodules.base import SiameseDataModule
from lightning_siamese.evaluation.projection import sample_classes
from lightning_siamese.models.embedding import embed_all
from lightning_siamese.models.module import SiameseModule


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
        if not self.classes or trainer.interrupted or trainer_state.fast_dev_run(trainer) or not trainer.is_global_zero:
            return
        data = cast(SiameseDataModule, trainer_state.datamodule(trainer))
        collection = sample_classes(data.split(self.split), self.classes, self.seed, self.groups)
        embeddings = embed_all(cast(SiameseModule, pl_module), collection.images, prepare=data.prepare)
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
    0.5 for heads whose similarity is a probability (``head.probability``, e.g. ``KochHead``); distance heads (score
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
        module = cast(SiameseModule, pl_module)
        dataset = trainer_state.stage_dataset(trainer, "val")
        first, second, same = (dataset.pairs[k] for k in ("first", "second", "same"))
        n_pos = int(same.sum())
        half = self.num_pairs // 2
        picks = torch.cat([torch.arange(min(half, n_pos)), torch.arange(n_pos, min(n_pos + half, len(same)))])
        x1 = torch.stack([dataset[int(i)][0] for i in first[picks]])
        x2 = torch.stack([dataset[int(i)][0] for i in second[picks]])
        was_training = module.training
        module.eval()
        scores = module.similarity(x1.to(module.device), x2.to(module.device)).float().cpu()
        module.train(was_training)
        threshold = self.threshold
        if threshold is None and module.head.probability:
            threshold = 0.5
        tiles = []
        for a, b, label, score in zip(x1, x2, same[picks], scores):
            caption = f"{'same' if label else 'diff'} {float(score):.2f}"
            right = threshold is not None and (float(score) >= threshold) == bool(label)
            colour = NEUTRAL if threshold is None else RIGHT if right else WRONG
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

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices) -> None:
        if not predictions:
            return
        dataset = trainer.predict_dataloaders.dataset
        embeddings = torch.cat([p["embedding"] for p in predictions]).cpu()
        index = torch.cat([p["index"] for p in predictions]).cpu()
        table = embeddings.new_zeros(len(dataset), embeddings.shape[-1])
        table[index] = embeddings
        collection = dataset.collection
        split = getattr(trainer_state.datamodule(trainer), "predict_split", "predict")
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
