"""LFW end to end through the real ``lightning`` command: fit, test, the report files, resume."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lightning_siamese.cli import main as commands
from lightning_siamese.inference.images import read_image
from lightning_siamese.inference.model import load_trained
from tests.conftest import REPO
from tests.data.test_lfw_datamodule import write_lfw
from tests.test_cli import run_cli, scalars

pytestmark = pytest.mark.slow

# The shipped configs, shrunk to the tiny synthetic LFW (28 px, 2 epochs).
SMALL_KOCH = [
    "--model.encoder.init_args.input_size",
    "28",
    "--model.encoder.init_args.kernel_sizes",
    "[3, 3, 2, 2]",
    "--model.encoder.init_args.channels",
    "[4, 8, 8, 16]",
    "--model.encoder.init_args.embedding_dim",
    "32",
    "--data.image_size",
    "28",
    "--data.batch_size",
    "4",
]


def fit_args(root: Path, config: str, *extra: str) -> list[str]:
    return [
        "fit",
        "--config",
        str(REPO / "experiments" / config),
        "--data.root",
        str(root),
        "--trainer.max_epochs",
        "2",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.logger.init_args.save_dir",
        "logs",
        *extra,
    ]


def test_seed_protocol_fits_tests_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = write_lfw(tmp_path / "lfw")
    run_cli(tmp_path, *fit_args(root, "lfw.yaml", *SMALL_KOCH))
    run = tmp_path / "logs" / "lfw" / "version_0"
    logged = scalars(run)
    for tag in ("val/loss", "val/acc", "val/acc_at_0.5", "val/auc", "val/eer", "val/tar_at_far_0.01", "val/threshold"):
        assert len(logged[tag]) == 2, f"{tag}: {logged.get(tag)}"
    assert all(0 <= v <= 100 for _, v in logged["val/acc"]) and all(0 <= v <= 1 for _, v in logged["val/auc"])
    events = EventAccumulator(str(run), size_guidance={"images": 0})
    events.Reload()
    assert {"val/roc", "val/confident_pairs"} <= set(events.Tags()["images"])
    assert (run / "roc_val.png").stat().st_size > 0 and (run / "pairs_val.png").stat().st_size > 0

    # The checkpoint keeps the threshold chosen on validation; the test stage applies it.
    last = run / "checkpoints" / "last.ckpt"
    saved = torch.load(last, map_location="cpu", weights_only=True)
    assert saved["verification_threshold"] == pytest.approx(logged["val/threshold"][-1][1])
    tested = run_cli(
        tmp_path,
        "test",
        "--config",
        str(REPO / "experiments" / "lfw.yaml"),
        "--data.root",
        str(root),
        "--trainer.logger.init_args.save_dir",
        "logs",
        "--ckpt_path",
        str(last),
        *SMALL_KOCH,
    )
    assert "test/auc" in tested.stdout and "test/acc_at_0.5" in tested.stdout
    reports = sorted((tmp_path / "logs" / "lfw").glob("version_*/verification_test.json"))
    assert len(reports) == 1
    report = json.loads(reports[0].read_text())
    assert report["n_pairs"] == 8 and report["threshold_from"] == "validation"
    assert report["threshold"] == pytest.approx(saved["verification_threshold"])
    assert report["pairs_file"].endswith("pairsDevTest.txt")
    assert (reports[0].parent / "roc_test.png").exists() and (reports[0].parent / "pairs_test.png").exists()
    # Without a logger there is no run folder: the figures go to default_root_dir, as checkpoints would.
    run_cli(
        tmp_path,
        "validate",
        "--config",
        str(REPO / "experiments" / "lfw.yaml"),
        "--data.root",
        str(root),
        "--trainer.logger",
        "false",
        "--trainer.default_root_dir",
        "plain",
        "--ckpt_path",
        str(last),
        *SMALL_KOCH,
    )
    assert (tmp_path / "plain" / "roc_val.png").exists() and not (tmp_path / "roc_val.png").exists()

    # verify: two image files, prepared like the data module's, at the stored threshold. One run
    # through the real command line; the other commands run in this process (same code, no
    # interpreter start-up each).
    first, second = (root / "lfw2" / "PA_Q" / "PA_Q_0001.jpg"), (root / "lfw2" / "PB_Q" / "PB_Q_0001.jpg")
    verify = ["verify", str(first), str(second), "--ckpt", str(last)]
    result = subprocess.run(
        [sys.executable, "-m", "lightning_siamese.cli.main", *verify],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    line = result.stdout.strip().splitlines()[-1]
    score = float(line.split("score ")[1].split(",")[0])
    assert f"threshold {saved['verification_threshold']:.4f} from validation" in line
    assert line.endswith("SAME" if score >= saved["verification_threshold"] else "DIFFERENT")
    commands.main([*verify, "--threshold", "-1"])
    forced = capsys.readouterr().out.strip()
    assert forced.endswith("SAME") and "from --threshold" in forced

    # embed and export: the files give the checkpoint's own embeddings.
    model, data = load_trained(str(last))
    expected = model.embed(torch.cat([read_image(str(p), data) for p in (first, second)])).detach()
    for output in ("e.npz", "e.csv"):
        commands.main(["embed", str(first), str(second), "--ckpt", str(last), "--output", str(tmp_path / output)])
    saved_npz = np.load(tmp_path / "e.npz")
    assert list(saved_npz["paths"]) == [str(first), str(second)]
    assert np.allclose(saved_npz["embeddings"], expected.numpy(), atol=1e-5)
    csv_rows = (tmp_path / "e.csv").read_text().splitlines()
    assert csv_rows[0].startswith("path,e0,e1") and len(csv_rows) == 3
    assert np.allclose([float(v) for v in csv_rows[1].split(",")[1:]], expected[0].numpy(), atol=1e-4)
    batch = torch.rand(5, 1, 28, 28)
    for output in ("encoder.pt", "encoder.onnx"):
        commands.main(["export", "--ckpt", str(last), "--output", str(tmp_path / output)])
    scripted = torch.jit.load(str(tmp_path / "encoder.pt"))
    assert torch.allclose(scripted(batch), model.embed(batch).detach(), atol=1e-5)
    import onnxruntime

    session = onnxruntime.InferenceSession(str(tmp_path / "encoder.onnx"))
    (onnx_out,) = session.run(None, {"images": batch.numpy()})
    assert np.allclose(onnx_out, model.embed(batch).detach().numpy(), atol=1e-4)
    with pytest.raises(FileNotFoundError, match="nowhere does not exist"):
        commands.main(["embed", str(tmp_path / "nowhere"), "--ckpt", str(last), "--output", str(tmp_path / "x.npz")])
    with pytest.raises(FileNotFoundError, match=r"nobody.jpg does not exist"):
        commands.main(["verify", str(root / "nobody.jpg"), str(second), "--ckpt", str(last)])


def test_best_config_trains_cosface_on_the_training_people(tmp_path: Path) -> None:
    root = write_lfw(tmp_path / "lfw")
    small = [
        "--model.encoder.init_args.input_size",
        "32",
        "--model.encoder.init_args.channels",
        "[4, 8]",
        "--model.encoder.init_args.embedding_dim",
        "16",
        "--data.image_size",
        "32",
        "--data.crop",
        "200",
        "--data.batch_size",
        "4",
        "--data.pairs_per_epoch",
        "16",
        "--data.eval_batch_size",
        "8",
    ]
    too_few = run_cli(
        tmp_path, *fit_args(root, "lfw_best.yaml", *small, "--model.head.init_args.num_classes", "2"), check=False
    )
    assert too_few.returncode != 0 and "beyond CosFaceHead's num_classes=2" in too_few.stderr
    result = run_cli(tmp_path, *fit_args(root, "lfw_best.yaml", *small, "--model.head.init_args.num_classes", "12"))
    assert "training on" in result.stdout and "validation people" in result.stdout
    runs = sorted((tmp_path / "logs" / "lfw_best").glob("version_*"))
    logged = scalars(runs[-1])
    assert len(logged["val/auc"]) == 2 and "val/acc_at_0.5" not in logged  # cosine scores: no 0.5 threshold
    assert list((runs[-1] / "checkpoints").glob("epoch=*auc=*.ckpt"))


def test_view2_runs_each_fold_and_reports_mean_and_standard_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_lfw(tmp_path / "lfw")
    # The protocol runs in this process; each fold's fit and test are real `lightning` subprocesses.
    monkeypatch.chdir(tmp_path)
    command = [
        "view2",
        "--config",
        str(REPO / "experiments" / "lfw.yaml"),
        "--folds",
        "1,2",
        "--save_dir",
        "logs",
        "--data.root",
        str(root),
        "--trainer.max_epochs",
        "1",
        "--trainer.enable_progress_bar",
        "false",
        "--data.val_fraction",
        "0.34",
        *SMALL_KOCH,
    ]
    commands.main(command)
    summary = json.loads((tmp_path / "logs" / "lfw_view2" / "view2.json").read_text())
    accuracies = [f["accuracy"] for f in summary["folds"]]
    assert summary["completed"] == 2 and summary["accuracy"] == pytest.approx(sum(accuracies) / 2)
    assert summary["standard_error"] == pytest.approx(abs(accuracies[0] - accuracies[1]) / 2)
    for fold in (1, 2):
        report = json.loads(
            (tmp_path / "logs" / "lfw_view2" / f"fold{fold}_test" / "verification_test.json").read_text()
        )
        assert report["n_pairs"] == 6 and report["threshold_from"] == "validation"
    written = {
        p: p.stat().st_mtime_ns for p in (tmp_path / "logs").rglob("*") if p.is_file() and p.name != "view2.json"
    }
    commands.main(command)
    after = {p: p.stat().st_mtime_ns for p in (tmp_path / "logs").rglob("*") if p.is_file() and p.name != "view2.json"}
    assert after == written  # finished folds are neither trained nor tested again
    assert json.loads((tmp_path / "logs" / "lfw_view2" / "view2.json").read_text())["accuracy"] == summary["accuracy"]


def test_a_verification_run_that_stops_before_its_first_validation_ends_normally(tmp_path: Path) -> None:
    """The smoke run of test_cli's one-shot configs, on LFW's verification config: no val/acc to stop on
    yet, and no episodes for the end-of-run report; it ends with its last checkpoint and the note."""
    root = write_lfw(tmp_path / "lfw")
    result = run_cli(tmp_path, *fit_args(root, "lfw.yaml", *SMALL_KOCH, "--trainer.max_steps", "2"), check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "stopped at step 2 before its first validation: nothing was validated" in output
    checkpoints = tmp_path / "logs" / "lfw" / "version_0" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["last.ckpt"]
    saved = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=True)
    assert saved["global_step"] == 2 and saved.get("verification_threshold") is None  # no threshold was fitted
