"""experiments/mnist_triplet.yaml end to end on tiny synthetic MNIST files, through the real command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO
from tests.data.test_mnist import write_mnist
from tests.test_cli import run_cli

pytestmark = pytest.mark.slow


def test_the_mnist_triplet_config_trains_and_reports(tmp_path: Path) -> None:
    files = write_mnist(tmp_path / "files", n_train=160, n_test=20)
    run_cli(
        tmp_path,
        "fit",
        "--config",
        str(REPO / "experiments" / "mnist_triplet.yaml"),
        "--data.init_args.root",
        str(tmp_path / "root"),
        "--data.init_args.files",
        str(files),
        "--data.init_args.download",
        "false",
        "--data.init_args.val_size",
        "60",
        "--data.init_args.val_tasks",
        "10",
        "--data.init_args.val_pairs",
        "16",
        "--data.init_args.batch_size",
        "8",
        "--data.init_args.pairs_per_epoch",
        "32",
        "--trainer.max_epochs",
        "1",
        "--trainer.enable_progress_bar",
        "false",
        "--oneshot_report.tasks",
        "10",
    )
    run = tmp_path / "logs" / "mnist_triplet" / "version_0"
    report = json.loads((run / "oneshot_val.json").read_text())
    assert (report["n_way"], report["k_shot"], report["tasks"]) == (10, 1, 10)
    saved = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    head = saved["hyper_parameters"]["head"]["init_args"]
    assert (head["margin"], head["squared"]) == (0.4, True)
    assert saved["hyper_parameters"]["encoder"]["class_path"].endswith("SmallConvEmbedding")
    assert saved["datamodule_hyper_parameters"]["batch_kind"] == "triplets"
