"""``experiments/omniglot_cpu.yaml`` (the CPU recipe) trains on tiny data until its time budget ends the run."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO
from tests.test_cli import fit_shrunk, run_cli, scalars
from tests.tiny import tiny_recipe_data

pytestmark = pytest.mark.slow

RECIPE = REPO / "experiments" / "omniglot_cpu.yaml"


def test_recipe_runs_its_cosine_over_the_time_budget(tmp_path: Path, tiny_omniglot: Path) -> None:
    shrink = {
        "trainer": {"max_time": "00:00:00:15", "log_every_n_steps": 1},
        "model": {
            "init_args": {
                "encoder": {"init_args": {"input_size": 28, "channels": [4, 8, 8, 16], "embedding_dim": 16}},
                "hubness": {"weight": 0.2, "k": 2},
            }
        },  # the recipe's k of 5 needs more than 5 ways
        "data": {"init_args": tiny_recipe_data(tiny_omniglot, pairs_per_epoch=32)},
        "oneshot_report": {"tasks": 10},
    }
    override = fit_shrunk(tmp_path, RECIPE, shrink)

    run_dir = tmp_path / "logs" / "omniglot_cpu" / "version_0"
    rates = [v for _, v in scalars(run_dir)["lr-Adam"]]
    assert len(rates) > 2  # max_epochs is -1: the 15 s budget, not an epoch count, ended the run
    assert rates[0] == pytest.approx(1e-3)
    assert all(later < earlier for earlier, later in itertools.pairwise(rates))  # down the cosine, epoch by epoch
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["optimizer_states"][0]["param_groups"][0]["lr"] < 0.1e-3  # the last step began near the budget's end
    report = json.loads((run_dir / "oneshot_val.json").read_text())
    # The report aligns 31 views of each image in each of the 8 symmetries (quarter-turns x mirror).
    assert report["tasks"] == 10 and report["align"]["views"] == 31 * 8
    assert report["hubness"] == {"weight": 0.2, "k": 2}  # the scoring rule, recorded with the number
    assert report["align"]["rotations"] and report["align"]["mirrors"]
    assert 0 <= report["without_align"]["accuracy"] <= 100

    # `lightning test` on Lake's runs scores with the same alignment, and logs the plain accuracy beside it.
    from tests.data.test_lake_runs import make_lake_runs

    runs = make_lake_runs(tmp_path / "all_runs")
    tested = run_cli(
        tmp_path,
        "test",
        "--config",
        str(RECIPE),
        "--config",
        str(override),
        "--ckpt_path",
        str(run_dir / "checkpoints" / "last.ckpt"),
        "--data.init_args.runs_dir",
        str(runs),
    )
    assert "test/lake_runs_acc_unaligned" in tested.stdout and "aligned over 31 views x 8 symmetries" in tested.stdout
    (written,) = (tmp_path / "logs" / "omniglot_cpu").glob("version_*/lake_runs.json")
    lake = json.loads(written.read_text())
    assert lake["align"]["views"] == 31 * 8 and 0 <= lake["without_align"]["accuracy"] <= 100
