"""RunCheckpoint keeps ``last.ckpt`` at the latest epoch, also when the metric stops improving; OneShotReport's
test-time shifts apply to the report alone."""

import json
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from lightning_siamese.callbacks.checkpoint import RunCheckpoint
from lightning_siamese.callbacks.report import OneShotReport
from lightning_siamese.models import KochHead, SiameseModule
from tests.tiny import tiny_data, tiny_encoder


def test_last_checkpoint_is_the_latest_epoch_without_improvement(tiny_omniglot: Path, tmp_path: Path) -> None:
    data = tiny_data(tiny_omniglot)
    encoder = tiny_encoder()
    frozen = SiameseModule(
        encoder, head=KochHead, optimizer=lambda p: torch.optim.SGD(p, lr=0.0)
    )  # metric never improves
    checkpoint = RunCheckpoint(dirpath=tmp_path, monitor="val/oneshot_acc", mode="max", save_last=True)
    trainer = pl.Trainer(
        max_epochs=3,
        accelerator="cpu",
        logger=False,
        callbacks=[checkpoint],
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(frozen, datamodule=data)
    assert "step=2" in checkpoint.best_model_path  # the first epoch stays the best
    last = torch.load(tmp_path / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == 6 and last["epoch"] == 2


def test_the_report_can_use_test_time_shifts_that_validation_does_not(tiny_omniglot: Path, tmp_path: Path) -> None:
    data = tiny_data(tiny_omniglot)
    torch.manual_seed(0)
    encoder = tiny_encoder()
    module = SiameseModule(encoder, head=KochHead)
    report = OneShotReport(tasks=40, seed=5, use_best=False, eval_shift=2)
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        callbacks=[report],
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=data)
    assert module.eval_shift == 0  # restored: the module (and its checkpoints) keep their own setting
    record = json.loads((tmp_path / "oneshot_val.json").read_text())
    module.eval()
    plain = report.evaluate(trainer, module)
    module.eval_shift = 2
    shifted = report.evaluate(trainer, module)
    assert record["eval_shift"] == 2 and record["accuracy"] == pytest.approx(shifted.accuracy)
    assert record["without_eval_shift"]["accuracy"] == pytest.approx(plain.accuracy)
    assert (
        shifted.accuracy != plain.accuracy
    )  # (seeded) the shifts change the embeddings, so the record tells them apart
    # The report's accuracy comes with intervals that resample whole characters (and alphabets, when the split has several).
    low, high = record["intervals"]["characters"]
    assert low <= record["accuracy"] <= high and high - low > 0
    assert record["intervals"] == shifted.intervals and set(record["intervals"]) <= {"characters", "alphabets"}
    with pytest.raises(ValueError, match="eval_shift must be a number of pixels >= 0"):
        OneShotReport(eval_shift=-1)
