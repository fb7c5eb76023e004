"""``experiments/omniglot_koch.yaml`` (Koch's protocol) parses and trains, shrunk to tiny data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import REPO
from tests.test_cli import fit_shrunk, scalars
from tests.tiny import tiny_recipe_data

pytestmark = pytest.mark.slow

KOCH = REPO / "experiments" / "omniglot_koch.yaml"


def test_koch_config_holds_the_papers_protocol() -> None:
    config = yaml.safe_load(KOCH.read_text())
    model, data = config["model"]["init_args"], config["data"]["init_args"]
    assert model["optimizer"]["class_path"] == "torch.optim.SGD"
    assert [g["params"] for g in model["param_groups"]] == [
        "encoder.features.0",
        "encoder.features.3",
        "encoder.features.6",
        "encoder.features.9",
        "encoder.fc",
        "head",
    ]
    assert model["lr_scheduler"]["init_args"]["gamma"] == 0.99
    assert (data["batch_size"], data["pair_sampling"], data["koch_distortions"], data["val_tasks"]) == (
        128,
        "koch",
        8,
        320,
    )
    assert config["trainer"]["max_epochs"] == 200 and config["early_stopping"]["patience"] == 20
    assert config["trainer"]["callbacks"][0]["init_args"]["start"] == 0.5


def test_koch_config_trains_and_checkpoints_on_tiny_data(tmp_path: Path, tiny_omniglot: Path) -> None:
    shrink = {
        "trainer": {"max_epochs": 2, "log_every_n_steps": 1, "enable_progress_bar": False},
        "model": {
            "init_args": {
                "encoder": {
                    "init_args": {
                        "input_size": 28,
                        "kernel_sizes": [3, 3, 2, 2],
                        "channels": [4, 8, 8, 16],
                        "embedding_dim": 32,
                    }
                }
            }
        },
        "data": {"init_args": tiny_recipe_data(tiny_omniglot, koch_pairs=16)},
        "oneshot_report": {"tasks": 10},
    }
    fit_shrunk(tmp_path, KOCH, shrink)

    run_dir = tmp_path / "logs" / "omniglot_koch" / "version_0"
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 2 * (16 * 9 // 16)  # an epoch is 16 pairs x (1 + 8 distortions)
    groups = last["optimizer_states"][0]["param_groups"]
    assert [g["name"] for g in groups] == [
        "encoder.features.0",
        "encoder.features.3",
        "encoder.features.6",
        "encoder.features.9",
        "encoder.fc",
        "head",
    ]
    assert [g["weight_decay"] for g in groups] == [0.0004] * 4 + [0.004, 0.0]
    logged = scalars(run_dir)
    assert [v for _, v in logged["lr-SGD/encoder.features.0"]] == pytest.approx([0.004, 0.004 * 0.99])
    assert [v for _, v in logged["lr-SGD/encoder.fc-momentum"]] == pytest.approx([0.5, 0.51])  # 0.5 -> 0.9 in 40 epochs
    assert "val/oneshot_acc" in logged and (run_dir / "oneshot_val.json").exists()
