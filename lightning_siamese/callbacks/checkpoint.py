"""Checkpoints that resume where a run stopped, and a stop at the first non-finite loss."""

from __future__ import annotations

import logging
import os
from weakref import proxy

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from lightning_siamese.data import trainer_state

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

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
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
        if not trainer_state.fast_dev_run(trainer):
            super().on_train_end(trainer, pl_module)


class StopOnNonFiniteLoss(pl.Callback):
    """Stops training at the first NaN or infinite training loss, with a message that says why.

    The check runs after the optimizer step, so the weights of that step may be damaged, but
    the run ends there and no checkpoint is written after it: ``last.ckpt`` and the best
    checkpoint stay the last good ones. The usual causes are a learning rate far too high, or mixed precision
    overflowing.
    """

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
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
