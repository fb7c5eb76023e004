"""End to end through the real ``lightning`` command, in a subprocess, on tiny data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def tiny_config(root: Path) -> dict:
    return {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "auto",
            "devices": 1,
            "max_epochs": 2,
            "log_every_n_steps": 1,
            "enable_progress_bar": False,
            "logger": {
                "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                "init_args": {"save_dir": "logs", "name": "tiny"},
            },
        },
        "model": {
            "class_path": "lightning_siamese.models.SiameseModule",
            "init_args": {
                "encoder": {
                    "class_path": "lightning_siamese.models.KochEncoder",
                    "init_args": {
                        "input_size": 28,
                        "kernel_sizes": [3, 3, 2, 2],
                        "channels": [4, 8, 8, 16],
                        "embedding_dim": 32,
                        "init": "default",
                    },
                },
                "head": {"class_path": "lightning_siamese.models.KochHead", "init_args": {"init": "default"}},
                "optimizer": {"class_path": "torch.optim.Adam", "init_args": {"lr": 0.001}},
                "lr_scheduler": {"class_path": "torch.optim.lr_scheduler.ExponentialLR", "init_args": {"gamma": 0.9}},
            },
        },
        "data": {
            "class_path": "lightning_siamese.data.OmniglotDataModule",
            "init_args": {
                "root": str(root),
                "sets": ["images_background"],
                "val_alphabets": ["Gamma"],
                "test_alphabets": ["Delta"],
                "image_size": 28,
                "batch_size": 16,
                "pairs_per_epoch": 64,
                "augment": {"class_path": "lightning_siamese.data.KochAffine"},
                "n_way": 5,
                "val_tasks": 20,
                "test_tasks": 20,
                "val_pairs": 32,
            },
        },
        "oneshot_report": {"tasks": 30, "seed": 99},
    }


def run_cli(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "lightning_siamese", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"lightning {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def fit_shrunk(cwd: Path, config: Path, shrink: dict) -> Path:
    """`lightning fit` a shipped config with `shrink` merged over it (a second ``--config``); returns the override file."""
    override = cwd / "tiny.yaml"
    override.write_text(yaml.safe_dump(shrink))
    run_cli(cwd, "fit", "--config", str(config), "--config", str(override))
    return override


@pytest.fixture
def experiment(tmp_path: Path, tiny_omniglot: Path) -> Path:
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tiny_omniglot)))
    return config


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_fit_logs_checkpoints_reports_and_resumes(experiment: Path) -> None:
    cwd = experiment.parent
    first = run_cli(cwd, "fit", "--config", str(experiment))
    run_dir = cwd / "logs" / "tiny" / "version_0"

    # TensorBoard: the scalars, the pair grid and the hyper-parameters are there.
    logged = scalars(run_dir)
    for tag in (
        "train/loss_step",
        "train/loss_epoch",
        "val/loss",
        "val/oneshot_acc",
        "val/pair_auroc",
        "lr-Adam",
        "hp_metric",
    ):
        assert tag in logged, f"{tag} missing from {sorted(logged)}"
    assert len(logged["val/oneshot_acc"]) == 2
    assert all(0.0 <= v <= 100.0 for _, v in logged["val/oneshot_acc"])
    assert logged["lr-Adam"][0][1] == pytest.approx(0.001)
    assert logged["lr-Adam"][1][1] == pytest.approx(0.0009)  # ExponentialLR stepped per epoch
    events = EventAccumulator(str(run_dir), size_guidance={"images": 0})
    events.Reload()
    assert "val/pairs" in events.Tags()["images"]
    assert any("hparams" in tag for tag in events.summary_metadata)
    assert (run_dir / "hparams.yaml").exists()

    # Checkpoints, the saved config and the end-of-run report.
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 8 and last["epoch"] == 1
    config_text = (run_dir / "config.yaml").read_text()
    assert "KochEncoder" in config_text
    report = json.loads((run_dir / "oneshot_val.json").read_text())
    assert report["n_way"] == 5 and report["k_shot"] == 1 and report["tasks"] == 30 and report["seed"] == 99
    assert 0.0 <= report["accuracy"] <= 100.0 and report["ci95"] > 0
    assert "Final one-shot evaluation" in first.stdout

    # Resume: same run folder, step count continues, curves continue.
    run_cli(cwd, "fit", "--config", str(experiment), "--ckpt_path", "last", "--trainer.max_epochs", "3")
    assert sorted(p.name for p in (cwd / "logs" / "tiny").iterdir()) == ["version_0"]
    resumed = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert resumed["global_step"] == 12  # 8 steps before + 4 of the one extra epoch
    # last.ckpt is written at the end of the epoch's validation, before Lightning counts the epoch completed
    assert resumed["loops"]["fit_loop"]["epoch_progress"]["total"]["processed"] == 3
    steps = [s for s, _ in scalars(run_dir)["val/oneshot_acc"]]
    assert len(steps) == 3 and steps == sorted(steps) and steps[-1] > steps[-2]
    assert (run_dir / "config.yaml").read_text() == config_text  # the first config is kept
    assert "--ckpt_path" not in config_text and (run_dir / "config.1.yaml").exists()

    # Two evaluations of one checkpoint give the same number.
    tests = [
        run_cli(cwd, "validate", "--config", str(experiment), "--ckpt_path", str(run_dir / "checkpoints" / "last.ckpt"))
        for _ in range(2)
    ]
    accuracies = [line for t in tests for line in t.stdout.splitlines() if "val/oneshot_acc" in line]
    assert len(accuracies) == 2 and accuracies[0] == accuracies[1]

    # The test stage scores the test alphabets.
    tested = run_cli(
        cwd, "test", "--config", str(experiment), "--ckpt_path", str(run_dir / "checkpoints" / "last.ckpt")
    )
    assert "test/oneshot_acc" in tested.stdout

    # predict writes the embeddings of the chosen split.
    run_cli(cwd, "predict", "--config", str(experiment), "--ckpt_path", str(run_dir / "checkpoints" / "last.ckpt"))
    written = sorted((cwd / "logs" / "tiny").glob("version_*/embeddings_val.pt"))
    assert len(written) == 1
    saved = torch.load(written[0], weights_only=True)
    assert saved["embeddings"].shape == (5 * 20, 32)  # the Gamma alphabet: 5 characters x 20 drawers
    assert saved["embeddings"].abs().sum(-1).min() > 0  # every row filled
    assert saved["class_names"][0].startswith("Gamma/")


def test_last_without_a_previous_run_starts_fresh(experiment: Path) -> None:
    cwd = experiment.parent
    result = run_cli(cwd, "fit", "--config", str(experiment), "--ckpt_path", "last", "--trainer.max_epochs", "1")
    assert "no last checkpoint" in result.stderr
    assert (cwd / "logs" / "tiny" / "version_0" / "checkpoints" / "last.ckpt").exists()


def test_bad_checkpoint_paths_and_unknown_keys_fail_clearly(experiment: Path) -> None:
    cwd = experiment.parent
    missing = run_cli(cwd, "fit", "--config", str(experiment), "--ckpt_path", "nowhere.ckpt", check=False)
    assert missing.returncode != 0 and "nowhere.ckpt: no such checkpoint file" in missing.stderr

    corrupt = cwd / "corrupt.ckpt"
    corrupt.write_bytes(b"\x00garbage" * 100)
    broken = run_cli(cwd, "test", "--config", str(experiment), "--ckpt_path", str(corrupt), check=False)
    assert broken.returncode != 0 and "corrupt.ckpt is not a readable Lightning checkpoint" in broken.stderr

    typo = run_cli(cwd, "fit", "--config", str(experiment), "--data.init_args.bach_size", "4", check=False)
    assert typo.returncode != 0 and "bach_size" in typo.stderr


def test_print_config_shows_the_resolved_quickstart() -> None:
    script = Path(sys.executable).parent / "lightning"
    if script.exists():  # the console script, as installed by pip
        help_text = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
        assert help_text.returncode == 0 and all(c in help_text.stdout for c in ("fit", "validate", "test", "predict"))
    result = run_cli(REPO, "fit", "--config", "experiments/quickstart.yaml", "--print_config")
    config = yaml.safe_load(result.stdout)
    assert config["model"]["class_path"] == "lightning_siamese.models.SiameseModule"
    assert config["data"]["init_args"]["sets"] == ["images_background_small1", "images_background_small2"]
    assert config["checkpoint"]["monitor"] == "val/oneshot_acc"
    assert config["trainer"]["accelerator"] == "auto"


def test_folder_config_trains_a_triplet_head_on_a_user_tree(tmp_path: Path) -> None:
    from tests.data.test_folder import write_tree

    root = write_tree(tmp_path / "images", {f"kind{k}/item{i}": 4 for k in range(3) for i in range(4)} | {"rare": 1})
    result = run_cli(
        tmp_path,
        "fit",
        "--config",
        str(REPO / "experiments" / "folder.yaml"),
        "--data.init_args.root",
        str(root),
        "--data.init_args.val_fraction",
        "0.3",
        "--data.init_args.n_way",
        "3",
        "--data.init_args.val_tasks",
        "10",
        "--data.init_args.val_pairs",
        "16",
        "--data.init_args.pairs_per_epoch",
        "64",
        "--data.init_args.batch_size",
        "8",
        "--data.init_args.num_workers",
        "0",
        "--trainer.max_epochs",
        "1",
        "--trainer.enable_progress_bar",
        "false",
        "--oneshot_report.tasks",
        "10",
    )
    assert "13 classes" in result.stdout and "moved to the test split" in result.stdout
    run_dir = tmp_path / "logs" / "folder" / "version_0"
    events = EventAccumulator(str(run_dir), size_guidance={"tensors": 0})
    events.Reload()
    assert any("data/summary" in tag for tag in events.Tags()["tensors"])
    assert json.loads((run_dir / "oneshot_val.json").read_text())["n_way"] == 3


def test_lake_runs_at_test_time_a_checkpoint_of_another_model_and_command_line_switches(
    experiment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.data.test_lake_runs import make_lake_runs

    cwd = experiment.parent
    runs = make_lake_runs(cwd / "all_runs")
    run_cli(cwd, "fit", "--config", str(experiment), "--trainer.max_epochs", "1", "--oneshot_report.tasks", "2")
    ckpt = cwd / "logs" / "tiny" / "version_0" / "checkpoints" / "last.ckpt"

    # With runs_dir the test stage scores Lake's runs: the metric, the printout and lake_runs.json.
    tested = run_cli(
        cwd, "test", "--config", str(experiment), "--ckpt_path", str(ckpt), "--data.init_args.runs_dir", str(runs)
    )
    assert "test/lake_runs_acc" in tested.stdout and "test/oneshot_acc" not in tested.stdout
    assert "per run: run01" in tested.stdout
    (written,) = (cwd / "logs" / "tiny").glob("version_*/lake_runs.json")
    report = json.loads(written.read_text())
    assert sorted(report["per_task"]) == ["run01", "run02", "run03"] and report["n_way"] == 5
    assert report["accuracy"] == pytest.approx(sum(report["per_task"].values()) / 3)
    assert report["error"] == pytest.approx(100 - report["accuracy"]) and report["checkpoint"] == str(ckpt)
    assert scalars(written.parent)["test/lake_runs_acc"][0][1] == pytest.approx(report["accuracy"], abs=1e-4)

    # A checkpoint of another encoder than the config's: one message that names the difference
    # (Lightning would quietly build the checkpoint's model in place of the one asked for).
    other = run_cli(
        cwd,
        "test",
        "--config",
        str(experiment),
        "--ckpt_path",
        str(ckpt),
        "--model.init_args.encoder.init_args.embedding_dim",
        "16",
        check=False,
    )
    assert other.returncode != 0
    assert (
        "last.ckpt holds another model than the config describes: encoder KochEncoder with embedding_dim=32 vs 16"
        in other.stderr
    )
    assert "version_0/config.yaml" in other.stderr

    # Model switches on the command line win over the checkpoint's saved hyper-parameters
    # (Lightning's CLI would merge those over the command line and drop eval_flip silently).
    from lightning_siamese.cli.lightning import SiameseCLI

    monkeypatch.chdir(cwd)
    base = [
        "validate",
        "--config",
        str(experiment),
        "--ckpt_path",
        str(ckpt),
        "--trainer.logger",
        "false",
        "--trainer.enable_progress_bar",
        "false",
    ]
    assert SiameseCLI(args=[*base, "--model.init_args.eval_flip", "true"]).model.eval_flip is True
    assert SiameseCLI(args=base).model.eval_flip is False


def test_a_checkpoint_of_another_model_class_encoder_or_head_is_described(tmp_path: Path) -> None:
    from lightning_siamese.inference.checkpoints import check_checkpoint_model

    encoder = {
        "class_path": "lightning_siamese.models.KochEncoder",
        "init_args": {"input_size": 28, "channels": [4, 8, 8, 16], "embedding_dim": 32},
    }
    head = {"class_path": "lightning_siamese.models.KochHead", "init_args": {"init": "default"}}
    path = tmp_path / "koch.ckpt"
    saved = {
        "_class_path": "lightning_siamese.models.SiameseModule",
        "encoder": encoder,
        "head": head,
        "shot_reduction": "mean",
    }
    torch.save({"state_dict": {}, "hyper_parameters": saved}, path)
    model = {
        "class_path": "lightning_siamese.models.SiameseModule",
        "init_args": {"encoder": encoder, "head": head, "shot_reduction": "max"},
    }
    check_checkpoint_model(path, model)  # the same model (evaluated another way): no error
    newer = {**encoder, "init_args": {**encoder["init_args"], "output": "linear"}}  # an arg the checkpoint predates
    check_checkpoint_model(path, {**model, "init_args": {"encoder": newer, "head": head}})

    contrastive = {"class_path": "lightning_siamese.models.ContrastiveHead", "init_args": {"margin": 1.0}}
    with pytest.raises(
        ValueError,
        match=r"koch.ckpt holds another model than the config describes: head KochHead \(checkpoint\) "
        r"vs ContrastiveHead \(config\)\. Use the config it was trained with",
    ):
        check_checkpoint_model(path, {**model, "init_args": {"encoder": encoder, "head": contrastive}})
    wider = {**encoder, "init_args": {**encoder["init_args"], "channels": [8, 8, 8, 16], "input_size": 105}}
    with pytest.raises(
        ValueError, match=r"encoder KochEncoder with channels=\[4, 8, 8, 16\] vs \[8, 8, 8, 16\], input_size=28 vs 105"
    ):
        check_checkpoint_model(path, {**model, "init_args": {"encoder": wider, "head": head}})
    with pytest.raises(ValueError, match=r"model SiameseModule \(checkpoint\) vs PrototypicalModule \(config\)"):
        check_checkpoint_model(
            path, {"class_path": "x.PrototypicalModule", "init_args": {"encoder": encoder, "head": head}}
        )


def test_resume_from_a_run_folder_alone_continues_its_schedule(experiment: Path) -> None:
    cwd = experiment.parent
    run_cli(cwd, "fit", "--config", str(experiment))
    run = cwd / "logs" / "tiny" / "version_0"
    resumed = run_cli(cwd, "fit", "--resume", str(run), "--trainer.max_epochs", "3")
    assert f"Resuming {run}" in resumed.stdout
    assert sorted(p.name for p in (cwd / "logs" / "tiny").iterdir()) == ["version_0"]
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 12
    lrs = [v for _, v in scalars(run)["lr-Adam"]]
    assert lrs == pytest.approx([0.001, 0.0009, 0.00081])  # ExponentialLR carries on, not restarted
    not_a_run = run_cli(cwd, "fit", "--resume", str(cwd), check=False)
    assert not_a_run.returncode != 0 and "not a run folder (no config.yaml in it)" in not_a_run.stderr


@pytest.mark.parametrize("head", ["koch", "triplet"])
def test_a_run_that_stops_before_its_first_validation_ends_normally(experiment: Path, head: str) -> None:
    """``--trainer.max_steps 2`` stops inside the first epoch (4 steps), before any validation: the default
    early stopping has no val/oneshot_acc to compare. The run still ends normally, with a last.ckpt, a note
    that nothing was validated, and the end-of-run report of the final weights."""
    cwd = experiment.parent
    heads = (
        []
        if head == "koch"
        else [
            "--model.init_args.head",
            "lightning_siamese.models.TripletHead",
            "--data.init_args.batch_kind",
            "classes",
            "--data.init_args.images_per_class",
            "4",
        ]
    )
    result = run_cli(cwd, "fit", "--config", str(experiment), "--trainer.max_steps", "2", *heads, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "not available" not in output
    run_dir = cwd / "logs" / "tiny" / "version_0"
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 2
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["last.ckpt"]  # no best: nothing was scored
    assert "stopped at step 2 before its first validation: nothing was validated" in output
    report = json.loads((run_dir / "oneshot_val.json").read_text())
    assert report["checkpoint"] == "final weights" and report["tasks"] == 30
