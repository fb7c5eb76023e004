"""``lightning-siamese sweep``: grid parsing and key checks, then a real tiny sweep through the CLI (and its run's report)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lightning_siamese.cli.tools.report import write_report
from lightning_siamese.cli.tools.sweep import (
    SweepError,
    check_grid,
    parse_grid,
    resolve_key,
    run_name,
    run_sweep,
)
from tests.conftest import REPO
from tests.test_cli import tiny_config
from tests.test_report import PNG

KEYS = [
    "model.init_args.optimizer.init_args.lr",
    "model.init_args.lr_scheduler.init_args.gamma",
    "data.init_args.batch_size",
    "data.init_args.eval_batch_size",
    "trainer.max_epochs",
]


def test_grid_items_split_into_keys_and_values() -> None:
    grid = parse_grid(["model.lr=5e-6,1e-5", "--data.sets=[a,b],[c]", "trainer.max_epochs=3"])
    assert grid == {"model.lr": ["5e-6", "1e-5"], "data.sets": ["[a,b]", "[c]"], "trainer.max_epochs": ["3"]}
    for bad, message in (
        ("model.lr", "expected KEY=VALUE"),
        ("model.lr=1,,2", "empty value"),
        ("=1", "expected KEY=VALUE"),
        ("model.lr=1,1", "repeats a value"),
    ):
        with pytest.raises(SweepError, match=message):
            parse_grid([bad])
    with pytest.raises(SweepError, match=r"names model.lr twice"):
        parse_grid(["model.lr=1", "model.lr=2"])


def test_keys_resolve_with_or_without_init_args_and_in_between_levels() -> None:
    assert resolve_key("model.init_args.optimizer.init_args.lr", KEYS) == KEYS[0]
    assert resolve_key("model.optimizer.lr", KEYS) == KEYS[0]
    assert resolve_key("model.lr", KEYS) == KEYS[0]  # the spelling
    assert resolve_key("data.batch_size", KEYS) == KEYS[2]  # not eval_batch_size
    assert resolve_key("trainer.max_epochs", KEYS) == KEYS[4]


def test_unknown_and_ambiguous_keys_are_named_with_close_matches() -> None:
    with pytest.raises(
        SweepError, match=r"'model\.lrr' is not a setting of the config; close matches: .*model\.optimizer\.lr"
    ):
        resolve_key("model.lrr", KEYS)
    with pytest.raises(SweepError, match=r"'batch_size' is not a setting.*data\.batch_size"):
        resolve_key("batch_size", KEYS)  # one level only: no guessing across sections
    with pytest.raises(SweepError, match=r"'nothing\.here' is not a setting of the config$"):
        resolve_key("nothing.here", KEYS)
    two = ["model.init_args.encoder.init_args.dropout", "model.init_args.head.init_args.dropout"]
    with pytest.raises(SweepError, match=r"ambiguous: it matches model.encoder.dropout, model.head.dropout"):
        resolve_key("model.dropout", two)


def test_run_folders_are_named_by_the_values() -> None:
    assert run_name({"model.lr": "1e-4", "data.batch_size": "32"}) == "lr=1e-4,batch_size=32"
    assert run_name({"model.encoder.dropout": "0.1", "model.head.dropout": "0.2"}) == (
        "model.encoder.dropout=0.1,model.head.dropout=0.2"
    )


def test_the_grid_is_checked_against_the_real_config_before_running() -> None:
    config = str(REPO / "experiments" / "quickstart.yaml")
    keys = check_grid(config, {"model.lr": ["1e-4", "1e-3"], "data.batch_size": ["32"]}, ["--trainer.max_epochs", "1"])
    assert keys == {
        "model.lr": "model.init_args.optimizer.init_args.lr",
        "data.batch_size": "data.init_args.batch_size",
    }
    with pytest.raises(SweepError, match=r"grid key 'data\.bach_size' is not a setting.*data\.batch_size"):
        check_grid(config, {"data.bach_size": ["32"]}, [])
    with pytest.raises(SweepError, match=r"grid combination data\.batch_size=lots does not parse"):
        check_grid(config, {"data.batch_size": ["32", "lots"]}, [])
    with pytest.raises(SweepError, match="does not parse"):
        check_grid(config, {"model.lr": ["1e-3"]}, ["--trainer.max_epochz", "1"])  # the extra arguments too
    with pytest.raises(SweepError, match=r"--config nowhere.yaml: no such file"):
        check_grid("nowhere.yaml", {"model.lr": ["1e-3"]}, [])


def sweep_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "lightning_siamese.cli.main", "sweep", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


SWEEP_ARGS = [
    "--grid",
    "model.lr=1e-3",
    "data.n_way=5,50",
    "--name",
    "tiny_sweep",
    "--trainer.max_epochs",
    "2",
    "--trainer.enable_progress_bar",
    "false",
]


def rows(sweep_dir: Path) -> list[dict[str, str]]:
    with (sweep_dir / "sweep.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_a_sweep_runs_each_combination_records_failures_plots_reports_and_reruns(
    tmp_path: Path, tiny_omniglot: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One real tiny sweep (two runs through `lightning`), checked as a sweep, through `report`, and rerun.

    5-way finishes (fit, then test on the Delta alphabet); 50-way cannot draw its tasks from 5
    characters and crashes. One test, so the sweep runs once however the suite is split up.
    """
    cwd = tmp_path
    (cwd / "tiny.yaml").write_text(yaml.safe_dump(tiny_config(tiny_omniglot)))
    result = sweep_cli(cwd, "--config", "tiny.yaml", *SWEEP_ARGS)
    assert result.returncode == 0, result.stdout + result.stderr
    sweep_dir = cwd / "logs" / "tiny_sweep"
    table = rows(sweep_dir)
    assert [(r["model.lr"], r["data.n_way"], r["status"]) for r in table] == [
        ("1e-3", "5", "finished"),
        ("1e-3", "50", "failed"),
    ]
    for row in table:
        run = Path(row["run"])
        assert run.parent == Path("logs/tiny_sweep") and run.name == f"lr={row['model.lr']},n_way={row['data.n_way']}"
        if row["status"] == "finished":
            saved = yaml.safe_load((cwd / run / "config.yaml").read_text())
            assert str(saved["model"]["init_args"]["optimizer"]["init_args"]["lr"]) == str(float(row["model.lr"]))
            assert saved["trainer"]["max_epochs"] == 2  # the extra arguments reach every run
            report = json.loads((cwd / run / "oneshot_val.json").read_text())
            assert float(row["val report acc"]) == pytest.approx(report["accuracy"])
            assert 0 <= float(row["best val/oneshot_acc"]) <= 100 and row["epochs"] == "2"
            assert 0 <= float(row["test/oneshot_acc"]) <= 100  # tiny's Delta alphabet: the test stage ran
            assert row["error"] == ""
        else:
            assert "fit exited with 1" in row["error"] and "50" in row["error"]  # the tail of the crash's output
    for key in ("model.lr", "data.n_way", "epochs"):
        assert (sweep_dir / f"sweep_{key}.png").read_bytes()[:8] == PNG
    assert "1 of 2 combinations finished" in result.stdout

    # `report` on the finished run: its data table, curves and example pairs.
    finished = sweep_dir / "lr=1e-3,n_way=5"
    run = finished
    report = write_report(run).read_text()
    oneshot = json.loads((run / "oneshot_val.json").read_text())
    assert f"**{oneshot['accuracy']:.2f}% +- {oneshot['ci95']:.2f}** (95% CI, 30 fresh episodes, seed 99)" in report
    # The tiny set: Alpha and Beta train (12 characters), Gamma validates, Delta tests.
    assert "| train | 2 | 12 | 240 | 20 / 20 / 20 | 64 pairs per epoch in batches of 16 |" in report
    assert (
        "| val | 1 | 5 | 100 | 20 / 20 / 20 | 20 5-way 1-shot episodes (seed 0) within one group, 32 fixed pairs |"
        in report
    )
    assert "| test | 1 | 6 | 120 |" in report
    assert "Test `test/oneshot_acc`" in report
    assert "The 32 fixed validation pairs (16 same-class; seed 0)" in report and "at threshold 0.5000" in report
    for name in ("curves.png", "report_pairs_val.png"):
        assert (run / name).read_bytes()[:8] == PNG
    assert "![curves](curves.png)" in report and "![example pairs](report_pairs_val.png)" in report

    # A rerun skips the finished combination and retries the failed one.
    events = sorted(finished.glob("events.out.tfevents.*"))
    again = sweep_cli(cwd, "--config", "tiny.yaml", *SWEEP_ARGS)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "lr=1e-3,n_way=5: finished earlier, skipped" in again.stdout
    assert "lr=1e-3,n_way=50: running" in again.stdout
    assert sorted(finished.glob("events.out.tfevents.*")) == events  # not run again
    assert [r["status"] for r in rows(sweep_dir)] == ["finished", "failed"]
    monkeypatch.chdir(cwd)
    with pytest.raises(
        SweepError, match="holds a sweep run with other settings"
    ):  # other extra arguments: another sweep
        run_sweep("tiny.yaml", ["model.lr=1e-3", "data.n_way=5"], ["--trainer.max_epochs", "3"], name="tiny_sweep")


def test_an_unknown_grid_key_fails_before_anything_runs(
    tmp_path: Path, tiny_omniglot: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lightning_siamese.cli.main import main

    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(tiny_config(tiny_omniglot)))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", "--config", "tiny.yaml", "--grid", "model.lrate=1e-3", "--name", "bad"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert (
        "lightning-siamese sweep: error: grid key 'model.lrate' is not a setting of the config; close matches:" in error
    )
    assert "model.optimizer.lr" in error
    assert not (tmp_path / "logs").exists()
