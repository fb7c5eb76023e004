"""The scripts in examples/ run as a user runs them, and give the answers the package's own tools give."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lightning_siamese.cli.main import main as tools
from tests.tiny import tiny_checkpoint, write_characters

REPO = Path(__file__).resolve().parents[1]


def run_example(name: str, *args: str | Path) -> str:
    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / name), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_embed_folder_writes_what_lightning_siamese_embed_writes(tmp_path: Path, ckpt: Path) -> None:
    folder = write_characters(tmp_path / "images", 3, range(1, 3))
    out = run_example("embed_folder.py", ckpt, folder, tmp_path / "example.npz")
    assert "6 images -> 32-d embeddings" in out
    tools(["embed", str(folder), "--ckpt", str(ckpt), "--output", str(tmp_path / "tool.npz")])
    example, tool = np.load(tmp_path / "example.npz"), np.load(tmp_path / "tool.npz")
    assert list(example["paths"]) == list(tool["paths"]) and len(example["paths"]) == 6
    assert np.allclose(example["embeddings"], tool["embeddings"], atol=1e-6)


def test_verify_pair_decides_at_the_stored_threshold(tmp_path: Path, ckpt: Path, capsys: pytest.CaptureFixture) -> None:
    folder = write_characters(tmp_path / "images", 2, range(1, 2))
    first, second = folder / "char00" / "d1.png", folder / "char01" / "d1.png"
    # An image against itself: distance 0, the highest score a distance head gives, above the stored -0.8.
    assert "score -0.0000, threshold -0.8000" in run_example("verify_pair.py", ckpt, first, first)
    out = run_example("verify_pair.py", ckpt, first, second)
    score = float(out.split("score ")[1].split(",")[0])
    tools(["verify", str(first), str(second), "--ckpt", str(ckpt)])
    assert f"score {score:.4f}, threshold -0.8000" in capsys.readouterr().out  # what `lightning-siamese verify` says
    assert ("same class" in out) == (score >= -0.8) and "stored in the checkpoint" in out


def test_enroll_identify_names_each_query_by_its_class(tmp_path: Path, ckpt: Path) -> None:
    classes = write_characters(tmp_path / "classes", 4, range(1, 2))  # one example of each of 4 classes
    queries = tmp_path / "queries"
    queries.mkdir()
    for c in range(4):  # each example again, under another name: its own prototype scores best
        shutil.copy(classes / f"char{c:02d}" / "d1.png", queries / f"q{c}.png")
    out = run_example("enroll_identify.py", ckpt, classes, queries)
    assert [line for line in out.splitlines() if line] == [f"q{c}.png: char{c:02d}" for c in range(4)]


def test_enroll_identify_answers_unknown_below_the_threshold(tmp_path: Path) -> None:
    # A threshold no score reaches (distances are >= 0, so scores <= 0): every query is "unknown".
    strict = tiny_checkpoint(tmp_path / "strict.ckpt", threshold=0.5)
    classes = write_characters(tmp_path / "classes", 2, range(1, 3))
    queries = write_characters(tmp_path / "queries", 1, range(5, 6))
    out = run_example("enroll_identify.py", strict, classes, queries)
    assert out.strip() == "d5.png: unknown"
    assert torch.load(strict, weights_only=True)["verification_threshold"] == 0.5
