"""The ``lightning-siamese baseline`` command: Lake's runs and a config's episodes, through the shared evaluation."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lightning_siamese.cli.main import build_parser, main
from lightning_siamese.evaluation.baselines import make_baseline
from lightning_siamese.evaluation.oneshot import summarize
from lightning_siamese.inference.config import data_module_from_config
from tests.data.test_lake_runs import make_lake_runs
from tests.test_cli import tiny_config


@pytest.fixture
def config(tmp_path: Path, tiny_omniglot: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tiny_omniglot)))
    return path


def test_baseline_on_lake_runs_prints_and_writes_json(tmp_path: Path, capsys) -> None:
    make_lake_runs(tmp_path / "all_runs")
    output = tmp_path / "out" / "mhd.json"
    main(["baseline", "mhd", "--runs_dir", str(tmp_path), "--image_size", "28", "--output", str(output)])
    printed = capsys.readouterr().out
    assert "mhd baseline on Lake's runs" in printed and "per run: run01" in printed and str(output) in printed
    record = json.loads(output.read_text())
    assert record["baseline"] == "mhd" and record["image_size"] == 28 and record["runs_dir"] == str(tmp_path)
    assert sorted(record["per_task"]) == ["run01", "run02", "run03"] and record["n_way"] == 5
    assert record["accuracy"] > 50  # drawer 2 against drawer 1 of the same synthetic characters; chance is 20


def test_baseline_on_a_config_scores_the_end_of_run_reports_episodes(config: Path, tmp_path: Path, capsys) -> None:
    output = tmp_path / "pixel.json"
    main(["baseline", "pixel", "--config", str(config), "--output", str(output)])
    record = json.loads(output.read_text())
    # The tiny config's oneshot_report: 30 tasks, seed 99, val split; its data module: 5-way, 28 px.
    assert (record["split"], record["tasks"], record["seed"], record["n_way"], record["image_size"]) == (
        "val",
        30,
        99,
        5,
        28,
    )
    data, _ = data_module_from_config(config)
    evaluation = data.evaluation_set("val", tasks=30, seed=99)  # what OneShotReport scores
    expected = summarize(
        make_baseline("pixel").accuracies(evaluation.collection.images, evaluation.episodes), evaluation.episodes
    )
    assert record["accuracy"] == pytest.approx(expected.accuracy)
    assert "pixel baseline on the val split" in capsys.readouterr().out

    main(
        [
            "baseline",
            "chance",
            "--config",
            str(config),
            "--split",
            "test",
            "--tasks",
            "50",
            "--seed",
            "3",
            "--image_size",
            "14",
            "--output",
            str(output),
        ]
    )
    record = json.loads(output.read_text())
    assert (record["split"], record["tasks"], record["seed"], record["image_size"]) == ("test", 50, 3, 14)


def test_baseline_needs_a_source_and_a_known_name(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["baseline", "mhd"])
    assert "needs --runs_dir" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["baseline", "hog", "--runs_dir", "x"])
    assert "invalid choice: 'hog'" in capsys.readouterr().err


SUBCOMMANDS = (
    "baseline",
    "view2",
    "verify",
    "embed",
    "export",
    "enroll",
    "identify",
    "remove",
    "compare",
    "tsne",
    "sweep",
    "report",
    "retrieve",
    "probe",
)


def test_every_subcommand_is_registered_with_its_own_help(capsys) -> None:
    (commands,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert sorted(commands.choices) == sorted(SUBCOMMANDS)
    for name in SUBCOMMANDS:
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0 and f"usage: lightning-siamese {name}" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["baseline", "mhd", "--runs_dir", "x"],
        ["remove", "g.pt", "a"],
        ["report", "run"],
        ["embed", "a.png", "--ckpt", "c.ckpt", "--output", "e.npz"],
    ],
)
def test_unknown_arguments_are_refused_before_anything_runs(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--bogus"])
    assert exit_info.value.code == 2 and "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_console_script_and_module_help() -> None:
    module = subprocess.run(
        [sys.executable, "-m", "lightning_siamese.cli.main", "baseline", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert module.returncode == 0 and "--runs_dir" in module.stdout and "38.8%" in module.stdout
    script = shutil.which("lightning-siamese", path=str(Path(sys.executable).parent))
    if script is not None:  # the console script, as installed by pip
        help_text = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=120)
        assert help_text.returncode == 0 and "baseline" in help_text.stdout


def test_the_exported_embedder_keeps_the_models_test_time_views() -> None:
    import torch

    from lightning_siamese.inference.model import Embedder
    from lightning_siamese.models import ConvNetEncoder, SiameseModule, TripletHead

    torch.manual_seed(0)
    model = SiameseModule(
        ConvNetEncoder(input_size=28, channels=(4, 8), embedding_dim=8), head=TripletHead, eval_flip=True, eval_shift=1
    ).eval()
    images = torch.rand(3, 1, 28, 28)
    traced = torch.jit.trace(Embedder(model).eval(), images[:1])
    assert torch.allclose(traced(images), model.embed(images), atol=1e-6)
    model.eval_shift = 0  # the views matter: without the shifts the embeddings differ
    assert not torch.allclose(traced(images), model.embed(images), atol=1e-4)
