"""Schedules: Koch et al.'s momentum ramp, and a cosine learning rate over the wall-clock budget."""

from __future__ import annotations

import math
from typing import cast

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Timer

from lightning_siamese.data import trainer_state


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
        timers = [
            c for c in trainer_state.callbacks(trainer) if isinstance(c, Timer) and c.time_remaining() is not None
        ]
        if not timers:
            raise ValueError('CosineOverTime needs a budget: set trainer.max_time (e.g. "00:00:56:00")')
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
        remaining = cast(float, self.timer.time_remaining())  # a float: on_fit_start kept only a timer with a budget
        elapsed = self.timer.time_elapsed()
        return min(elapsed / max(elapsed + remaining, 1e-9), 1.0)

    def factor(self, fraction: float) -> float:
        return self.floor + (1.0 - self.floor) * 0.5 * (1.0 + math.cos(math.pi * fraction))

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        # rank 0's clock: ranks computing their own rates would let DDP replicas drift apart
        factor = self.factor(trainer.strategy.broadcast(self.fraction()))
        for optimizer, rates in zip(trainer.optimizers, self.initial):
            for group, rate in zip(optimizer.param_groups, rates):
                group["lr"] = rate * factor
