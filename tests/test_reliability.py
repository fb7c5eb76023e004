"""Reliability: a NaN loss stops the run, bf16 mixed precision trains, seeded runs repeat, DDP agrees."""

from __future__ import annotations

import json
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
import yaml

from lightning_siamese.callbacks.checkpoint import RunCheckpoint, StopOnNonFiniteLoss
from lightning_siamese.models import SiameseModule
from tests.test_cli import run_cli, scalars, tiny_config
from tests.tiny import tiny_data, tiny_encoder

pytestmark = pytest.mark.slow


def write_config(tmp_path: Path, tiny_omniglot: Path, **trainer) -> Path:
    config = tiny_config(tiny_omniglot)
    config["trainer"] |= trainer
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class PoisonedModule(SiameseModule):
    """Its loss turns NaN at the second batch of the second epoch."""

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = super().training_step(batch, batch_idx)
        return loss * float("nan") if (self.current_epoch, batch_idx) == (1, 1) else loss


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path: Path, tiny_omniglot: Path) -> None:
    data = tiny_data(tiny_omniglot, pairs_per_epoch=32)
    encoder = tiny_encoder()
    checkpoint = RunCheckpoint(dirpath=tmp_path / "checkpoints", monitor="val/oneshot_acc", mode="max", save_last=True)
    trainer = pl.Trainer(
        max_epochs=3,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        callbacks=[checkpoint, StopOnNonFiniteLoss()],
        default_root_dir=tmp_path,
    )
    with pytest.raises(
        FloatingPointError,
        match=r"training loss is nan at epoch 1, batch 1.*Last good checkpoint: .*last.ckpt.*learning rate far too high",
    ):
        trainer.fit(PoisonedModule(encoder), datamodule=data)
    saved = torch.load(
        tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False
    )  # holds the encoder object
    assert saved["epoch"] == 0 and saved["global_step"] == 4  # the end of the last good epoch
    assert all(torch.isfinite(v).all() for v in saved["state_dict"].values() if v.is_floating_point())


def test_bf16_mixed_precision_trains_and_evaluates_in_float32(tmp_path: Path, tiny_omniglot: Path) -> None:
    config = write_config(tmp_path, tiny_omniglot, precision="bf16-mixed", accelerator="cpu")
    run_cli(tmp_path, "fit", "--config", str(config))
    logged = scalars(tmp_path / "logs" / "tiny" / "version_0")
    assert all(torch.isfinite(torch.tensor(v)) for _, v in logged["train/loss_epoch"] + logged["val/loss"])
    assert all(0 <= v <= 100 for _, v in logged["val/oneshot_acc"])


def test_two_runs_with_one_seed_give_identical_metrics(tmp_path: Path, tiny_omniglot: Path) -> None:
    results = []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        config = write_config(folder, tiny_omniglot, deterministic=True)
        run_cli(folder, "fit", "--config", str(config))
        logged = scalars(folder / "logs" / "tiny" / "version_0")
        results.append(
            {tag: [v for _, v in logged[tag]] for tag in ("train/loss_epoch", "val/loss", "val/oneshot_acc")}
        )
        results[-1]["report"] = json.loads((folder / "logs" / "tiny" / "version_0" / "oneshot_val.json").read_text())[
            "accuracy"
        ]
    assert results[0] == results[1]


def test_ddp_on_two_cpu_processes_gives_the_single_process_evaluation(tmp_path: Path, tiny_omniglot: Path) -> None:
    config = write_config(tmp_path, tiny_omniglot, accelerator="cpu")
    run_cli(tmp_path, "fit", "--config", str(config), "--trainer.max_epochs", "1")
    last = tmp_path / "logs" / "tiny" / "version_0" / "checkpoints" / "last.ckpt"
    metrics = {}
    for devices in ("1", "2"):
        strategy = ["--trainer.strategy", "ddp_spawn"] if devices == "2" else []
        result = run_cli(
            tmp_path,
            "validate",
            "--config",
            str(config),
            "--ckpt_path",
            str(last),
            "--trainer.devices",
            devices,
            *strategy,
        )
        rows = [line.replace("│", " ").split() for line in result.stdout.splitlines() if "val/" in line]
        metrics[devices] = {row[0]: float(row[1]) for row in rows if len(row) == 2}
    assert {"val/loss", "val/oneshot_acc", "val/pair_auroc"} <= set(metrics["1"])
    # Each rank embeds its share of the images; the gathered table, and so every metric, is the same.
    assert metrics["2"] == pytest.approx(metrics["1"])


def test_a_run_killed_mid_epoch_resumes_from_its_last_step_checkpoint(tmp_path: Path, tiny_omniglot: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import REPO

    config = tiny_config(tiny_omniglot)
    config["trainer"] |= {"max_epochs": 2, "accelerator": "cpu"}
    config["data"]["init_args"] |= {"pairs_per_epoch": 16 * 60}  # 60 steps per epoch
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    args = ["fit", "--config", str(path), "--checkpoint.every_n_train_steps", "10"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "lightning_siamese", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    last = tmp_path / "logs" / "tiny" / "version_0" / "checkpoints" / "last.ckpt"
    deadline = time.time() + 240
    while not last.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert last.exists(), "no step checkpoint appeared before the kill"
    killed = torch.load(last, map_location="cpu", weights_only=True)  # complete, not torn
    assert killed["epoch"] == 0 and 10 <= killed["global_step"] < 60  # killed in the middle of epoch 0
    assert not list(last.parent.glob("*.partial"))

    resumed = run_cli(tmp_path, *args, "--ckpt_path", "last")
    assert "Resuming from" in resumed.stdout
    final = torch.load(last, map_location="cpu", weights_only=True)
    assert final["epoch"] == 1 and final["global_step"] == 120  # the run ends where an unbroken one would
    assert sorted(p.name for p in (tmp_path / "logs" / "tiny").iterdir()) == ["version_0"]
    assert json.loads((last.parent.parent / "oneshot_val.json").read_text())["accuracy"] >= 0


def test_an_interrupted_save_leaves_the_previous_checkpoint_intact(tmp_path: Path) -> None:
    from types import SimpleNamespace

    target = tmp_path / "last.ckpt"
    target.write_bytes(b"the good checkpoint")

    def torn_save(path: str, weights_only: bool) -> None:
        Path(path).write_bytes(b"half a checkp")
        raise KeyboardInterrupt  # the process dies in the middle of writing

    trainer = SimpleNamespace(
        save_checkpoint=torn_save,
        is_global_zero=True,
        global_step=5,
        loggers=[],
        strategy=SimpleNamespace(barrier=lambda: None),
    )
    with pytest.raises(KeyboardInterrupt):
        RunCheckpoint(dirpath=tmp_path)._save_checkpoint(trainer, str(target))
    assert target.read_bytes() == b"the good checkpoint"

    trainer.save_checkpoint = lambda path, weights_only: Path(path).write_bytes(b"a new checkpoint")
    RunCheckpoint(dirpath=tmp_path)._save_checkpoint(trainer, str(target))
    assert target.read_bytes() == b"a new checkpoint" and not (tmp_path / "last.ckpt.partial").exists()
