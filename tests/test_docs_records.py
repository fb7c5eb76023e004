"""Every measured number in README.md and docs/ is rendered from a record in benchmarks/results/.

`benchmarks/render_docs.py --check` re-renders each record block and fails when a committed page
differs from what its records say, or holds an accuracy typed by hand outside a block.
"""

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load_renderer():
    spec = importlib.util.spec_from_file_location("render_docs", ROOT / "benchmarks" / "render_docs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["render_docs"] = module
    spec.loader.exec_module(module)
    return module


render_docs = _load_renderer()


def test_committed_pages_match_their_records(capsys):
    assert render_docs.main(["--check"]) == 0, capsys.readouterr().err


def test_readme_keeps_the_ci_test_command():
    assert 'pip install -e ".[dev]" && python -m pytest -q -n auto' in (ROOT / "README.md").read_text()


def test_readme_fits_a_front_door():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


def test_every_block_on_a_page_is_known_and_every_record_has_its_envelope():
    names = set()
    for path in render_docs.pages():
        names |= {m.group(1) for m in render_docs.BLOCK_RE.finditer(path.read_text())}
    assert names, "no record blocks found"
    assert names <= set(render_docs.BLOCKS)
    for path in sorted((ROOT / "benchmarks" / "results").glob("*.json")):
        data = json.loads(path.read_text())
        if isinstance(data, dict) and ("command" in data or data.get("published")):
            render_docs.load(path.stem)  # raises on a missing envelope key


def test_a_number_edited_by_hand_is_caught_and_its_block_named(tmp_path):
    """Copy a page, change one rendered number by hand, and the check names the page and block."""
    page = ROOT / "docs" / "recipes" / "omniglot.md"
    copy = tmp_path / "omniglot.md"
    shutil.copy(page, copy)
    text = copy.read_text()
    rendered = render_docs.BLOCKS["omniglot_baselines"](render_docs.Page("docs/recipes/omniglot.md"))
    assert rendered in text
    chance = json.loads((ROOT / "benchmarks" / "results" / "baseline_chance_omniglot_val52.json").read_text())
    original = f"{chance['accuracy']:.2f}% ± {chance['ci95']:.2f}"
    assert original in rendered
    tampered = rendered.replace(original, f"{chance['accuracy'] + 1:.2f}% ± {chance['ci95']:.2f}")
    copy.write_text(text.replace(rendered, tampered))

    assert render_docs.check_page(text, "docs/recipes/omniglot.md") == []
    problems = render_docs.check_page(copy.read_text(), "docs/recipes/omniglot.md")
    assert problems == [
        "docs/recipes/omniglot.md: block 'omniglot_baselines' differs from its record(s); "
        "run python benchmarks/render_docs.py"
    ]


def test_a_number_typed_outside_a_block_is_caught():
    problems = render_docs.check_page("Our model reaches 93.10% on the test set.\n", "docs/x.md")
    assert problems == ["docs/x.md: number '93.10%' written by hand outside a record block"]
    assert render_docs.check_page("```\nacc 93.10%\n```\n", "docs/x.md") == []
    assert render_docs.check_page("93.10% as written then\n", "docs/trials.md") == []


def test_a_record_without_its_envelope_is_refused(tmp_path, monkeypatch):
    (tmp_path / "bare.json").write_text(json.dumps({"accuracy": 50.0}))
    monkeypatch.setattr(render_docs, "RESULTS", tmp_path)
    monkeypatch.setattr(render_docs, "ROOT", tmp_path)
    with pytest.raises(render_docs.RecordError, match="lacks command, commit, date, machine, split"):
        render_docs.load("bare")
