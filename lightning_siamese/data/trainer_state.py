"""Typed reads of what Lightning sets on a running Trainer, for the data modules, the model and the callbacks.

Lightning's connectors assign ``trainer.datamodule``, ``trainer.fast_dev_run``, ``trainer.overfit_batches``
and ``trainer.callbacks`` from outside the ``Trainer`` class, so a type checker does not know them: they are
read here, in one place, and given their types. A stage's data loader is ``None`` outside the stage; read in
that stage's hooks, :func:`stage_dataset` gives its dataset.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import lightning.pytorch as pl
from torch.utils.data import DataLoader

if TYPE_CHECKING:  # the data modules import this module
    from lightning_siamese.data.datamodules.base import EvaluationSet


def _set_by_connector(trainer: pl.Trainer, name: str) -> Any:
    """An attribute a connector assigns to the trainer (plain attribute access, untyped)."""
    return getattr(trainer, name)


def datamodule(trainer: pl.Trainer) -> pl.LightningDataModule | None:
    """The data module of the running ``fit``/``validate``/``test``/``predict`` (``None`` without one)."""
    return _set_by_connector(trainer, "datamodule")


def fast_dev_run(trainer: pl.Trainer) -> int | bool:
    """The trainer's ``fast_dev_run`` setting (truthy: a smoke test that writes nothing)."""
    return _set_by_connector(trainer, "fast_dev_run")


def overfit_batches(trainer: pl.Trainer) -> int | float:
    """The trainer's ``overfit_batches`` setting (truthy: Lightning swaps in sequential samplers)."""
    return _set_by_connector(trainer, "overfit_batches")


def callbacks(trainer: pl.Trainer) -> list[pl.Callback]:
    """The trainer's callbacks."""
    return _set_by_connector(trainer, "callbacks")


def stage_dataset(trainer: pl.Trainer, stage: str) -> EvaluationSet:
    """The evaluation set behind the ``"val"`` or ``"test"`` stage's data loader, read in that stage's hooks
    (Lightning sets the stage's loader for the stage: ``None`` only outside it)."""
    loader = cast(DataLoader, trainer.val_dataloaders if stage == "val" else trainer.test_dataloaders)
    return cast("EvaluationSet", loader.dataset)
