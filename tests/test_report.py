"""``lightning-siamese report``: folders that are not runs, a verification run's files (a real tiny run's report
is checked in ``test_sweep``, on the run its sweep trains)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from PIL import Image
from torch.utils.tensorboard import SummaryWriter

from lightning_siamese.cli.main import main as commands_main
from lightning_siamese.cli.tools.report import write_report
from lightning_siamese.inference.runs import ReportError, check_run_dir

PNG = b"\x89PNG\r\n\x1a\n"


def test_a_folder_that_is_not_a_run_is_refused_clearly(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(ReportError, match="nowhere: no such folder; expected a run folder"):
        check_run_dir(tmp_path / "nowhere")
    with pytest.raises(ReportError, match=r"is not a run folder: it has no config.yaml and no TensorBoard events"):
        check_run_dir(tmp_path)
    (tmp_path / "config.yaml").write_text("seed_everything: 0\n")
    with pytest.raises(ReportError, match="it has no TensorBoard events"):
        check_run_dir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        commands_main(["report", str(tmp_path)])
    assert exit_info.value.code == 2
    assert f"lightning-siamese report: error: {tmp_path} is not a run folder" in capsys.readouterr().err


def verification_run(run: Path) -> None:
    """A run folder as an LFW fit and test leave it: config, events (one value per epoch), test report, pair images."""
    run.mkdir(parents=True)
    config = {
        "seed_everything": 7,
        "trainer": {"max_epochs": 5},
        "model": {
            "class_path": "lightning_siamese.models.SiameseModule",
            "init_args": {
                "encoder": {"class_path": "lightning_siamese.models.KochEncoder", "init_args": {"input_size": 28}}
            },
        },
        "data": {"class_path": "lightning_siamese.data.LFWDataModule", "init_args": {"root": "nowhere"}},
        "checkpoint": {"monitor": "val/auc", "mode": "max"},
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    writer = SummaryWriter(str(run))
    writer.add_text("data/summary", "LFW images at nowhere  \n  training pairs: 2200")
    auc = [0.70, 0.80, 0.90, 0.85]  # best at epoch 2
    for epoch, value in enumerate(auc):
        step = (epoch + 1) * 10 - 1
        for tag, v in (
            ("epoch", epoch),
            ("val/auc", value),
            ("val/acc", 60 + 5 * epoch),
            ("val/loss", 1 - value),
            ("train/loss_epoch", 1.5 - 0.25 * epoch),
        ):
            writer.add_scalar(tag, v, step, walltime=1000 + 60 * epoch)
        writer.add_scalar("lr-Adam", 1e-3 * 0.5**epoch, epoch * 10, walltime=1000 + 60 * epoch)
    writer.close()
    test = {
        "accuracy": 75.0,
        "n_pairs": 400,
        "threshold": 0.42,
        "threshold_from": "validation",
        "auc": 0.83,
        "eer": 24.5,
        "tar_at_far": {"0.01": 0.2},
        "pairs_file": "lfw/pairsDevTest.txt",
        "checkpoint": "x.ckpt",
    }
    (run / "verification_test.json").write_text(json.dumps(test))
    for name in ("pairs_val.png", "roc_test.png"):
        Image.new("RGB", (8, 8)).save(run / name)


def test_a_verification_run_is_reported_from_its_own_files(tmp_path: Path) -> None:
    run = tmp_path / "logs" / "lfw" / "version_3"
    verification_run(run)
    out = tmp_path / "report"
    report = write_report(run, out, with_data=False).read_text()
    assert f"lightning fit --config {run / 'config.yaml'}" in report
    assert "| seed | 7 |" in report and "KochEncoder(input_size=28)" in report
    assert "training pairs: 2200" in report  # the data module's own summary, from TensorBoard
    assert "- 4 epochs (39 steps) of at most 5; wall time 0:03:00 (first to last logged event" in report
    assert "best val/auc 0.9 at epoch 2 after 0:02:00" in report
    assert "Stopped before max_epochs" in report
    assert "Final training loss (epoch mean): 0.75 (first epoch 1.5, lowest 0.75)" in report
    ci = 196 * math.sqrt(0.75 * 0.25 / 400)
    assert f"**accuracy 75.00% +- {ci:.2f}** (95% binomial CI) at threshold 0.4200 from validation" in report
    assert "TAR@FAR=0.01: 0.200" in report
    assert f"![pairs_val]({(run / 'pairs_val.png').resolve()})" in report  # --out elsewhere: absolute links
    assert "roc_test" in report and "## Saved config (`config.yaml`)" in report
    assert (out / "curves.png").read_bytes()[:8] == PNG
    assert not (run / "report.md").exists()  # --out leaves the run folder untouched


@pytest.mark.parametrize("max_epochs", [-1, None])  # None under max_time is Lightning's -1
def test_a_run_without_an_epoch_limit_says_so(tmp_path: Path, max_epochs: int | None) -> None:
    run = tmp_path / "version_0"
    verification_run(run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["trainer"] = {"max_epochs": max_epochs, "max_time": "00:00:56:00"}  # max_time ends the run (CosineOverTime)
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    report = write_report(run, tmp_path / "report", with_data=False).read_text()
    assert "- 4 epochs (39 steps) of no epoch limit; wall time 0:03:00" in report
    assert "Stopped before max_epochs" not in report
