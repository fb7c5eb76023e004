"""CosineOverTime: the learning rate follows the wall-clock budget, also across a resume."""

import math
from datetime import timedelta
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import Timer
from lightning.pytorch.trainer.states import RunningStage

from lightning_siamese.callbacks.schedules import CosineOverTime
from lightning_siamese.data.datamodules.omniglot import OmniglotDataModule
from lightning_siamese.models import KochHead, SiameseModule
from tests.tiny import tiny_data, tiny_encoder


class StepClock(Timer):
    """Lightning's Timer on a fake clock that advances one second per training step."""

    def __init__(self, seconds: int) -> None:
        super().__init__(duration=timedelta(seconds=seconds))
        self.steps = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.steps += 1
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def time_elapsed(self, stage: str = RunningStage.TRAINING) -> float:
        return self._offset + self.steps if stage == RunningStage.TRAINING else 0.0


class RateLog(pl.Callback):
    def __init__(self) -> None:
        self.seen: list[list[float]] = []

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer) -> None:
        self.seen.append([round(g["lr"], 6) for g in optimizer.param_groups])


def cosine(rate: float, t: float, floor: float = 0.0) -> float:
    return round(rate * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))), 6)


@pytest.fixture
def data(tiny_omniglot: Path) -> OmniglotDataModule:
    return tiny_data(tiny_omniglot)


def module(scheduler=None) -> SiameseModule:
    return SiameseModule(
        tiny_encoder(),
        head=KochHead,
        optimizer=lambda p: torch.optim.SGD(p, lr=0.1),
        param_groups=[{"params": "head", "lr": 0.4}],
        lr_scheduler=scheduler,
    )


def trainer(tmp_path: Path, callbacks: list, max_epochs: int = -1, **kwargs) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        default_root_dir=tmp_path,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=callbacks,
        **kwargs,
    )


def test_rate_follows_the_budget_per_group_and_the_budget_ends_the_run(
    data: OmniglotDataModule, tmp_path: Path
) -> None:
    log = RateLog()
    run = trainer(tmp_path, [StepClock(8), CosineOverTime(floor=0.1), log])
    run.fit(module(), datamodule=data)
    assert run.global_step == 8  # the 8-second budget, one second a step, ended the run
    assert log.seen == [[cosine(0.4, k / 8, 0.1), cosine(0.1, k / 8, 0.1)] for k in range(8)]


def test_a_resumed_run_continues_the_curve(data: OmniglotDataModule, tmp_path: Path) -> None:
    first = RateLog()
    run = trainer(tmp_path, [StepClock(8), CosineOverTime(), first], max_steps=3)
    run.fit(module(), datamodule=data)
    run.save_checkpoint(tmp_path / "three.ckpt")
    second = RateLog()
    trainer(tmp_path, [StepClock(8), CosineOverTime(), second]).fit(
        module(), datamodule=data, ckpt_path=tmp_path / "three.ckpt", weights_only=False
    )
    # the optimizer comes back at step 3's decayed rate; the curve restarts from the configured one
    assert first.seen + second.seen == [[cosine(0.4, k / 8), cosine(0.1, k / 8)] for k in range(8)]


def test_needs_a_budget_and_no_other_schedule(data: OmniglotDataModule, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="floor"):
        CosineOverTime(floor=1.5)
    with pytest.raises(ValueError, match="max_time"):
        trainer(tmp_path, [CosineOverTime()]).fit(module(), datamodule=data)
    with pytest.raises(ValueError, match="max_time"):  # a Timer without a duration is no budget
        trainer(tmp_path, [Timer(), CosineOverTime()]).fit(module(), datamodule=data)
    with pytest.raises(ValueError, match=r"set trainer.max_epochs to -1 \(got 5\)"):
        trainer(tmp_path, [StepClock(8), CosineOverTime()], max_epochs=5).fit(module(), datamodule=data)
    step = lambda optimizer: torch.optim.lr_scheduler.StepLR(optimizer, 1)  # noqa: E731 - a one-line scheduler factory, as the config would give
    with pytest.raises(ValueError, match="remove the model's lr_scheduler \\(StepLR\\)"):
        trainer(tmp_path, [StepClock(8), CosineOverTime()]).fit(module(step), datamodule=data)
