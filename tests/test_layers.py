"""The package's import contracts (pyproject.toml, import-linter) hold: layers import only downward, no circles."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept() -> None:
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if lint_imports is None:
        pytest.fail("lint-imports is not installed: pip install -e '.[dev]'")
    done = subprocess.run([lint_imports], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 kept, 0 broken" in done.stdout


def test_no_module_is_over_500_lines() -> None:
    long = {
        str(p.relative_to(REPO)): n
        for p in (REPO / "lightning_siamese").rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 500
    }
    assert not long, f"modules over 500 lines (is each still one concept?): {long}"


def test_an_upward_import_breaks_the_contracts(tmp_path: Path) -> None:
    """What a future circle meets: a copy of the package where a data source imports the command line."""
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert lint_imports is not None
    shutil.copytree(
        REPO / "lightning_siamese", tmp_path / "lightning_siamese", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    source = tmp_path / "lightning_siamese" / "data" / "sources" / "collection.py"
    source.write_text(source.read_text() + "\nfrom lightning_siamese.cli.main import main  # noqa: E402, F401\n")
    done = subprocess.run(
        [lint_imports, "--no-cache"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(tmp_path)},
    )
    assert done.returncode != 0
    assert "lightning_siamese.data is not allowed to import lightning_siamese.cli" in done.stdout
    assert "lightning_siamese.data.sources.collection -> lightning_siamese.cli.main" in done.stdout
